import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Storage } from '../src/storage/database.ts';
import { applyReaderGrants, READER_ROLE } from '../src/storage/reader-grants.ts';

/** A login role of this test's own, granted to as the older init script did. */
const LEGACY = 'hashwatt_legacy_reader_test';

import { ADMIN_URL, createTestDatabase, type TestDatabase } from './support/databases.ts';

describe('the dashboard reader role (postgres)', () => {
  let testDb: TestDatabase;
  let storage: Storage;

  beforeAll(async () => {
    // Roles are cluster-wide: created once, idempotently, as deploy/postgres/init/ does.
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    await admin.query(
      `DO $$ BEGIN CREATE ROLE ${READER_ROLE} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
    );
    await admin.query(
      `DO $$ BEGIN CREATE ROLE ${LEGACY} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
    );
    await admin.end();
    testDb = await createTestDatabase('postgres');
    storage = await testDb.open();
    // What the older init script did, to its login role: every table, token hashes included, and
    // every table created later (default privileges).
    await sql`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${sql.id(LEGACY)}`.execute(storage.db);
    await sql`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO ${sql.id(LEGACY)}`.execute(
      storage.db,
    );
    await sql`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${sql.id(READER_ROLE)}`.execute(storage.db);
  }, 60_000);

  afterAll(async () => {
    await storage?.close();
    await testDb?.dispose();
  });

  /** Runs a query as the reader role; the error code when refused. */
  async function asReader(query: string, role: string = READER_ROLE): Promise<string> {
    const client = new pg.Client({ connectionString: testDb.url });
    await client.connect();
    try {
      await client.query(`SET ROLE ${role}`);
      await client.query(query);
      return 'ok';
    } catch (error) {
      return (error as { code?: string }).code ?? String(error);
    } finally {
      await client.end();
    }
  }

  it('reads telemetry and the sites’ public columns, never token hashes or named tokens', async () => {
    expect(await applyReaderGrants(storage.db, [LEGACY])).toBe(true);
    // The old login role now reads through the reader role only, also for tables created later.
    expect(await asReader('SELECT power_w FROM readings LIMIT 1', LEGACY)).toBe('ok');
    expect(await asReader('SELECT token_hash FROM sites LIMIT 1', LEGACY)).toBe('42501');
    expect(await asReader('SELECT * FROM api_tokens LIMIT 1', LEGACY)).toBe('42501');
    await sql`CREATE TABLE later_secret (x int)`.execute(storage.db);
    expect(await asReader('SELECT * FROM later_secret', LEGACY)).toBe('42501');
    expect(await asReader('SELECT power_w FROM readings LIMIT 1')).toBe('ok');
    expect(await asReader('SELECT chip_temp_c_0 FROM readings_extra LIMIT 1')).toBe('ok');
    expect(
      await asReader('SELECT s.name, d.external_id FROM sites s JOIN devices d ON d.site_id = s.id LIMIT 1'),
    ).toBe('ok');
    // 42501: insufficient_privilege.
    expect(await asReader('SELECT token_hash FROM sites LIMIT 1')).toBe('42501');
    expect(await asReader('SELECT * FROM sites LIMIT 1')).toBe('42501');
    expect(await asReader('SELECT * FROM api_tokens LIMIT 1')).toBe('42501');
    // Idempotent: a second start changes nothing.
    expect(await applyReaderGrants(storage.db, [LEGACY])).toBe(true);
    expect(await asReader('SELECT power_w FROM readings LIMIT 1')).toBe('ok');
  });
});
