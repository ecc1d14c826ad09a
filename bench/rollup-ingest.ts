// What the rollup job costs ingest: the ingest rate of hashwatt with the job running next to the
// rate without it, same transport, same load, interleaved rounds in the same run.
//
//   node bench/rollup-ingest.ts [--quick]
//
// Two services run side by side, each on a database of its own, each started once: A with the job
// effectively off (an interval of 10^6 s; its one run a second after start finds nothing), B with
// the default job (every 10 s), never held or paused. Rounds alternate A, B; each offers the
// simulator's `load` scenario (200 000 ASICs on four sites, over WebSocket, the fastest path) at
// 200 000 readings/s, above what this machine stores, and measures what the service stored per
// second from its own counters (bench/ingest.ts's measureWindow): the rate it holds.
//
// B is measured in its steady state, where the job keeps up with saturated ingest. The job builds a
// minute once it has closed (plus 5 s of grace), at its next 10 s tick: its work comes in one burst
// a minute, for the minute before. So B's load starts 61 s before a minute boundary m, and B's
// window is the 60 s from m + 2 s: it holds the whole build of the minute before m, a minute of B's
// load, and no part of any other build (the next minute closes at m + 60 s and is built from m + 65 s
// on). A 60 s window then carries a minute of the job's work for a minute of ingest, its real share.
// The job kept up when, at the window's end, nothing from before m is left unbuilt
// (`unbuilt_before_window_s`: more means it fell behind, or paced itself as a backlog). After B's load
// stops, the benchmark waits until B's job has built all of it (`drain_s`), so B's job never runs in
// A's windows. A window that crossed an hour also built B's site-hours so far (`hours_built`).
//
// Used by bench/index.ts (`npm run bench`); standalone it writes bench/results/rollup-ingest.json.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import pg from 'pg';
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
import {
  machineBusyUs,
  parentPid,
  processCpuUs,
  type ServerCpu,
  serverCpu,
  serverCpuBetweenUs,
} from './support/postgres-cpu.ts';
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
  /** Measured seconds of each round. */
  windowS: number;
  /** Rounds per variant. */
  rounds: number;
  /** B in its steady state (above): its load from 61 s before a minute, a 60 s window after it. */
  steady: boolean;
}

export const FULL_ROLLUP_INGEST_PLAN: RollupIngestPlan = {
  // A minute: the job's burst for one minute of load, and that minute's ingest (header).
  windowS: 60,
  rounds: 2,
  steady: true,
};
export const QUICK_ROLLUP_INGEST_PLAN: RollupIngestPlan = {
  windowS: 8,
  rounds: 1,
  steady: false,
};

export interface RoundResult {
  variant: 'job_off' | 'job_on';
  /** When the load started (ISO). */
  started: string;
  /** Seconds of load before the window (B steady: from 61 s before its minute). */
  lead_s: number;
  window: Window;
  /** Stored below 97 % of the offered rate: the round measured the rate the service holds. */
  saturated: boolean;
  /** Postgres CPU of every backend of the variant's database, per reading stored in the window. */
  pg_cpu_us_per_reading: number | null;
  /** Busy cores of the whole machine over the window (2 = all of this machine). */
  machine_busy_cores: number;
  /**
   * Of those, what the whole Postgres server used: both variants' backends, its checkpointer and
   * writers, and processes that exited in the window (from the postmaster's reaped children).
   */
  pg_server_cores: number;
  /** Of those, what other processes than the benchmark's and the server's used: the machine is shared. */
  other_load_cores: number;
  /** What the variant's rollup job built inside the window (from its counters). */
  site_minutes_built: number;
  hours_built: number;
  job_failures: number;
  /**
   * B: seconds of readings from before the window's minute still not rolled up at the window's end
   * (0: the job kept up with ingest; more: it fell behind).
   */
  unbuilt_before_window_s: number | null;
  /** B: seconds after its load stopped until its job had built all of it (A's window waits for it). */
  drain_s: number | null;
}

export interface RollupIngestResult {
  date: string;
  plan: RollupIngestPlan;
  transport: typeof TRANSPORT;
  offered_per_s: number;
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
  /** Mean over mean. */
  ratio_of_means: number;
  /** The job's Postgres work per ingested reading: B's backends' CPU per reading minus A's. */
  job_pg_cpu_us_per_reading: number | null;
  /** Steady plan: every B window's job built all that was due (nothing before its minute left). */
  job_kept_up: boolean | null;
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

/** One variant: its service, and a session on its database that watches it. */
interface Variant {
  name: 'job_off' | 'job_on';
  database: string;
  service: BenchService;
  monitor: pg.Client;
  /** The server's postmaster (the monitor's backend's parent): both variants share it. */
  postmasterPid: number;
}

/** CPU (µs) of every backend of `database` now, by pid. */
async function backendCpu(monitor: pg.Client, database: string): Promise<Map<number, number>> {
  const { rows } = await monitor.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE datname = $1',
    [database],
  );
  return new Map(rows.map((r) => [r.pid, processCpuUs(r.pid)]));
}

/** The oldest reading time (epoch ms) the variant's rollup job has still to build, or null. */
async function oldestUnbuiltMs(v: Variant): Promise<number | null> {
  const { rows } = await v.monitor.query<{ t: number | null }>(
    'SELECT (extract(epoch FROM min(from_ts)) * 1000)::float8 AS t FROM rollup_dirty',
  );
  return rows[0]?.t ?? null;
}

/**
 * Waits until B's job has built every minute of its readings and nothing runs on its database;
 * returns the seconds that took. Its last minute closes up to a minute after the load, plus the
 * grace and a tick: ~75 s.
 */
async function drain(v: Variant): Promise<number> {
  const t0 = performance.now();
  for (let quiet = 0; quiet < 3; ) {
    if ((performance.now() - t0) / 1000 > 240)
      throw new Error(`${v.name}: the rollup job did not drain in 240 s`);
    await sleep(500);
    const { rows } = await v.monitor.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity
       WHERE datname = $1 AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')`,
      [v.database],
    );
    const idle = Number(rows[0]!.n) === 0 && (await oldestUnbuiltMs(v)) === null;
    quiet = idle ? quiet + 1 : 0;
  }
  return Math.round((performance.now() - t0) / 100) / 10;
}

async function startVariant(name: Variant['name']): Promise<Variant> {
  const database = name === 'job_off' ? DB_OFF : DB_ON;
  await createDatabase(database);
  const monitor = new pg.Client({ connectionString: databaseUrl(database) });
  await monitor.connect();
  const { rows } = await monitor.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const postmasterPid = parentPid(rows[0]!.pid);
  const service = await startServiceOn(database, {
    LOG_LEVEL: 'error',
    ...(name === 'job_off' && { HASHWATT_ROLLUP_INTERVAL_S: '1000000' }),
  });
  return { name, database, service, monitor, postmasterPid };
}

const MINUTE_MS = 60_000;
/** B's load runs this long before its window's minute, so that the minute before is all load. */
const STEADY_LEAD_MS = 61_000;
/** The window starts this long after the minute: the build of the minute before starts ≥ 5 s after it. */
const STEADY_OFFSET_MS = 2_000;

/** The next minute boundary B's steady round can be placed on, its load starting no sooner than `earliestMs`. */
function steadyMinute(earliestMs: number): number {
  return Math.ceil((earliestMs + STEADY_LEAD_MS) / MINUTE_MS) * MINUTE_MS;
}

/**
 * One measured round of a variant at `rate`. `minuteMs` (B, steady plan): the minute boundary its
 * window starts after; the load starts 61 s before it.
 */
async function round(
  v: Variant,
  all: readonly Variant[],
  rate: number,
  seconds: number,
  minuteMs?: number,
): Promise<RoundResult> {
  interface Snapshot {
    busy: number;
    /** This variant's backends, by pid. */
    cpu: Map<number, number>;
    /** Both services, the simulator and this process. */
    clients: number;
    /** The whole server (both databases' backends among it). */
    server: ServerCpu;
  }
  let begun: Promise<Snapshot> | undefined;
  let ended: Promise<[Snapshot, number | null]> | undefined;
  let simulatorPid: number | undefined;
  const snapshot = async (): Promise<Snapshot> => {
    const busy = machineBusyUs();
    const self = process.cpuUsage();
    let clients = self.user + self.system + (simulatorPid === undefined ? 0 : processCpuUs(simulatorPid));
    let cpu = new Map<number, number>();
    for (const x of all) {
      clients += processCpuUs(x.service.pid);
      if (x === v) cpu = await backendCpu(x.monitor, x.database);
    }
    return { busy, cpu, clients, server: serverCpu(v.postmasterPid) };
  };
  if (minuteMs !== undefined) await sleep(Math.max(0, minuteMs - STEADY_LEAD_MS - Date.now()));
  const loadStart = Date.now();
  const settleS =
    minuteMs === undefined ? undefined : Math.max(1, (minuteMs + STEADY_OFFSET_MS - loadStart) / 1000);
  const around = {
    ...(settleS !== undefined && { settleS }),
    begin: () => {
      begun = snapshot();
      // Awaited once the window is over; a failure surfaces there, not as an unhandled rejection.
      begun.catch(() => {});
    },
    end: () => {
      ended = Promise.all([snapshot(), v.name === 'job_on' ? oldestUnbuiltMs(v) : Promise.resolve(null)]);
      ended.catch(() => {});
    },
  };
  const started = new Date(loadStart).toISOString();
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
  const [e, oldest] = await ended!;
  let unbuilt: number | null = null;
  let drainS: number | null = null;
  if (v.name === 'job_on') {
    const windowMinute = minuteMs ?? Math.floor(loadStart / MINUTE_MS) * MINUTE_MS;
    unbuilt = oldest !== null ? Math.max(0, (windowMinute - oldest) / 1000) : 0;
    drainS = await drain(v);
  }
  let pgUs = 0;
  for (const [pid, cpu] of e.cpu) pgUs += cpu - (b.cpu.get(pid) ?? 0);
  const serverUs = serverCpuBetweenUs(b.server, e.server);
  const stored = m.window.readings_per_s * m.elapsedS;
  const delta = (name: string, ...labels: string[]) =>
    sum(m.after, name, ...labels) - sum(m.before, name, ...labels);
  const r: RoundResult = {
    variant: v.name,
    started,
    lead_s: Math.round((settleS ?? Math.min(3, Math.max(1, Math.floor(seconds / 4)))) * 10) / 10,
    window: m.window,
    saturated: m.window.readings_per_s < 0.97 * m.window.offered_per_s,
    pg_cpu_us_per_reading: stored > 0 ? Math.round((pgUs / stored) * 100) / 100 : null,
    machine_busy_cores: Math.round(((e.busy - b.busy) / 1e6 / m.elapsedS) * 100) / 100,
    pg_server_cores: Math.round((serverUs / 1e6 / m.elapsedS) * 100) / 100,
    other_load_cores:
      Math.round(
        (Math.max(0, e.busy - b.busy - (e.clients - b.clients) - serverUs) / 1e6 / m.elapsedS) * 100,
      ) / 100,
    site_minutes_built: delta('hashwatt_rollup_buckets_built_total', 'tier="1m"'),
    hours_built: delta('hashwatt_rollup_buckets_built_total', 'tier="1h"'),
    job_failures: delta('hashwatt_rollup_failures_total'),
    unbuilt_before_window_s: unbuilt,
    drain_s: drainS,
  };
  log(
    `  ${v.name}: stored ${r.window.readings_per_s}/s of ${rate}/s offered${r.saturated ? '' : ' (not saturated)'}; PG ${r.pg_cpu_us_per_reading} µs/reading; job built ${r.site_minutes_built} site-minutes, ${r.hours_built} hours${r.job_failures ? `, ${r.job_failures} failed runs` : ''}; Postgres server ${r.pg_server_cores} cores, other load ${r.other_load_cores} cores${unbuilt ? `; ${unbuilt} s of earlier readings not rolled up` : ''}${drainS === null ? '' : `; drained ${drainS} s after the load`}`,
  );
  return r;
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
    // B's job builds the warm-up's readings before anything is measured.
    await drain(on);
    const rate = OFFERED_PER_S;
    const rounds: RoundResult[] = [];
    for (let i = 0; i < plan.rounds; i++) {
      rounds.push(await round(off, variants, rate, plan.windowS));
      rounds.push(
        await round(on, variants, rate, plan.windowS, plan.steady ? steadyMinute(Date.now()) : undefined),
      );
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
      job_kept_up: plan.steady ? of('job_on').every((r) => r.unbuilt_before_window_s === 0) : null,
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
  const onRounds = r.rounds.filter((x) => x.variant === 'job_on');
  const behind = onRounds
    .filter((x) => (x.unbuilt_before_window_s ?? 0) > 0)
    .map((x) => x.unbuilt_before_window_s);
  const line = (name: string, s: RollupIngestResult['job_off'], rounds: RoundResult[]) =>
    `| ${name} | ${n0(s.readings_per_s)} (${rounds.map((x) => n0(x.window.readings_per_s)).join(', ')}) | ${s.pg_cpu_us_per_reading ?? '–'} µs | ${s.cpu_s_per_100k_samples ?? '–'} s | ${rounds.reduce((a, x) => a + x.site_minutes_built, 0)} / ${rounds.reduce((a, x) => a + x.hours_built, 0)} |`;
  const keptUp =
    r.job_kept_up === null
      ? "Quick: B's windows are not placed on the job's minute, so they may hold no build; a smoke check only."
      : r.job_kept_up
        ? `**The job kept up**: at the end of every B window nothing from before its minute was left unbuilt; each B window held one minute's build for one minute of load, B loaded from 61 s before (B drained ${onRounds.map((x) => x.drain_s).join(', ')} s after its load).`
        : `**The job fell behind**: at the end of ${behind.length} of ${onRounds.length} B windows, ${behind.join(', ')} s of earlier readings were not rolled up.`;
  return [
    `| rollup job, ${r.plan.rounds} interleaved ${r.plan.windowS} s rounds each, WebSocket, ${n0(r.offered_per_s)}/s offered | readings/s stored, median (rounds) | Postgres CPU per reading | service CPU per 100k samples | site-minutes / site-hours built in the windows |`,
    '|---|---|---|---|---|',
    line(
      'off (interval 10⁶ s)',
      r.job_off,
      r.rounds.filter((x) => x.variant === 'job_off'),
    ),
    line('on (default: every 10 s), steady state', r.job_on, onRounds),
    '',
    `With the job / without: **${r.ratio}** (${goal}; per round ${r.round_ratios.join(', ')}; mean over mean ${r.ratio_of_means}). The job's Postgres work per ingested reading: ${r.job_pg_cpu_us_per_reading ?? '–'} µs. ` +
      `The Postgres server's CPU per round (cores; both variants' databases, its writers and exited processes): ${r.rounds.map((x) => `${x.variant === 'job_on' ? 'on' : 'off'} ${x.pg_server_cores}`).join(', ')}. ` +
      `Other processes' load on the machine per round (cores): ${r.rounds.map((x) => `${x.variant === 'job_on' ? 'on' : 'off'} ${x.other_load_cores}`).join(', ')}. ` +
      `${keptUp} ` +
      `Every round offered ${n0(r.offered_per_s)}/s, past what the service stores${unsaturated ? `; **${unsaturated} round(s) not saturated**` : ''} (bench/rollup-ingest.ts, header).`,
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
