/**
 * hashwatt as a child process on a database of its own, with settings of the caller's: the rollup
 * benchmarks run two services side by side (job off, job on) and need retention past the default.
 * bench/ingest.ts's startBenchService has one fixed database and the environment as it is.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import pg from 'pg';
import { SERVICE_NODE_FLAGS } from '../../src/node-flags.ts';
import { ADMIN_TOKEN, ADMIN_URL, type BenchService } from '../ingest.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A statement on the maintenance database (CREATE / DROP DATABASE). */
export async function adminQuery(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  await c.query(text).finally(() => c.end());
}

/** The URL of `database` on the benchmark's server. */
export function databaseUrl(database: string): string {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${database}`;
  return u.toString();
}

export async function dropDatabase(database: string): Promise<void> {
  await adminQuery(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
}

/** Creates `database` afresh (dropping an old one left by an interrupted run). */
export async function createDatabase(database: string): Promise<void> {
  await dropDatabase(database);
  await adminQuery(`CREATE DATABASE ${database}`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts hashwatt on an existing database with `env` added to its environment (HASHWATT_* settings)
 * and waits until it is ready (migrated, partitions created, listening).
 */
export async function startServiceOn(database: string, env: Record<string, string>): Promise<BenchService> {
  const port = await freePort();
  // BENCH_SERVICE_NODE_FLAGS replaces the shipped flags, for A/B runs of them (docs/performance.md).
  const flags = process.env.BENCH_SERVICE_NODE_FLAGS?.split(' ').filter(Boolean) ?? SERVICE_NODE_FLAGS;
  const child: ChildProcess = spawn(process.execPath, [...flags, 'src/main.ts'], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: databaseUrl(database),
      HASHWATT_ADMIN_TOKEN: ADMIN_TOKEN,
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 150 && child.exitCode === null; i++) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) {
        return {
          url,
          pid: child.pid!,
          stop: async () => {
            if (child.exitCode === null) {
              child.kill('SIGTERM');
              await new Promise((r) => child.once('exit', r));
            }
          },
        };
      }
    } catch {}
    await sleep(200);
  }
  child.kill('SIGKILL');
  throw new Error(`hashwatt on ${database} did not become ready`);
}
