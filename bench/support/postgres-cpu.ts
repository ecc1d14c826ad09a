/**
 * Connections whose server-side CPU a benchmark can read: Postgres runs on this machine, so each
 * connection's backend process is visible in /proc. Shared by the storage-shape benchmarks.
 */
import { readdirSync, readFileSync } from 'node:fs';
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

/**
 * The fields of /proc/PID/stat after the command name (which may hold spaces): [0] is state, [1]
 * the parent's pid, [11..14] utime, stime, cutime and cstime in clock ticks. Throws once it is gone.
 */
function statFields(pid: number | string): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** The sum of stat fields [from, to) as µs of CPU. */
const ticksUs = (fields: string[], from: number, to: number) =>
  (fields.slice(from, to).reduce((a, x) => a + Number(x), 0) * 1e6) / CLK_TCK;

/** utime + stime of a process in µs; 0 once it is gone. */
export function processCpuUs(pid: number): number {
  try {
    return ticksUs(statFields(pid), 11, 13);
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

/** The CPU of a Postgres server at one instant: each live process's, and what its exited ones used. */
export interface ServerCpu {
  /** The postmaster's children now (backends, workers, checkpointer, writers), utime + stime in µs by pid. */
  children: Map<number, number>;
  /** The postmaster's own CPU plus its reaped children's (cutime + cstime): every process that has exited. */
  postmasterAndExitedUs: number;
}

/** The postmaster a backend belongs to (its parent process). */
export function parentPid(pid: number): number {
  return Number(statFields(pid)[1]);
}

/** The server's CPU now, read from /proc: run on the machine the server runs on. */
export function serverCpu(postmasterPid: number): ServerCpu {
  const children = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = statFields(entry);
      if (Number(fields[1]) === postmasterPid) children.set(Number(entry), ticksUs(fields, 11, 13));
    } catch {
      // Exited between the listing and the read: its time is in the postmaster's reaped children.
    }
  }
  return { children, postmasterAndExitedUs: ticksUs(statFields(postmasterPid), 11, 15) };
}

/**
 * The server's CPU between two readings, every process counted once for its time in between: a
 * process alive at both counts its difference; one born since counts all of its own; one that
 * exited since counts what the postmaster reaped of it less what it had used before. Summing the
 * live processes at each end instead would book a busy connection that closed in between as
 * negative load (its whole life's CPU gone from the second sum).
 */
export function serverCpuBetweenUs(before: ServerCpu, after: ServerCpu): number {
  let us = after.postmasterAndExitedUs - before.postmasterAndExitedUs;
  for (const [pid, cpu] of after.children) us += cpu - (before.children.get(pid) ?? 0);
  for (const [pid, cpu] of before.children) if (!after.children.has(pid)) us -= cpu;
  return us;
}
