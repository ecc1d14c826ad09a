/**
 * A peer for the ingest benchmark: VictoriaMetrics single-node ingesting the load scenario's
 * readings as InfluxDB line protocol, in the same run and on the same machine as hashwatt.
 *
 *   node bench/peer-victoriametrics.ts [--seconds 20] [--devices 200000] [--sites 4]
 *        [--connections 4] [--batch 5000] [--warmup 5] [--generator prerendered|live]
 *
 * Starts `victoria-metrics` on a free loopback port with its data in a temp dir, drives it closed
 * loop, verifies that what was acknowledged is stored and queryable, then kills it and removes the
 * dir, also on failure (bench/support/line-protocol-peer.ts). Prints JSON. `bench/index.ts` calls
 * `measureVictoriaMetrics`.
 *
 * The figure is not like for like with hashwatt's, and the report must say so next to it:
 * VictoriaMetrics answers 204 once a sample is in its in-memory buffer, which it flushes to disk
 * about every second without fsync; hashwatt answers only after the Postgres commit.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  debianVersion,
  findBinary,
  freePort,
  getJson,
  type LineProtocolPeer,
  measureLineProtocolPeer,
  PEER_CLI_OPTIONS,
  type PeerOptions,
  type PeerProcess,
  peerOptionsFromCli,
  type SentWindow,
  startPeerProcess,
} from './support/line-protocol-peer.ts';
import { PEER_PACKAGES } from './support/peers.ts';

// Callers imported these from here before they were shared.
export { loadSites, type PeerOptions } from './support/line-protocol-peer.ts';

export const ACKED = 'before fsync (in-memory buffer, flushed about every second)' as const;

export interface PeerResult {
  samples_per_s: number;
  /**
   * Samples per CPU-second of VictoriaMetrics: steadier than samples_per_s when other work shares
   * the machine, so runs can be compared; it does not scale perfectly with more cores.
   */
  samples_per_vm_cpu_s: number;
  lines_per_s: number;
  fields_per_line: number;
  version: string;
  acked: typeof ACKED;
  devices: number;
  sites: number;
  connections: number;
  batch_lines: number;
  generator: 'prerendered' | 'live';
  measure_s: number;
  warmup_s: number;
  /**
   * CPU while measuring, in cores: this process (load generator and HTTP client), VictoriaMetrics,
   * everything else on the machine (a shared machine is noisy), and how many cores there are.
   */
  cpu_cores: { generator: number; victoriametrics: number; other: number; available: number };
  /** Requests answered with anything but 204 (their lines are not counted). */
  failed_requests: number;
  /** What was checked after a forced flush: every acknowledged sample is stored and queryable. */
  verified: {
    acked_lines: number;
    stored_power_w_samples: number;
    series: number;
    rows_inserted: number;
    rows_invalid: number;
  };
}

const { binary: BINARY, debian: PACKAGE } = PEER_PACKAGES.victoriametrics;

async function scrapeCounter(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : Number.NaN;
}

/** The version from /metrics, or the Debian package's when the binary was built without one. */
async function versionOf(base: string): Promise<string> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const own = /vm_app_version\{[^}]*short_version="([^"]+)"/.exec(text)?.[1];
  if (own) return own;
  const deb = await debianVersion(PACKAGE);
  return deb ? `${deb.replace(/\+.*$/, '')} (Debian ${deb})` : 'unknown';
}

const victoriaMetrics: LineProtocolPeer<PeerProcess> = {
  name: BINARY,
  tempPrefix: 'hashwatt-vm-',
  writePath: '/write?precision=ms',
  async start(binary, dataDir) {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    return startPeerProcess(
      BINARY,
      binary,
      [
        `-httpListenAddr=127.0.0.1:${port}`,
        `-storageDataPath=${dataDir}`,
        '-retentionPeriod=1d',
        '-loggerLevel=ERROR',
        // The verification reads the newest samples and every device's series in one query.
        '-search.latencyOffset=0s',
        '-search.maxUniqueTimeseries=100000000',
        '-search.disableCache',
      ],
      base,
      async () => (await fetch(`${base}/health`)).ok,
    );
  },
  /** power_w samples, after a forced flush (VictoriaMetrics' searches see flushed parts only). */
  async countStored({ base }, window: SentWindow) {
    const spanS = Math.ceil((window.toMs - window.fromMs) / 1000) + 60;
    const at = (window.toMs + 1000) / 1000;
    const query = encodeURIComponent(`sum(count_over_time(asic_power_w[${spanS}s]))`);
    await fetch(`${base}/internal/force_flush`);
    const body = (await getJson(base, `/api/v1/query?query=${query}&time=${at}`)) as {
      data: { result: { value: [number, string] }[] };
    };
    return Number(body.data.result[0]?.value[1] ?? 0);
  },
};

/**
 * VictoriaMetrics' closed-loop ingest rate of the load scenario's readings as line protocol, with
 * what it costs in CPU and a check that every acknowledged sample is stored. Acknowledged before
 * the data is on disk (see {@link ACKED}). Missing binary: `{ skipped }`; any other failure throws.
 */
export async function measureVictoriaMetrics(opts: PeerOptions): Promise<PeerResult | { skipped: string }> {
  const binary = opts.binary ?? findBinary(BINARY);
  if (binary === null)
    return {
      skipped: `package ${PACKAGE} is missing: ${BINARY} is not on PATH (apt-get install ${PACKAGE})`,
    };
  return measureLineProtocolPeer(victoriaMetrics, opts, binary, async ({ base }, run) => {
    const version = await versionOf(base);
    const series = ((await getJson(base, '/api/v1/series/count')) as { data: number[] }).data[0] ?? 0;
    const rowsInserted = await scrapeCounter(base, 'vm_rows_inserted_total{type="influx"}');
    const rowsInvalid = await scrapeCounter(base, 'vm_rows_invalid_total{type="influx"}');
    // A series per device and field (the fields become metric names).
    if (series < run.devices * run.fields_per_line)
      throw new Error(`expected ${run.devices * run.fields_per_line} series, ${BINARY} has ${series}`);
    return {
      samples_per_s: run.samples_per_s,
      samples_per_vm_cpu_s: run.samples_per_peer_cpu_s,
      lines_per_s: run.lines_per_s,
      fields_per_line: run.fields_per_line,
      version,
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
        victoriametrics: run.cpu_cores.peer,
        other: run.cpu_cores.other,
        available: run.cpu_cores.available,
      },
      failed_requests: run.failed_requests,
      verified: {
        acked_lines: run.acked_lines,
        stored_power_w_samples: run.stored_samples,
        series,
        rows_inserted: rowsInserted,
        rows_invalid: rowsInvalid,
      },
    };
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: PEER_CLI_OPTIONS });
  console.log(JSON.stringify(await measureVictoriaMetrics(peerOptionsFromCli(values)), null, 2));
}
