/**
 * Connections whose server-side CPU a benchmark can read: Postgres runs on this machine, so each
 * connection's backend process is visible in /proc. Shared by the storage-shape benchmarks.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';

/** The local Postgres the benchmarks create their private databases on. */
export const PG = { host: '127.0.0.1', port: 5432, user: 'postgres' };

/** Clock ticks per second of /proc's times (USER_HZ): 100 on Linux x86_64. */
const CLK_TCK = 100;

/** A client and the pid of its backend. */
export interface Conn {
  client: pg.Client;
  pid: number;
}

/** Connects to `database` and learns its backend's pid. */
export async function connect(database: string): Promise<Conn> {
  const client = new pg.Client({ ...PG, database });
  // A connection dropped while idle (e.g. by the cleanup's DROP DATABASE … FORCE) must not crash the process.
  client.on('error', (err) => console.error(`connection error: ${err.message}`));
  await client.connect();
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return { client, pid: rows[0]!.pid };
}

/** utime + stime of a process in µs; 0 once it is gone. */
export function processCpuUs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** Busy CPU of the whole machine in µs (idle and iowait excluded), to tell how loaded a run was. */
export function machineBusyUs(): number {
  const fields = readFileSync('/proc/stat', 'utf8')
    .split('\n', 1)[0]!
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  return ((total - fields[3]! - fields[4]!) * 1e6) / CLK_TCK;
}
