// What the rollup job costs ingest: the ingest rate of hashwatt with the job running next to the
// rate without it, same transport, same load, interleaved rounds in the same run.
//
//   node bench/rollup-ingest.ts [--quick]
//
// Two services run side by side, each on a database of its own, each started once: A with the job
// effectively off (an interval of 10^6 s; its one run a second after start finds nothing), B with
// the default job (every 10 s). Rounds alternate A, B, A, B; each offers the simulator's `load`
// scenario (200 000 ASICs on four sites, over WebSocket, the fastest path) at 200 000 readings/s,
// above what this machine stores, and measures what the service stored per second from its own
// counters (bench/ingest.ts's measureWindow): the rate it holds. A first round on B with its job
// held (the probe) shows the load saturates. Medians per variant, and their ratio (goal ≥ 0.9).
//
// The job builds a minute once it has closed (plus 5 s of grace): its work for a round's readings
// comes up to ~75 s after them, in one burst per minute, and the run that does it starts at the
// job's own 10 s tick. Left alone, B's job would build B's readings during A's rounds, and a short
// window would hold a build or not by chance. So the benchmark holds the service's job lease (the
// advisory lock of src/service.ts, which alerting, the fleet aggregate and retention share with the
// rollups) on B's database outside B's windows, and places each B window (full run): it begins once
// every minute of B's previous round has closed, and ends before any minute of its own closes. The
// job, released at the window's start, takes the lease at its next check and builds exactly the
// readings of B's previous round (the first B window: the probe's, a round of the same length) at
// its next tick, within 10 s, while B ingests: one round's worth of the job's work inside every B
// window, with the real job and statements. (Until the lease was shared, the window began on the
// job's tick, read from its own lease session; the shared session's last query is any job's.) Hours
// close once an hour: a window that crossed one also built every site-hour of B's readings so far
// (`hours_built`). Should the job build less than its backlog (it paces itself while ingest's write
// queue is filling), what it left shows per round in `unbuilt_before_round_s`: a ratio near 1 then
// means the job fell behind, not that it is free.
//
// Used by bench/index.ts (`npm run bench`); standalone it writes bench/results/rollup-ingest.json.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { ALERT_LOCK } from '../src/alerting/leader.ts';
import {
  ADMIN_TOKEN,
  type BenchService,
  FULL_PLAN,
  type MeasuredWindow,
  measureWindow,
  QUICK_PLAN,
  sum,
  type Window,
  warmUp,
} from './ingest.ts';
import { machineBusyUs, processCpuUs } from './support/postgres-cpu.ts';
import { createDatabase, databaseUrl, dropDatabase, startServiceOn } from './support/service.ts';

const DB_OFF = 'hashwatt_bench_rollup_off';
const DB_ON = 'hashwatt_bench_rollup_on';
const TRANSPORT = 'ws' as const;
/**
 * Past what this machine stores (~110-160k/s over WebSocket), so what is stored is the limit. Every
 * round offers the same: the simulator's own CPU (it shares the machine) is then the same too.
 */
const OFFERED_PER_S = 200_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`${line}\n`);

export interface RollupIngestPlan {
  /** Measured seconds of each round; the probe on B (B's first backlog) is as long. */
  windowS: number;
  /** Rounds per variant. */
  rounds: number;
  /** Place B's windows after B's closed minutes (above); off, the quick run is a smoke check only. */
  align: boolean;
}

export const FULL_ROLLUP_INGEST_PLAN: RollupIngestPlan = {
  windowS: 22,
  // Three: the median then stands when another process takes the machine for one round.
  rounds: 3,
  align: true,
};
export const QUICK_ROLLUP_INGEST_PLAN: RollupIngestPlan = {
  windowS: 8,
  rounds: 1,
  align: false,
};

export interface RoundResult {
  variant: 'job_off' | 'job_on';
  /** When the load started (ISO). */
  started: string;
  window: Window;
  /** Stored below 97 % of the offered rate: the round measured the rate the service holds. */
  saturated: boolean;
  /** Postgres CPU of every backend of the variant's database, per reading stored in the window. */
  pg_cpu_us_per_reading: number | null;
  /** Busy cores of the whole machine over the window (2 = all of this machine). */
  machine_busy_cores: number;
  /** Of those, what other processes than the benchmark's used: the machine is shared. */
  other_load_cores: number;
  /** What the variant's rollup job built inside the window (from its counters). */
  site_minutes_built: number;
  hours_built: number;
  job_failures: number;
  /** Seconds the variant's database stayed busy after the window (the job's last run finishing). */
  busy_after_s: number;
  /**
   * B: seconds of readings from before this round's minute still not rolled up after the window
   * (0: the job built its whole backlog; more: it fell behind, e.g. yielding to a saturated ingest).
   */
  unbuilt_before_round_s: number | null;
}

export interface RollupIngestResult {
  date: string;
  plan: RollupIngestPlan;
  transport: typeof TRANSPORT;
  offered_per_s: number;
  /** What B stored in the first round, its job held (not measured: its readings are B's first backlog). */
  probe_stored_per_s: number;
  job_off: {
    readings_per_s: number;
    pg_cpu_us_per_reading: number | null;
    cpu_s_per_100k_samples: number | null;
  };
  job_on: {
    readings_per_s: number;
    pg_cpu_us_per_reading: number | null;
    cpu_s_per_100k_samples: number | null;
  };
  /** Median readings/s with the job over the median without it (goal ≥ 0.9). */
  ratio: number;
  /** Each round's B over the A before it. */
  round_ratios: number[];
  /** Mean over mean: counts a window the job's burst fell into at its weight (the median may not). */
  ratio_of_means: number;
  /** The job's Postgres work per ingested reading: B's backends' CPU per reading minus A's. */
  job_pg_cpu_us_per_reading: number | null;
  rounds: RoundResult[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const medianOrNull = (xs: (number | null)[]): number | null => {
  const present = xs.filter((x): x is number => x !== null);
  return present.length ? Math.round(median(present) * 100) / 100 : null;
};

/** The simulator's load over WebSocket, as bench/ingest.ts offers it, as its own process. */
function offerLoad(url: string, rate: number, seconds: number, onPid?: (pid: number) => void): Promise<void> {
  const load = spawn(
    process.execPath,
    [
      'simulators/cli.ts',
      ...['--scenario', 'load', '--url', url, '--admin-token', ADMIN_TOKEN, '--transport', TRANSPORT],
      ...[
        '--rate',
        String(Math.round(rate)),
        '--duration',
        String(seconds),
        '--flush-ms',
        '1000',
        '--quiet',
        '--json',
      ],
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  if (load.pid !== undefined) onPid?.(load.pid);
  return new Promise((resolve) => load.once('exit', () => resolve()));
}

/** One variant: its service, and a session on its database that watches (and for B, holds the job's lease). */
interface Variant {
  name: 'job_off' | 'job_on';
  database: string;
  service: BenchService;
  monitor: pg.Client;
}

/** CPU (µs) of every backend of `database` now, by pid. */
async function backendCpu(monitor: pg.Client, database: string): Promise<Map<number, number>> {
  const { rows } = await monitor.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE datname = $1',
    [database],
  );
  return new Map(rows.map((r) => [r.pid, processCpuUs(r.pid)]));
}

/** Waits until nothing runs on the variant's database (its job's last transaction, ingest's last commit). */
async function settleDatabase(v: Variant): Promise<void> {
  let quiet = 0;
  for (let i = 0; i < 300 && quiet < 3; i++) {
    const { rows } = await v.monitor.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity
       WHERE datname = $1 AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')`,
      [v.database],
    );
    quiet = Number(rows[0]!.n) === 0 ? quiet + 1 : 0;
    await sleep(200);
  }
}

/** The service's job lease: the alert lock elects the replica that runs every background job (src/service.ts). */
const JOB_LOCK = ALERT_LOCK;
const LOCK_ARGS = [JOB_LOCK.classId, JOB_LOCK.objId];

/** B's job may run: the benchmark lets go of its lease; the job takes it at its next run (≤ 10 s). */
async function releaseJob(v: Variant): Promise<void> {
  await v.monitor.query('SELECT pg_advisory_unlock($1::int4, $2::int4)', LOCK_ARGS);
}

/**
 * B's job stops: its lease session is ended and the benchmark takes the lock before the job's next
 * run can (the job retries only at its next interval). A run already going finishes its transactions.
 */
async function holdJob(v: Variant): Promise<void> {
  await v.monitor.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'hashwatt-jobs'`,
    [v.database],
  );
  await v.monitor.query(`SET statement_timeout = '15s'`);
  try {
    await v.monitor.query('SELECT pg_advisory_lock($1::int4, $2::int4)', LOCK_ARGS);
  } catch (error) {
    throw new Error(`could not take the rollup lease back from the job on ${v.database}: ${String(error)}`);
  } finally {
    await v.monitor.query('RESET statement_timeout');
  }
}

async function startVariant(name: Variant['name']): Promise<Variant> {
  const database = name === 'job_off' ? DB_OFF : DB_ON;
  await createDatabase(database);
  const monitor = new pg.Client({ connectionString: databaseUrl(database) });
  await monitor.connect();
  // Held before the service starts, so B's job never runs outside B's windows.
  if (name === 'job_on') await monitor.query('SELECT pg_advisory_lock($1::int4, $2::int4)', LOCK_ARGS);
  const service = await startServiceOn(database, {
    // The lease hand-over above makes the service log at warn; failures are counted instead.
    LOG_LEVEL: 'error',
    ...(name === 'job_off' && { HASHWATT_ROLLUP_INTERVAL_S: '1000000' }),
  });
  return { name, database, service, monitor };
}

/** measureWindow's settle before it measures (bench/ingest.ts), for placing B's window. */
const settleSOf = (seconds: number) => Math.min(3, Math.max(1, Math.floor(seconds / 4)));
const MINUTE_MS = 60_000;
/** The job's grace for a closing minute (src/rollups/job.ts). */
const JOB_GRACE_MS = 5_000;

/** One measured round of a variant at `rate`; B's job runs in the window when `release`. */
async function round(
  v: Variant,
  all: readonly Variant[],
  rate: number,
  seconds: number,
  release: boolean,
): Promise<RoundResult> {
  interface Snapshot {
    busy: number;
    /** This variant's backends, by pid. */
    cpu: Map<number, number>;
    /** Everything of the benchmark's: both services, both databases' backends, the simulator, this process. */
    ours: number;
  }
  let begun: Promise<Snapshot> | undefined;
  let ended: Promise<Snapshot> | undefined;
  let simulatorPid: number | undefined;
  const snapshot = async (): Promise<Snapshot> => {
    const busy = machineBusyUs();
    const self = process.cpuUsage();
    let ours = self.user + self.system + (simulatorPid === undefined ? 0 : processCpuUs(simulatorPid));
    let cpu = new Map<number, number>();
    for (const x of all) {
      ours += processCpuUs(x.service.pid);
      const backends = await backendCpu(x.monitor, x.database);
      for (const us of backends.values()) ours += us;
      if (x === v) cpu = backends;
    }
    return { busy, cpu, ours };
  };
  const around = {
    begin: () => {
      begun = snapshot().then(async (s) => {
        if (release) await releaseJob(v);
        return s;
      });
      // Awaited once the window is over; a failure surfaces there, not as an unhandled rejection.
      begun.catch(() => {});
    },
    end: () => {
      ended = snapshot().then(async (s) => {
        if (release) await holdJob(v);
        return s;
      });
      ended.catch(() => {});
    },
  };
  const started = new Date().toISOString();
  const m: MeasuredWindow = await measureWindow(
    v.service,
    TRANSPORT,
    // One second past the window, so the simulator is still there to be read at its end.
    (s) => offerLoad(v.service.url, rate, s + 1, (pid) => (simulatorPid = pid)),
    rate,
    seconds,
    around,
  );
  const b = await begun!;
  const e = await ended!;
  const t0 = performance.now();
  await settleDatabase(v);
  // The quiet polls themselves take 0.6 s.
  const busyAfterS = Math.max(0, (performance.now() - t0) / 1000 - 0.6);
  let unbuilt: number | null = null;
  if (v.name === 'job_on') {
    const { rows } = await v.monitor.query<{ t: number | null }>(
      'SELECT (extract(epoch FROM min(from_ts)) * 1000)::float8 AS t FROM rollup_dirty',
    );
    const roundMinute = Math.floor(Date.parse(started) / MINUTE_MS) * MINUTE_MS;
    unbuilt = rows[0]?.t ? Math.max(0, (roundMinute - rows[0].t) / 1000) : 0;
  }
  let pgUs = 0;
  for (const [pid, cpu] of e.cpu) pgUs += cpu - (b.cpu.get(pid) ?? 0);
  const stored = m.window.readings_per_s * m.elapsedS;
  const delta = (name: string, ...labels: string[]) =>
    sum(m.after, name, ...labels) - sum(m.before, name, ...labels);
  const r: RoundResult = {
    variant: v.name,
    started,
    window: m.window,
    saturated: m.window.readings_per_s < 0.97 * m.window.offered_per_s,
    pg_cpu_us_per_reading: stored > 0 ? Math.round((pgUs / stored) * 100) / 100 : null,
    machine_busy_cores: Math.round(((e.busy - b.busy) / 1e6 / m.elapsedS) * 100) / 100,
    other_load_cores:
      Math.round((Math.max(0, e.busy - b.busy - (e.ours - b.ours)) / 1e6 / m.elapsedS) * 100) / 100,
    site_minutes_built: delta('hashwatt_rollup_buckets_built_total', 'tier="1m"'),
    hours_built: delta('hashwatt_rollup_buckets_built_total', 'tier="1h"'),
    job_failures: delta('hashwatt_rollup_failures_total'),
    busy_after_s: Math.round(busyAfterS * 10) / 10,
    unbuilt_before_round_s: unbuilt,
  };
  log(
    `  ${v.name}: stored ${r.window.readings_per_s}/s of ${rate}/s offered${r.saturated ? '' : ' (not saturated)'}; PG ${r.pg_cpu_us_per_reading} µs/reading; job built ${r.site_minutes_built} site-minutes, ${r.hours_built} hours${r.job_failures ? `, ${r.job_failures} failed runs` : ''}; busy ${r.busy_after_s} s after; other load ${r.other_load_cores} cores${unbuilt ? `; ${unbuilt} s of earlier readings not rolled up` : ''}`,
  );
  return r;
}

/**
 * The start of B's next round: its load starts so that the window begins once every minute of B's
 * readings up to `backlogEndMs` has closed, and the window (with a few seconds for the job's last
 * transaction) ends before its own first minute closes.
 */
function nextSlot(windowS: number, backlogEndMs: number): number {
  const settleMs = settleSOf(windowS) * 1000;
  const closedAt = Math.floor(backlogEndMs / MINUTE_MS) * MINUTE_MS + MINUTE_MS + JOB_GRACE_MS;
  for (let start = Math.max(Date.now() + 500, closedAt + 250 - settleMs); ; start += 250) {
    const ownClose = Math.ceil((start + 1) / MINUTE_MS) * MINUTE_MS + JOB_GRACE_MS;
    if (start + settleMs + windowS * 1000 + 3_000 < ownClose) return start;
  }
}

/** The measurement: see the file's header. */
export async function measureRollupIngest(
  plan: RollupIngestPlan,
  quick: boolean,
): Promise<RollupIngestResult> {
  const variants: Variant[] = [];
  try {
    variants.push(await startVariant('job_off'));
    variants.push(await startVariant('job_on'));
    const [off, on] = variants as [Variant, Variant];
    log('rollup job vs ingest: registering the load scenario’s devices on both services');
    const warm = quick ? QUICK_PLAN : FULL_PLAN;
    await Promise.all([warmUp(off.service, warm), warmUp(on.service, warm)]);
    // B with its job held: shows the load saturates, and leaves B's first backlog, a round's worth.
    const probe = await round(on, variants, OFFERED_PER_S, plan.windowS, false);
    let backlogEndMs = Date.now();
    const rate = OFFERED_PER_S;
    const rounds: RoundResult[] = [];
    for (let i = 0; i < plan.rounds; i++) {
      rounds.push(await round(off, variants, rate, plan.windowS, false));
      if (plan.align) await sleep(Math.max(0, nextSlot(plan.windowS, backlogEndMs) - Date.now()));
      rounds.push(await round(on, variants, rate, plan.windowS, true));
      backlogEndMs = Date.now();
    }
    const of = (name: Variant['name']) => rounds.filter((r) => r.variant === name);
    const summary = (name: Variant['name']) => ({
      readings_per_s: Math.round(median(of(name).map((r) => r.window.readings_per_s))),
      pg_cpu_us_per_reading: medianOrNull(of(name).map((r) => r.pg_cpu_us_per_reading)),
      cpu_s_per_100k_samples: medianOrNull(of(name).map((r) => r.window.cpu_s_per_100k_samples)),
    });
    const jobOff = summary('job_off');
    const jobOn = summary('job_on');
    const round3 = (n: number) => Math.round(n * 1000) / 1000;
    return {
      date: new Date().toISOString(),
      plan,
      transport: TRANSPORT,
      offered_per_s: rate,
      probe_stored_per_s: probe.window.readings_per_s,
      job_off: jobOff,
      job_on: jobOn,
      ratio: jobOff.readings_per_s > 0 ? round3(jobOn.readings_per_s / jobOff.readings_per_s) : 0,
      ratio_of_means: round3(
        of('job_on').reduce((a, x) => a + x.window.readings_per_s, 0) /
          Math.max(
            1,
            of('job_off').reduce((a, x) => a + x.window.readings_per_s, 0),
          ),
      ),
      round_ratios: of('job_on').map((b, i) => {
        const a = of('job_off')[i]!.window.readings_per_s;
        return a > 0 ? round3(b.window.readings_per_s / a) : 0;
      }),
      job_pg_cpu_us_per_reading:
        jobOn.pg_cpu_us_per_reading !== null && jobOff.pg_cpu_us_per_reading !== null
          ? Math.round((jobOn.pg_cpu_us_per_reading - jobOff.pg_cpu_us_per_reading) * 100) / 100
          : null,
      rounds,
    };
  } finally {
    for (const v of variants) {
      await v.service.stop();
      await v.monitor.end().catch(() => {});
    }
    // Also when a service failed to start (its variant never got listed).
    for (const database of [DB_OFF, DB_ON]) await dropDatabase(database);
  }
}

const n0 = (x: number) => Math.round(x).toLocaleString('en-US');

/** The rows of bench/README.md's table for the job's cost to ingest. */
export function formatRollupIngest(r: RollupIngestResult): string[] {
  const goal = r.ratio >= 0.9 ? 'goal ≥ 0.9 met' : '**goal ≥ 0.9 not met**';
  const unsaturated = r.rounds.filter((x) => !x.saturated).length;
  const behind = r.rounds
    .filter((x) => x.variant === 'job_on' && (x.unbuilt_before_round_s ?? 0) > 0)
    .map((x) => x.unbuilt_before_round_s);
  const line = (name: string, s: RollupIngestResult['job_off'], rounds: RoundResult[]) =>
    `| ${name} | ${n0(s.readings_per_s)} (${rounds.map((x) => n0(x.window.readings_per_s)).join(', ')}) | ${s.pg_cpu_us_per_reading ?? '–'} µs | ${s.cpu_s_per_100k_samples ?? '–'} s | ${rounds.reduce((a, x) => a + x.site_minutes_built, 0)} / ${rounds.reduce((a, x) => a + x.hours_built, 0)} |`;
  return [
    `| rollup job, ${r.plan.rounds} interleaved ${r.plan.windowS} s rounds each, WebSocket, ${n0(r.offered_per_s)}/s offered | readings/s stored, median (rounds) | Postgres CPU per reading | service CPU per 100k samples | site-minutes / site-hours built |`,
    '|---|---|---|---|---|',
    line(
      'off (interval 10⁶ s)',
      r.job_off,
      r.rounds.filter((x) => x.variant === 'job_off'),
    ),
    line(
      'on (default: every 10 s)',
      r.job_on,
      r.rounds.filter((x) => x.variant === 'job_on'),
    ),
    '',
    `With the job / without: **${r.ratio}** (${goal}; per round ${r.round_ratios.join(', ')}; mean over mean ${r.ratio_of_means}). The job's Postgres work per ingested reading: ${r.job_pg_cpu_us_per_reading ?? '–'} µs. ` +
      `Other processes' load on the machine per round (cores): ${r.rounds.map((x) => `${x.variant === 'job_on' ? 'on' : 'off'} ${x.other_load_cores}`).join(', ')}. ` +
      (behind.length
        ? `**The job fell behind**: after ${behind.length} of ${r.plan.rounds} B windows, ${behind.join(', ')} s of earlier readings were not rolled up. `
        : r.plan.align
          ? "The job built each B window's whole backlog. "
          : '') +
      `Every round offered ${n0(r.offered_per_s)}/s, past what the service stores (a first round on B, job held, stored ${n0(r.probe_stored_per_s)}/s)${unsaturated ? `; **${unsaturated} round(s) not saturated**` : ''}. ` +
      (r.plan.align
        ? "Each B window starts with B's previous round closed and waiting and the job's lease released, so the job's work for it falls in the window unless the job paces itself (the benchmark holds the service's job lease between B's windows: bench/rollup-ingest.ts)."
        : "Quick: B's windows are not placed after B's closed minutes, so the job may build nothing in them; a smoke check only."),
  ];
}

if (import.meta.main) {
  const quick = process.argv.includes('--quick');
  const started = Date.now();
  const result = await measureRollupIngest(quick ? QUICK_ROLLUP_INGEST_PLAN : FULL_ROLLUP_INGEST_PLAN, quick);
  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/rollup-ingest${quick ? '.quick' : ''}.json`;
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(formatRollupIngest(result).join('\n'));
  log(`wrote ${file} in ${Math.round((Date.now() - started) / 1000)} s`);
}
