import { type Kysely, sql } from 'kysely';

// Frozen once landed: never edit, add a new migration instead. Imports nothing from src/.

/**
 * The fleet aggregate of the whole deployment, computed once per refresh by the replica holding
 * the job lease and read by the others (src/fleet/index.ts), so every replica's /metrics and
 * /api/v1/fleet report the same numbers for the same instant. One row.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE fleet_snapshot (
      id smallint PRIMARY KEY CHECK (id = 1),
      taken_at_ms double precision NOT NULL,
      duration_ms double precision NOT NULL,
      sites jsonb NOT NULL
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE IF EXISTS fleet_snapshot`.execute(db);
}
