// `npm run bench [-- --quick]`: every benchmark of hashwatt in one run, so the ratios compare numbers
// taken on the same machine minutes apart (the push protocols against the JSON HTTP path, seconds
// apart on the same service). Writes bench/results/latest.json (keys are stable: other
// tools read them) and the table in bench/README.md.
//
// Needs Postgres at $BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) and,
// for the peers, Debian's victoria-metrics and influxdb packages: a missing one is installed with
// apt-get first (bench/support/peers.ts), and a peer still missing is skipped with the reason,
// with no ratio against it.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import {
  ADMIN_URL,
  dropBenchDatabase,
  FULL_PLAN,
  measureBaseline,
  QUICK_PLAN,
  rampTransport,
  SAMPLES_PER_READING,
  startBenchService,
  warmUp,
} from './ingest.ts';
import { measureInfluxDB } from './peer-influxdb.ts';
import { measureVictoriaMetrics } from './peer-victoriametrics.ts';
import {
  FULL_PUSH_PLAN,
  formatPushNote,
  formatPushRows,
  measurePushProtocols,
  PUSH_TABLE_HEAD,
  QUICK_PUSH_PLAN,
} from './push-protocols.ts';
import { FULL_READ_PLAN, formatReadLatency, measureReadLatency, QUICK_READ_PLAN } from './read-latency.ts';
import {
  FULL_ROLLUP_INGEST_PLAN,
  formatRollupIngest,
  measureRollupIngest,
  QUICK_ROLLUP_INGEST_PLAN,
} from './rollup-ingest.ts';
import { measureScrape } from './scrape.ts';
import { installMissingPeers } from './support/peers.ts';

const quick = process.argv.includes('--quick');
const plan = quick ? QUICK_PLAN : FULL_PLAN;
const started = Date.now();
const log = (line: string) => process.stderr.write(`${line}\n`);

/** Same-run goals for hashwatt's best readings/s over each reference's readings (or lines)/s. */
const INGEST_GOALS = { baseline: 0.6, influxdb: 1.0, victoriametrics: 0.6 } as const;

/**
 * The commit measured, read before anything is written: HEAD, and whether the working tree
 * differed from it (`git status --porcelain` not empty). Nulls outside a git checkout.
 */
function gitCommit(): { commit: string | null; dirty: boolean | null } {
  const git = (...args: string[]) =>
    execFileSync('git', args, {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  try {
    return { commit: git('rev-parse', 'HEAD').trim(), dirty: git('status', '--porcelain').trim() !== '' };
  } catch {
    return { commit: null, dirty: null };
  }
}
const { commit, dirty } = gitCommit();

async function postgresVersion(): Promise<string> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    const { rows } = await c.query<{ v: string; sb: string; sc: string }>(
      `SELECT version() AS v, current_setting('shared_buffers') AS sb, current_setting('synchronous_commit') AS sc`,
    );
    const r = rows[0]!;
    return `${r.v.split(' ').slice(0, 2).join(' ')} (shared_buffers ${r.sb}, synchronous_commit ${r.sc})`;
  } finally {
    await c.end();
  }
}

const machine = {
  cores: os.cpus().length,
  cpu: os.cpus()[0]?.model ?? 'unknown',
  memory_gb: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  postgres: await postgresVersion(),
};
log(
  `hashwatt bench${quick ? ' (quick)' : ''} of ${commit?.slice(0, 7) ?? 'an unknown commit'}${dirty ? ' + uncommitted changes' : ''} on ${machine.cores} cores, ${machine.node}, ${machine.postgres}`,
);

// Before any measurement, so an install's download and unpacking never lands in one.
const peerSkips = await installMissingPeers(['victoriametrics', 'influxdb'], log);

log('ingest: starting hashwatt and registering the load scenario’s 200 000 devices');
const service = await startBenchService();
let ingest: {
  http: Awaited<ReturnType<typeof rampTransport>>;
  ws: Awaited<ReturnType<typeof rampTransport>>;
  baseline: Awaited<ReturnType<typeof measureBaseline>>;
  push: Awaited<ReturnType<typeof measurePushProtocols>>;
};
try {
  await warmUp(service, plan);
  log('ingest over HTTP');
  const http = await rampTransport(service, 'http', plan);
  log('ingest over WebSocket');
  const ws = await rampTransport(service, 'ws', plan);
  log('push protocols (remote_write, line protocol, OTLP) at multiples of the HTTP rate just held');
  // Should the HTTP ramp hold nothing, the rate it last probed at half still scales the probes.
  const push = await measurePushProtocols(
    service,
    http.readings_per_s > 0 ? http.readings_per_s : http.half_rate,
    quick ? QUICK_PUSH_PLAN : FULL_PUSH_PLAN,
  );
  await service.stop();
  log('baseline: the same rows straight into the same table');
  const baseline = await measureBaseline(plan.baselineS);
  ingest = { http, ws, baseline, push };
} finally {
  await service.stop();
  await dropBenchDatabase();
}

// The quick run uses a tenth of the fleet: creating a million series takes VictoriaMetrics 10-20 s.
const peerOptions = { seconds: plan.baselineS, devices: quick ? 20_000 : 200_000, sites: 4 };
log('peer: VictoriaMetrics ingesting the same readings as line protocol');
const victoriaMetrics = peerSkips.victoriametrics ?? (await measureVictoriaMetrics(peerOptions));
log('peer: InfluxDB 1.6 ingesting the same readings as line protocol, each write fsynced to its WAL');
const influxdb = peerSkips.influxdb ?? (await measureInfluxDB(peerOptions));

log(quick ? 'scrape: 100 sites / 30 000 devices (quick)' : 'scrape: 1 000 sites / 300 000 devices');
const scrape = quick ? await measureScrape(100, 30_000, 5) : await measureScrape(1000, 300_000, 20);

log(
  quick
    ? 'read latency: 3 days of 10 sites / 300 devices, tiers built by the rollup job (quick)'
    : 'read latency: 30 days of 10 sites / 300 devices, tiers built by the rollup job (the upgrade)',
);
const reads = await measureReadLatency(quick ? QUICK_READ_PLAN : FULL_READ_PLAN);

log('rollup job vs ingest: the same load with the job off and keeping current, interleaved');
const rollupIngest = await measureRollupIngest(
  quick ? QUICK_ROLLUP_INGEST_PLAN : FULL_ROLLUP_INGEST_PLAN,
  quick,
);

const bestReadings = Math.max(ingest.http.readings_per_s, ingest.ws.readings_per_s);
const round3 = (n: number) => Math.round(n * 1000) / 1000;
// Readings against lines: the same unit of work (hashwatt counts a reading's status as a sample,
// the peers carry it as a tag, so samples per reading differ by one). Never against a skipped peer.
const ratioTo = (peer: { lines_per_s: number } | { skipped: string }) =>
  'lines_per_s' in peer ? round3(bestReadings / peer.lines_per_s) : null;
const result = {
  date: new Date().toISOString(),
  quick,
  commit,
  dirty,
  duration_s: 0,
  machine,
  plan,
  ingest: {
    http: ingest.http,
    ws: ingest.ws,
    baseline: {
      ...ingest.baseline,
      samples_per_s: ingest.baseline.readings_per_s * SAMPLES_PER_READING,
    },
    ratio_to_baseline: round3(bestReadings / ingest.baseline.readings_per_s),
    // Each push protocol's readings/s over the HTTP path's, same fleet and run (goal: ≥ 0.5).
    push: ingest.push,
    peer: { victoriametrics: victoriaMetrics, influxdb },
    // Best readings/s over each peer's lines/s; null when the peer was skipped. ratio_to_peer is
    // the VictoriaMetrics one under the name it had before there were two peers.
    ratio_to_peer: ratioTo(victoriaMetrics),
    ratio_to_victoriametrics: ratioTo(victoriaMetrics),
    ratio_to_influxdb: ratioTo(influxdb),
    acknowledgement: {
      hashwatt: 'after the transaction holding the reading has committed (fsync on, synchronous_commit on)',
      victoriametrics: 'before the data reaches disk (in-memory buffer, flushed about every second)',
      influxdb: 'after the WAL fsync (wal-fsync-delay 0s: each write waits for an fsync of its WAL segment)',
    },
  },
  scrape: {
    [`ms_${Math.round(scrape.devices / 1000)}k_devices`]: scrape.scrape.p50_ms,
    ms_300k_devices: scrape.devices === 300_000 ? scrape.scrape.p50_ms : null,
    detail: scrape,
  },
  // History API through HTTP on rollups, 30 days of 10 sites (quick: 3 days); goals: p95 < 50 ms
  // (24 h × 1 min) and < 100 ms (30 d × 1 h).
  query: {
    series_24h_1m_p95_ms: reads.queries.site_24h_1m.p95_ms,
    series_24h_1m_p50_ms: reads.queries.site_24h_1m.p50_ms,
    series_30d_1h_p95_ms: reads.queries.site_30d_1h.p95_ms,
    series_30d_1h_p50_ms: reads.queries.site_30d_1h.p50_ms,
    device_series_30d_1h_p95_ms: reads.queries.device_30d_1h.p95_ms,
    device_series_30d_1h_p50_ms: reads.queries.device_30d_1h.p50_ms,
    energy_30d_day_p95_ms: reads.queries.energy_30d_day.p95_ms,
    energy_30d_day_p50_ms: reads.queries.energy_30d_day.p50_ms,
    detail: reads,
  },
  rollups: {
    // The upgrade: the rollup job building every tier from the raw backlog of `query.detail`.
    build_s: reads.build.seconds,
    build_raw_rows_per_s: reads.build.raw_rows_per_s,
    build_pg_cpu_us_per_raw_row: reads.build.pg_cpu_us_per_raw_row,
    rows: reads.rows,
    // Ingest readings/s with the job over without it, same run, interleaved (goal ≥ 0.9).
    ingest_ratio_with_job: rollupIngest.ratio,
    job_pg_cpu_us_per_reading: rollupIngest.job_pg_cpu_us_per_reading,
    ingest: rollupIngest,
  },
  service: {
    rss_mb: Math.max(ingest.http.rss_mb, ingest.ws.rss_mb),
    // The goal's figure: RSS while each transport holds its rate (null when one held nothing).
    rss_held_mb:
      ingest.http.rss_held_mb === null || ingest.ws.rss_held_mb === null
        ? null
        : Math.max(ingest.http.rss_held_mb, ingest.ws.rss_held_mb),
  },
};
result.duration_s = Math.round((Date.now() - started) / 1000);

mkdirSync('bench/results', { recursive: true });
const file = quick ? 'bench/results/latest.quick.json' : 'bench/results/latest.json';
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);

const n = (x: number | null | undefined) =>
  x === null || x === undefined ? '–' : Math.round(x).toLocaleString('en-US');
const skippedRow = (name: string, peer: { skipped: string }) =>
  `| ${name} | – (skipped: ${peer.skipped}) | – | – |`;
const victoriaMetricsRow =
  'samples_per_s' in victoriaMetrics
    ? `| VictoriaMetrics ${victoriaMetrics.version}, InfluxDB line protocol (acks before disk) | ${n(victoriaMetrics.lines_per_s)} lines | ${n(victoriaMetrics.samples_per_s)} | – |`
    : skippedRow('VictoriaMetrics', victoriaMetrics);
const influxdbRow =
  'samples_per_s' in influxdb
    ? `| InfluxDB ${influxdb.version}, line protocol; wal-fsync-delay ${influxdb.settings.wal_fsync_delay}, max-series-per-database ${influxdb.settings.max_series_per_database} and max-values-per-tag ${influxdb.settings.max_values_per_tag} (0: no limit), ${influxdb.settings.index_version} index (acks after the WAL fsync) | ${n(influxdb.lines_per_s)} lines | ${n(influxdb.samples_per_s)} | – |`
    : skippedRow('InfluxDB', influxdb);
/** `hashwatt / <what>: **ratio** (goal ≥ x: met)`; a null ratio is a skipped peer, its row says why. */
const ratioLine = (what: string, ratio: number | null, goal: number) =>
  ratio === null
    ? `hashwatt / ${what}: **–** (goal ≥ ${goal.toFixed(1)}: not measured, the peer was skipped)`
    : `hashwatt / ${what}: **${ratio}** (goal ≥ ${goal.toFixed(1)}: ${ratio >= goal ? 'met' : 'not met'})`;
const table = [
  `Commit \`${commit?.slice(0, 7) ?? 'unknown'}\`${dirty ? ' + uncommitted changes' : ''}, ${quick ? 'quick run (`--quick`, smaller and shorter)' : 'full run'}. Measured ${result.date.slice(0, 10)} on ${machine.cores} cores (${machine.cpu}), ${machine.node}, ${machine.postgres}; \`npm run bench\` took ${result.duration_s} s.`,
  '',
  '| path | readings/s | samples/s | ack p99 at half rate (goal < 250 ms) |',
  '|---|---|---|---|',
  `| hashwatt over HTTP (gzip), held ${plan.sustainS} s, no refusals | ${n(ingest.http.readings_per_s)} | ${n(ingest.http.samples_per_s)} | ${ingest.http.ack_p99_ms ?? '–'} ms |`,
  `| hashwatt over WebSocket, held ${plan.sustainS} s, no refusals | ${n(ingest.ws.readings_per_s)} | ${n(ingest.ws.samples_per_s)} | ${ingest.ws.ack_p99_ms ?? '–'} ms |`,
  `| raw write, same table/key/dedup: unnest 5k x 2 conns, text arrays | ${n(ingest.baseline.unnest_readings_per_s)} | ${n(ingest.baseline.unnest_readings_per_s * SAMPLES_PER_READING)} | – |`,
  `| raw write, same table/key/dedup: unnest 5k x 2 conns, binary arrays (as hashwatt sends) | ${n(ingest.baseline.unnest_binary_readings_per_s)} | ${n(ingest.baseline.unnest_binary_readings_per_s * SAMPLES_PER_READING)} | – |`,
  `| raw write, same table/key/dedup: one COPY stream into staging, merged per 50k | ${n(ingest.baseline.copy_readings_per_s)} | ${n(ingest.baseline.copy_readings_per_s * SAMPLES_PER_READING)} | – |`,
  `| for reference, bare COPY of fresh keys (no de-duplication; not a baseline) | ${n(ingest.baseline.copy_without_dedup_readings_per_s)} | ${n(ingest.baseline.copy_without_dedup_readings_per_s * SAMPLES_PER_READING)} | – |`,
  victoriaMetricsRow,
  influxdbRow,
  '',
  ...PUSH_TABLE_HEAD,
  ...formatPushRows(ingest.push),
  '',
  formatPushNote(ingest.push, ingest.http),
  '',
  `${[
    ratioLine('raw write', result.ingest.ratio_to_baseline, INGEST_GOALS.baseline),
    ratioLine('InfluxDB (readings per line)', result.ingest.ratio_to_influxdb, INGEST_GOALS.influxdb),
    ratioLine(
      'VictoriaMetrics (readings per line)',
      result.ingest.ratio_to_victoriametrics,
      INGEST_GOALS.victoriametrics,
    ),
  ].join('; ')}. ` +
    `Service RSS at the held rate ${result.service.rss_held_mb ?? '–'} MB (goal ≤ 300 MB: ${result.service.rss_held_mb !== null && result.service.rss_held_mb <= 300 ? 'met' : 'not met'}), peak over the whole ramp with its overload steps ${result.service.rss_mb} MB; CPU ${ingest.http.cpu_s_per_100k_samples ?? '–'} s (HTTP) / ${ingest.ws.cpu_s_per_100k_samples ?? '–'} s (WS) per 100k samples. ` +
    `Scrape at ${n(scrape.sites)} sites / ${n(scrape.devices)} devices: ${scrape.scrape.p50_ms} ms p50 (goal < 100 ms at 300,000 devices; fleet aggregate, refreshed in the background: ${scrape.fleet_aggregate.p50_ms} ms); \`GET /api/v1/fleet\` from the same snapshot: ${scrape.fleet_api.p50_ms} ms p50, ${scrape.fleet_api.p95_ms} ms p95.`,
  '',
  ...formatReadLatency(reads),
  '',
  ...formatRollupIngest(rollupIngest),
];
if (!quick) {
  const readme = readFileSync('bench/README.md', 'utf8');
  const begin = '<!-- results:begin -->';
  const end = '<!-- results:end -->';
  const updated = readme.replace(
    new RegExp(`${begin}[\\s\\S]*${end}`),
    `${begin}\n${table.join('\n')}\n${end}`,
  );
  writeFileSync('bench/README.md', updated);
}
console.log(table.join('\n'));
log(`wrote ${file}`);
