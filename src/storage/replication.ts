import { type Kysely, sql } from 'kysely';
import type { Database } from './schema.ts';

/**
 * How far a streaming standby's replay is behind its primary, in seconds: 0 when it has replayed
 * everything it received (an idle primary sends nothing, so "time since the last replayed
 * transaction" alone would grow while nothing is behind); null when the server is no standby.
 */
export async function replicaLagSeconds(db: Kysely<Database>): Promise<number | null> {
  const { rows } = await sql<{ standby: boolean; lag: number | null }>`
    SELECT pg_is_in_recovery() AS standby,
      CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
           ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END AS lag`.execute(db);
  const row = rows[0];
  return row?.standby ? (row.lag ?? 0) : null;
}
