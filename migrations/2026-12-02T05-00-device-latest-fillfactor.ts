import { type Kysely, sql } from 'kysely';

// Frozen once landed: never edit, add a new migration instead. Imports nothing from src/.

/**
 * device_latest is one row per device, rewritten every latest-state flush (about every second
 * under load). At the default fill factor its pages are full, so every update puts the new row
 * version on another page and updates both indexes; with half of each page free the update stays
 * on its page and skips the indexes (a HOT update). `node bench/write-path.ts --rounds 3`: the
 * upsert alone went from 295,636 to 440,624 rows/s (docs/performance.md). Existing pages keep
 * their rows until updates move them; new pages are filled to half.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE device_latest SET (fillfactor = 50)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE device_latest RESET (fillfactor)`.execute(db);
}
