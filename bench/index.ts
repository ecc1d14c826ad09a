// `npm run bench [-- --quick]`: every benchmark of hashwatt in one run, so the ratios compare numbers
// taken on the same machine minutes apart (the push protocols against the JSON HTTP path, seconds
// apart on the same service). Writes bench/results/latest.json (keys are stable: other
// tools read them) and the table in bench/README.md.
//
// Needs Postgres at $BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) and,
// for the peer, Debian's victoria-metrics package (skipped with a reason when missing).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
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

const quick = process.argv.includes('--quick');
const plan = quick ? QUICK_PLAN : FULL_PLAN;
const started = Date.now();
const log = (line: string) => process.stderr.write(`${line}\n`);

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
  `hashwatt bench${quick ? ' (quick)' : ''} on ${machine.cores} cores, ${machine.node}, ${machine.postgres}`,
);

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

log('peer: VictoriaMetrics ingesting the same readings as line protocol');
// The quick run uses a tenth of the fleet: creating a million series takes VictoriaMetrics 10-20 s.
const peer = await measureVictoriaMetrics({
  seconds: plan.baselineS,
  devices: quick ? 20_000 : 200_000,
  sites: 4,
});

log(quick ? 'scrape: 100 sites / 30 000 devices (quick)' : 'scrape: 1 000 sites / 300 000 devices');
const scrape = quick ? await measureScrape(100, 30_000, 5) : await measureScrape(1000, 300_000, 20);

log(
  quick
    ? 'read latency: 3 days of 10 sites / 300 devices, tiers built by the rollup job (quick)'
    : 'read latency: 30 days of 10 sites / 300 devices, tiers built by the rollup job (the upgrade)',
);
const reads = await measureReadLatency(quick ? QUICK_READ_PLAN : FULL_READ_PLAN);

log('rollup job vs ingest: the same load with the job held and running, interleaved');
const rollupIngest = await measureRollupIngest(
  quick ? QUICK_ROLLUP_INGEST_PLAN : FULL_ROLLUP_INGEST_PLAN,
  quick,
);

const bestReadings = Math.max(ingest.http.readings_per_s, ingest.ws.readings_per_s);
const round3 = (n: number) => Math.round(n * 1000) / 1000;
const result = {
  date: new Date().toISOString(),
  quick,
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
    peer: { victoriametrics: peer },
    // Readings against lines: the same unit of work (hashwatt counts a reading's status as a sample,
    // VictoriaMetrics carries it as a tag, so samples per reading differ by one).
    ratio_to_peer: 'lines_per_s' in peer ? round3(bestReadings / peer.lines_per_s) : null,
    acknowledgement: {
      hashwatt: 'after the transaction holding the reading has committed (fsync on, synchronous_commit on)',
      victoriametrics: 'before the data reaches disk (in-memory buffer, flushed about every second)',
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
  service: { rss_mb: Math.max(ingest.http.rss_mb, ingest.ws.rss_mb) },
};
result.duration_s = Math.round((Date.now() - started) / 1000);

mkdirSync('bench/results', { recursive: true });
const file = quick ? 'bench/results/latest.quick.json' : 'bench/results/latest.json';
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);

const n = (x: number | null | undefined) =>
  x === null || x === undefined ? '–' : Math.round(x).toLocaleString('en-US');
const peerLine =
  'samples_per_s' in peer
    ? `| VictoriaMetrics ${peer.version}, InfluxDB line protocol (acks before disk) | ${n(peer.lines_per_s)} lines | ${n(peer.samples_per_s)} | – |`
    : `| VictoriaMetrics | skipped: ${peer.skipped} | | |`;
const table = [
  `Measured ${result.date.slice(0, 10)} on ${machine.cores} cores (${machine.cpu}), ${machine.node}, ${machine.postgres}${quick ? ' — quick run' : ''}; \`npm run bench\` took ${result.duration_s} s.`,
  '',
  '| path | readings/s | samples/s | ack p99 at half rate |',
  '|---|---|---|---|',
  `| hashwatt over HTTP (gzip), held ${plan.sustainS} s, no refusals | ${n(ingest.http.readings_per_s)} | ${n(ingest.http.samples_per_s)} | ${ingest.http.ack_p99_ms ?? '–'} ms |`,
  `| hashwatt over WebSocket, held ${plan.sustainS} s, no refusals | ${n(ingest.ws.readings_per_s)} | ${n(ingest.ws.samples_per_s)} | ${ingest.ws.ack_p99_ms ?? '–'} ms |`,
  `| raw write, same table/key/dedup: unnest 5k x 2 conns | ${n(ingest.baseline.unnest_readings_per_s)} | ${n(ingest.baseline.unnest_readings_per_s * SAMPLES_PER_READING)} | – |`,
  `| raw write, same table/key/dedup: one COPY stream into staging, merged per 50k | ${n(ingest.baseline.copy_readings_per_s)} | ${n(ingest.baseline.copy_readings_per_s * SAMPLES_PER_READING)} | – |`,
  `| for reference, bare COPY of fresh keys (no de-duplication; not a baseline) | ${n(ingest.baseline.copy_without_dedup_readings_per_s)} | ${n(ingest.baseline.copy_without_dedup_readings_per_s * SAMPLES_PER_READING)} | – |`,
  peerLine,
  '',
  ...PUSH_TABLE_HEAD,
  ...formatPushRows(ingest.push),
  '',
  formatPushNote(ingest.push, ingest.http),
  '',
  `hashwatt / raw write: **${result.ingest.ratio_to_baseline}**; hashwatt / VictoriaMetrics (readings per line): **${result.ingest.ratio_to_peer ?? '–'}**. ` +
    `Service RSS ${result.service.rss_mb} MB; CPU ${ingest.http.cpu_s_per_100k_samples ?? '–'} s (HTTP) / ${ingest.ws.cpu_s_per_100k_samples ?? '–'} s (WS) per 100k samples. ` +
    `Scrape at ${n(scrape.sites)} sites / ${n(scrape.devices)} devices: ${scrape.scrape.p50_ms} ms p50 (fleet aggregate, refreshed in the background: ${scrape.fleet_aggregate.p50_ms} ms); \`GET /api/v1/fleet\` from the same snapshot: ${scrape.fleet_api.p50_ms} ms p50, ${scrape.fleet_api.p95_ms} ms p95.`,
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
