/**
 * The durable peer for the ingest benchmark: InfluxDB 1.6 (Debian package `influxdb`, binary
 * `influxd`) ingesting the load scenario's readings as line protocol, in the same run and on the
 * same machine as hashwatt, with every write fsynced to its WAL before it is answered.
 *
 *   node bench/peer-influxdb.ts [--seconds 20] [--devices 200000] [--sites 4]
 *        [--connections 4] [--batch 5000] [--warmup 5] [--generator prerendered|live]
 *
 * Writes an influxdb.conf into a temp dir (meta, data and WAL under it; HTTP and RPC on free
 * loopback ports; UDP, Graphite, collectd, OpenTSDB, IFQL, usage reporting and the _internal
 * monitor store off; no series or tag-value limits; `wal-fsync-delay = "0s"`), checks with
 * `influxd config` that this build read every setting as written (it ignores keys it does not
 * know without a word), starts `influxd -config …`, waits for `GET /ping`, creates database
 * `bench`, drives it closed loop at `POST /write?db=bench&precision=ms` (the generator writes
 * epoch ms), verifies that every acknowledged line is queryable (`SELECT count(power_w)` over the
 * span of every line sent), then kills it and removes the dir, also on failure
 * (bench/support/line-protocol-peer.ts). Prints JSON. `bench/index.ts` calls `measureInfluxDB`.
 *
 * Why the answer comes after the fsync (1.x's tsdb/engine/tsm1/wal.go, `writeToLog`): a write
 * appends its entry to the current WAL segment, queues a waiter and returns only with the result
 * of the next `fsync` of that segment (`return segID, <-syncErr`); `wal-fsync-delay` only sets how
 * long the syncing goroutine waits to gather more waiters, 0s meaning none. The HTTP handler
 * answers 204 once every shard write has returned. Seen on this build (1.6.7~rc0-1+b13) with
 * `strace -f -e trace=write,fsync` on influxd, for each of three single-line writes in a row:
 * write() to wal/bench/autogen/1/_00001.wal, fsync() of that fd returning 0, and only then the
 * `HTTP/1.1 204` written to the socket. (The series file under data/bench/_series is written but
 * not fsynced per write; the WAL entry carries the full series key, so a replay recreates it.)
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  commandOutput,
  debianVersion,
  findBinary,
  freePort,
  getJson,
  type LineProtocolPeer,
  measureLineProtocolPeer,
  PEER_CLI_OPTIONS,
  type PeerOptions,
  type PeerProcess,
  type PeerRun,
  peerOptionsFromCli,
  startPeerProcess,
  stopProcess,
} from './support/line-protocol-peer.ts';
import { PEER_PACKAGES } from './support/peers.ts';

export const ACKED = 'after the WAL fsync' as const;

/** The settings the run depends on, as `influxd config` read them back from the file. */
export interface InfluxSettings {
  /** "0s": each write waits for an fsync of the WAL started as soon as it is queued. */
  wal_fsync_delay: string;
  /** 0: no limit (the default, 1,000,000: a series per device, so a fleet past a million would be refused). */
  max_series_per_database: number;
  /** 0: no limit (the default, 100,000, is below the fleet's 200,000 values of the `device` tag). */
  max_values_per_tag: number;
  index_version: string;
  cache_max_memory_size: number;
  /** Of the data and WAL dirs: an fsync on tmpfs would promise nothing. */
  filesystem: string;
}

export interface InfluxResult {
  samples_per_s: number;
  /**
   * Samples per CPU-second of influxd: steadier than samples_per_s when other work shares the
   * machine, so runs can be compared; it does not scale perfectly with more cores.
   */
  samples_per_influxd_cpu_s: number;
  lines_per_s: number;
  fields_per_line: number;
  /** `influxd version`'s, and the Debian package's in parentheses. */
  version: string;
  influxd_version: string;
  debian_package_version: string | null;
  settings: InfluxSettings;
  acked: typeof ACKED;
  devices: number;
  sites: number;
  connections: number;
  batch_lines: number;
  generator: 'prerendered' | 'live';
  measure_s: number;
  warmup_s: number;
  /** CPU while measuring, in cores: this process, influxd, everything else, and how many cores there are. */
  cpu_cores: { generator: number; influxd: number; other: number; available: number };
  /** Requests answered with anything but 204 (their lines are not counted). */
  failed_requests: number;
  /** Every acknowledged line is stored and queryable; one series per device. */
  verified: { acked_lines: number; stored_power_w_samples: number; series: number };
}

const { binary: BINARY, debian: PACKAGE } = PEER_PACKAGES.influxdb;
const DATABASE = 'bench';
/** The generator's one measurement: the load scenario's devices are all ASICs. */
const MEASUREMENT = 'asic';

/** The environment without INFLUXDB_* variables, which would override the config file's settings. */
function influxEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('INFLUXDB_')));
}

function configFile(dir: string, httpPort: number, rpcPort: number): string {
  return `# Written by bench/peer-influxdb.ts for one run; removed with this dir.
# Usage reporting: Debian's build knows reporting-enabled (off by default), upstream's
# reporting-disabled; each ignores the other's key.
reporting-enabled = false
reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"

[meta]
  dir = "${join(dir, 'meta')}"
  logging-enabled = false

[data]
  dir = "${join(dir, 'data')}"
  wal-dir = "${join(dir, 'wal')}"
  wal-fsync-delay = "0s"
  max-series-per-database = 0
  max-values-per-tag = 0
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:${httpPort}"
  log-enabled = false
  unix-socket-enabled = false

[logging]
  level = "warn"

[ifql]
  enabled = false

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false
`;
}

/** `influxd config` output as section.key → values (several for arrays of tables), values as written. */
function parseConfig(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const header = /^\[\[?([^\]]+)\]\]?$/.exec(line);
    if (header) {
      section = `${header[1]}.`;
      continue;
    }
    const kv = /^([A-Za-z0-9_-]+)\s*=\s*(.*)$/.exec(line);
    if (!kv) continue;
    const key = section + kv[1];
    out.set(key, [...(out.get(key) ?? []), kv[2]!.replace(/^"(.*)"$/, '$1')]);
  }
  return out;
}

/**
 * Reads the written file back through `influxd config` and throws unless every setting the run
 * depends on is what was written: a key this build does not know would be dropped silently.
 */
async function checkedSettings(
  binary: string,
  file: string,
  dir: string,
  httpPort: number,
  rpcPort: number,
): Promise<Omit<InfluxSettings, 'filesystem'>> {
  const config = parseConfig(await commandOutput(binary, ['config', '-config', file], influxEnv()));
  const one = (key: string) => config.get(key)?.[0];
  const wrong: string[] = [];
  const expect = (key: string, value: string) => {
    if (one(key) !== value) wrong.push(`${key} = ${one(key) ?? '(absent)'}, expected ${value}`);
  };
  expect('bind-address', `127.0.0.1:${rpcPort}`);
  expect('http.bind-address', `127.0.0.1:${httpPort}`);
  expect('http.log-enabled', 'false');
  expect('http.unix-socket-enabled', 'false');
  expect('meta.dir', join(dir, 'meta'));
  expect('data.dir', join(dir, 'data'));
  expect('data.wal-dir', join(dir, 'wal'));
  expect('data.wal-fsync-delay', '0s');
  expect('data.max-series-per-database', '0');
  expect('data.max-values-per-tag', '0');
  expect('monitor.store-enabled', 'false');
  expect('logging.level', 'warn');
  if (one('reporting-enabled') !== 'false' && one('reporting-disabled') !== 'true')
    wrong.push(
      'usage reporting is not off (neither reporting-enabled = false nor reporting-disabled = true)',
    );
  for (const listener of ['graphite', 'collectd', 'opentsdb', 'udp', 'ifql'])
    for (const enabled of config.get(`${listener}.enabled`) ?? [])
      if (enabled !== 'false') wrong.push(`${listener}.enabled = ${enabled}, expected false`);
  if (wrong.length > 0) throw new Error(`${BINARY} did not read ${file} as written: ${wrong.join('; ')}`);
  return {
    wal_fsync_delay: one('data.wal-fsync-delay')!,
    max_series_per_database: Number(one('data.max-series-per-database')),
    max_values_per_tag: Number(one('data.max-values-per-tag')),
    index_version: one('data.index-version') ?? 'unknown',
    cache_max_memory_size: Number(one('data.cache-max-memory-size')),
  };
}

/** The first error of an InfluxQL answer, or null. */
function queryError(body: unknown): string | null {
  const b = body as { error?: string; results?: { error?: string }[] };
  return b.error ?? b.results?.find((r) => r.error)?.error ?? null;
}

interface InfluxProcess extends PeerProcess {
  settings: InfluxSettings;
}

/** Runs an InfluxQL query on `bench` and returns the first statement's series. */
async function query(base: string, q: string): Promise<{ name?: string; values: unknown[][] }[]> {
  const body = (await getJson(base, `/query?db=${DATABASE}&epoch=ms&q=${encodeURIComponent(q)}`)) as {
    results: { series?: { name?: string; values: unknown[][] }[] }[];
  };
  const error = queryError(body);
  if (error) throw new Error(`${q}: ${error}`);
  return body.results[0]?.series ?? [];
}

const influxdb: LineProtocolPeer<InfluxProcess> = {
  name: BINARY,
  tempPrefix: 'hashwatt-influxdb-',
  writePath: `/write?db=${DATABASE}&precision=ms`,
  async start(binary, dir) {
    const httpPort = await freePort();
    let rpcPort = await freePort();
    while (rpcPort === httpPort) rpcPort = await freePort();
    const file = join(dir, 'influxdb.conf');
    writeFileSync(file, configFile(dir, httpPort, rpcPort));
    const checked = await checkedSettings(binary, file, dir, httpPort, rpcPort);
    const filesystem = await commandOutput('findmnt', ['-n', '-o', 'FSTYPE', '-T', dir]).catch(
      () => 'unknown',
    );
    const base = `http://127.0.0.1:${httpPort}`;
    const server = await startPeerProcess(
      BINARY,
      binary,
      ['-config', file],
      base,
      async () => (await fetch(`${base}/ping`)).status === 204,
      { env: influxEnv() },
    );
    const res = await fetch(`${base}/query?q=${encodeURIComponent(`CREATE DATABASE ${DATABASE}`)}`, {
      method: 'POST',
    });
    const answer = (await res.json()) as unknown;
    const error = res.ok ? queryError(answer) : JSON.stringify(answer);
    if (error) {
      await stopProcess(server.child);
      throw new Error(`CREATE DATABASE ${DATABASE}: ${res.status} ${error}`);
    }
    return { ...server, settings: { ...checked, filesystem } };
  },
  // Queryable once acknowledged: a write goes into the in-memory cache as well as the WAL, no flush needed.
  async countStored({ base }, window) {
    const series = await query(
      base,
      `SELECT count(power_w) FROM ${MEASUREMENT} WHERE time >= ${window.fromMs}ms AND time <= ${window.toMs}ms`,
    );
    return Number(series[0]?.values[0]?.[1] ?? 0);
  },
};

async function versions(binary: string): Promise<{ influxd: string; short: string; debian: string }> {
  const influxd = await commandOutput(binary, ['version']);
  const short = /InfluxDB v(\S+)/.exec(influxd)?.[1] ?? influxd;
  return { influxd, short, debian: await debianVersion(PACKAGE) };
}

function resultOf(
  run: PeerRun,
  settings: InfluxSettings,
  v: { influxd: string; short: string; debian: string },
  series: number,
): InfluxResult {
  return {
    samples_per_s: run.samples_per_s,
    samples_per_influxd_cpu_s: run.samples_per_peer_cpu_s,
    lines_per_s: run.lines_per_s,
    fields_per_line: run.fields_per_line,
    version: v.debian ? `${v.short} (Debian ${v.debian})` : v.short,
    influxd_version: v.influxd,
    debian_package_version: v.debian || null,
    settings,
    acked: ACKED,
    devices: run.devices,
    sites: run.sites,
    connections: run.connections,
    batch_lines: run.batch_lines,
    generator: run.generator,
    measure_s: run.measure_s,
    warmup_s: run.warmup_s,
    cpu_cores: {
      generator: run.cpu_cores.generator,
      influxd: run.cpu_cores.peer,
      other: run.cpu_cores.other,
      available: run.cpu_cores.available,
    },
    failed_requests: run.failed_requests,
    verified: { acked_lines: run.acked_lines, stored_power_w_samples: run.stored_samples, series },
  };
}

/**
 * InfluxDB's closed-loop ingest rate of the load scenario's readings as line protocol, each write
 * answered after its WAL fsync (see {@link ACKED}), with what it costs in CPU and a check that
 * every acknowledged line is stored. Missing binary: `{ skipped }`; any other failure throws.
 */
export async function measureInfluxDB(opts: PeerOptions): Promise<InfluxResult | { skipped: string }> {
  const binary = opts.binary ?? findBinary(BINARY);
  if (binary === null)
    return {
      skipped: `package ${PACKAGE} is missing: ${BINARY} is not on PATH (apt-get install ${PACKAGE})`,
    };
  const v = await versions(binary);
  return measureLineProtocolPeer(influxdb, opts, binary, async (server, run) => {
    // One series per device: measurement asic, tags site, device, model and status (always ok here).
    const rows = await query(server.base, `SHOW SERIES EXACT CARDINALITY ON ${DATABASE}`);
    const series = rows.reduce((sum, s) => sum + Number(s.values[0]?.[0] ?? 0), 0);
    if (series < run.devices) throw new Error(`expected ${run.devices} series, ${BINARY} has ${series}`);
    return resultOf(run, server.settings, v, series);
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: PEER_CLI_OPTIONS });
  console.log(JSON.stringify(await measureInfluxDB(peerOptionsFromCli(values)), null, 2));
}
