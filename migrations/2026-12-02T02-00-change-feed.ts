import { type Kysely, sql } from 'kysely';

// Frozen once landed: never edit, add a new migration instead. Imports nothing from src/.

/**
 * The change feed replicas cache by (src/storage/changes.ts): every committed change to a site
 * (token rotated, thresholds, deleted), a named API token (revoked, sites changed) or a silence
 * is announced on the channel `hashwatt_changes` as `<table>:<id>`. Triggers, not application
 * code, so a change made by any path (another replica, the CLI, an operator's SQL) is announced;
 * NOTIFY is delivered at commit, so a replica never hears of a change it cannot yet read.
 * `api_tokens.last_used_at` (written at most once a minute per token) announces nothing.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE FUNCTION hashwatt_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('hashwatt_changes', TG_TABLE_NAME || ':' || COALESCE(NEW.id, OLD.id));
      RETURN NULL;
    END $$`.execute(db);
  await sql`
    CREATE TRIGGER sites_changed AFTER INSERT OR UPDATE OR DELETE ON sites
    FOR EACH ROW EXECUTE FUNCTION hashwatt_notify_change()`.execute(db);
  await sql`
    CREATE TRIGGER api_tokens_changed AFTER INSERT OR DELETE OR UPDATE OF role, site_ids, token_hash, revoked_at, name
    ON api_tokens FOR EACH ROW EXECUTE FUNCTION hashwatt_notify_change()`.execute(db);
  await sql`
    CREATE TRIGGER alert_silences_changed AFTER INSERT OR UPDATE OR DELETE ON alert_silences
    FOR EACH ROW EXECUTE FUNCTION hashwatt_notify_change()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TRIGGER IF EXISTS alert_silences_changed ON alert_silences`.execute(db);
  await sql`DROP TRIGGER IF EXISTS api_tokens_changed ON api_tokens`.execute(db);
  await sql`DROP TRIGGER IF EXISTS sites_changed ON sites`.execute(db);
  await sql`DROP FUNCTION IF EXISTS hashwatt_notify_change()`.execute(db);
}
