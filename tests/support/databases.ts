import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { silentLogger } from '../../src/log.ts';
import { openDatabase, type Storage } from '../../src/storage/database.ts';
import { migrateToLatest } from '../../src/storage/migrate.ts';

/** The server the suite runs against; CI starts it (`.ci/run`). */
export const ADMIN_URL = process.env.HASHWATT_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A database of its own for one test file, created on the real server and dropped by `dispose`. */
export interface TestDatabase {
  readonly backend: 'postgres' | 'pglite';
  /** The postgres URL (postgres only) or the PGlite data dir. */
  readonly url: string | undefined;
  readonly dataDir: string;
  /** Opens (and migrates) a Storage on it; may be called again after closing to simulate a restart. */
  open(): Promise<Storage>;
  dispose(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

export async function createTestDatabase(backend: 'postgres' | 'pglite'): Promise<TestDatabase> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'hashwatt-test-'));
  const open = async (url: string | undefined) => {
    const storage = await openDatabase({ databaseUrl: url, dataDir, logger: silentLogger, poolSize: 4 });
    await migrateToLatest(storage.db);
    return storage;
  };
  if (backend === 'pglite') {
    return {
      backend,
      url: undefined,
      dataDir,
      open: () => open(undefined),
      dispose: async () => rmSync(dataDir, { recursive: true, force: true }),
    };
  }
  const name = `hashwatt_t_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  await adminQuery(`CREATE DATABASE ${name}`);
  const url = withDatabase(ADMIN_URL, name);
  return {
    backend,
    url,
    dataDir,
    open: () => open(url),
    dispose: async () => {
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export const BACKENDS = ['postgres', 'pglite'] as const;
