/**
 * A peer for the ingest benchmark: VictoriaMetrics single-node ingesting the load scenario's
 * readings as InfluxDB line protocol, in the same run and on the same machine as hashwatt.
 *
 *   node bench/peer-victoriametrics.ts [--seconds 20] [--devices 200000] [--sites 4]
 *        [--connections 4] [--batch 5000] [--warmup 5] [--generator prerendered|live]
 *
 * Starts `victoria-metrics` on a free loopback port with its data in a temp dir, drives it closed
 * loop (each keep-alive connection POSTs a batch and sends the next once it is answered 204),
 * verifies that what was acknowledged is stored and queryable, then kills it and removes the dir,
 * also on failure. Prints JSON. `bench/ingest.ts` calls `measureVictoriaMetrics`.
 *
 * The figure is not like for like with hashwatt's, and the report must say so next to it:
 * VictoriaMetrics answers 204 once a sample is in its in-memory buffer, which it flushes to disk
 * about every second without fsync; hashwatt answers only after the Postgres commit.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import os from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { countFields, LineProtocolGenerator } from '../simulators/load/line-protocol.ts';
import { loadScenario, type SiteSpec } from '../simulators/scenario.ts';

export interface PeerOptions {
  /** Measured seconds, after the warm-up. */
  seconds: number;
  devices: number;
  sites: number;
  /** Concurrent keep-alive connections, each with one request in flight (default 4). */
  connections?: number;
  /** Lines per request (default 5,000, the agents' batch size). */
  batchLines?: number;
  /** Least warm-up seconds; the warm-up also lasts until every device's series exist (default 5). */
  warmupSeconds?: number;
  /**
   * `prerendered` (default): request bodies rendered from the generator before the run and
   * rotated, their timestamps rewritten in place before each send, so the client costs little
   * CPU on a machine it shares with the server. `live`: every body rendered when sent.
   */
  generator?: 'prerendered' | 'live';
  /** Path of the binary; default: `victoria-metrics` on PATH. */
  binary?: string;
}

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

const DEFAULT_CONNECTIONS = 4;
const DEFAULT_BATCH = 5_000;
const DEFAULT_WARMUP_S = 5;
/** Warm-up gives up after this long: registering 1M new series takes VictoriaMetrics ~10 s here. */
const MAX_WARMUP_S = 300;
/** Rendered passes over all devices in prerendered mode: each device alternates between this many value sets. */
const PRERENDERED_PASSES = 2;
/** Epoch ms from 2001 to 2286 have 13 digits, so timestamps can be rewritten in place. */
const TS_DIGITS = 13;
const WRITE_PATH = '/write?precision=ms';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Where `name` is on PATH, or null. */
function findBinary(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {}
  }
  return null;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** CPU seconds (user + system) of a process, from /proc. */
function processCpuS(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Busy CPU seconds of the whole machine (all but idle and iowait), from /proc/stat. */
function machineBusyS(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - cpu[3]! - cpu[4]!) / 100;
}

function selfCpuS(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/**
 * The load scenario's shape resized: `sites` sites named load-1…, `devices` ASICs split evenly,
 * each site keeping the model mix of the load site it is modelled on (load-5 on load-1, …).
 */
export function loadSites(devices: number, sites: number): SiteSpec[] {
  if (!Number.isInteger(sites) || sites < 1)
    throw new Error(`sites must be a positive integer, got ${sites}`);
  if (!Number.isInteger(devices) || devices < sites)
    throw new Error(`devices must be an integer >= sites, got ${devices}`);
  const templates = loadScenario('load').sites;
  return Array.from({ length: sites }, (_, i) => {
    const template = templates[i % templates.length]!;
    const count = Math.floor(devices / sites) + (i < devices % sites ? 1 : 0);
    const mix = Object.entries(template.devices.asic).filter(([, n]) => (n ?? 0) > 0);
    const total = mix.reduce((s, [, n]) => s + (n ?? 0), 0);
    const asic: Record<string, number> = {};
    let left = count;
    mix.forEach(([model, n], m) => {
      const share = m === mix.length - 1 ? left : Math.round((count * (n ?? 0)) / total);
      asic[model] = share;
      left -= share;
    });
    return { ...template, name: `load-${i + 1}`, devices: { ...template.devices, asic } };
  });
}

/** A rendered body whose line timestamps are rewritten before each send. */
interface PrerenderedBody {
  buf: Buffer;
  lines: number;
  /** Byte offset of each line's timestamp. */
  tsAt: Int32Array;
  /** Each line's ts minus the first line's, as rendered (keeps a device's repeats in a body apart). */
  tsRel: Int32Array;
  maxRel: number;
  busy: boolean;
}

function prerender(gen: LineProtocolGenerator, lines: number, fromMs: number): PrerenderedBody {
  const tsAt = new Int32Array(lines);
  const tsRel = new Int32Array(lines);
  let body = '';
  let j = 0;
  let first = 0;
  gen.emit(lines, fromMs, 1, (line, _d, ts) => {
    if (j === 0) first = ts;
    tsRel[j++] = ts - first;
    body += `${line}\n`;
  });
  const buf = Buffer.from(body, 'utf8');
  let nl = -1;
  for (let k = 0; k < lines; k++) {
    nl = buf.indexOf(10, nl + 1);
    if (nl < TS_DIGITS + 1 || buf[nl - TS_DIGITS - 1] !== 32)
      throw new Error('prerendered body: unexpected ts layout');
    tsAt[k] = nl - TS_DIGITS;
  }
  return { buf, lines, tsAt, tsRel, maxRel: tsRel[lines - 1] ?? 0, busy: false };
}

function writeTs(buf: Buffer, at: number, ts: number): void {
  let v = ts;
  for (let k = TS_DIGITS - 1; k >= 0; k--) {
    buf[at + k] = 48 + (v % 10);
    v = Math.floor(v / 10);
  }
}

/** Yields request bodies; each `release` must follow its `next`. */
interface BodySource {
  next(): { body: Buffer; lines: number; release: () => void };
  /** Lines in one full rotation (prerendered) or one pass over all devices (live). */
  readonly roundLines: number;
  readonly maxTsMs: number;
  readonly minTsMs: number;
}

function prerenderedSource(gens: LineProtocolGenerator[], batch: number, connections: number): BodySource {
  // Per pass, enough bodies for every device of every site, interleaved across sites like the agents.
  const perSite = gens.map((g) => Math.ceil(g.devices.length / batch));
  const start = Date.now();
  const pool: PrerenderedBody[] = [];
  // More bodies than connections, so a free one is always within one lap.
  for (let pass = 0; pass < PRERENDERED_PASSES || pool.length < 2 * connections; pass++) {
    for (let k = 0; k < Math.max(...perSite); k++) {
      gens.forEach((g, s) => {
        if (k < perSite[s]!) pool.push(prerender(g, batch, start));
      });
    }
  }
  let cursor = 0;
  let nextBase = Date.now();
  let minTs = Number.NaN;
  let maxTs = 0;
  return {
    roundLines: pool.length * batch,
    get maxTsMs() {
      return maxTs;
    },
    get minTsMs() {
      return minTs;
    },
    next() {
      let body = pool[cursor]!;
      for (let tries = 0; body.busy && tries < pool.length; tries++) {
        cursor = (cursor + 1) % pool.length;
        body = pool[cursor]!;
      }
      if (body.busy) throw new Error('prerendered pool exhausted (more connections than bodies)');
      cursor = (cursor + 1) % pool.length;
      // Fresh timestamps, strictly later than any given before: every device's ts keeps rising.
      const base = Math.max(Date.now(), nextBase);
      nextBase = base + body.maxRel + 1;
      if (Number.isNaN(minTs)) minTs = base;
      maxTs = base + body.maxRel;
      for (let j = 0; j < body.lines; j++) writeTs(body.buf, body.tsAt[j]!, base + body.tsRel[j]!);
      body.busy = true;
      return {
        body: body.buf,
        lines: body.lines,
        release: () => {
          body.busy = false;
        },
      };
    },
  };
}

function liveSource(gens: LineProtocolGenerator[], batch: number): BodySource {
  const lastTo = gens.map(() => Date.now());
  const biggest = Math.max(...gens.map((g) => g.devices.length));
  let site = 0;
  let minTs = Number.NaN;
  let maxTs = 0;
  return {
    // Sites take turns, so every device has reported once when each site has sent this much.
    roundLines: gens.length * batch * Math.ceil(biggest / batch),
    get maxTsMs() {
      return maxTs;
    },
    get minTsMs() {
      return minTs;
    },
    next() {
      const s = site;
      site = (site + 1) % gens.length;
      // As the load scenario's slices: timestamps spread over the wall time since this site's last batch.
      const from = lastTo[s]!;
      const to = Math.max(from + 1, Date.now());
      lastTo[s] = to;
      let text = '';
      // A device's ts is bumped past its last one, so with a small fleet they run ahead of the clock.
      gens[s]!.emit(batch, from, to - from, (line, _d, ts) => {
        text += `${line}\n`;
        if (ts > maxTs) maxTs = ts;
        if (!(ts >= minTs)) minTs = ts;
      });
      return { body: Buffer.from(text, 'utf8'), lines: batch, release: () => {} };
    },
  };
}

function post(
  agent: http.Agent,
  port: number,
  path: string,
  body: Buffer,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent,
        headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            text: Buffer.concat(chunks).toString('utf8').slice(0, 500),
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(120_000, () => req.destroy(new Error('request timed out after 120 s')));
    req.on('error', reject);
    req.end(body);
  });
}

async function getJson(base: string, path: string): Promise<unknown> {
  const res = await fetch(base + path);
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as unknown;
}

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
  const deb = await new Promise<string>((resolve) =>
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax, not JavaScript's
    execFile('dpkg-query', ['-W', '-f', '${Version}', 'victoria-metrics'], (err, out) =>
      resolve(err ? '' : out.trim()),
    ),
  );
  return deb ? `${deb.replace(/\+.*$/, '')} (Debian ${deb})` : 'unknown';
}

async function startVictoriaMetrics(
  binary: string,
  dataDir: string,
): Promise<{ child: ChildProcess; base: string; stderr: () => string }> {
  const port = await freePort();
  const child = spawn(
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
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  child.stderr?.on('data', (c: Buffer) => {
    err = (err + c.toString('utf8')).slice(-4000);
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 150; i++) {
    if (child.exitCode !== null) throw new Error(`victoria-metrics exited with ${child.exitCode}: ${err}`);
    try {
      if ((await fetch(`${base}/health`)).ok) return { child, base, stderr: () => err };
    } catch {}
    await sleep(100);
  }
  throw new Error(`victoria-metrics did not answer /health within 15 s: ${err}`);
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Polls until every acknowledged line's power_w sample is queryable, or 30 s pass. */
async function storedPowerSamples(base: string, source: BodySource, expected: number): Promise<number> {
  const spanS = Math.ceil((source.maxTsMs - source.minTsMs) / 1000) + 60;
  const at = (source.maxTsMs + 1000) / 1000;
  const query = encodeURIComponent(`sum(count_over_time(asic_power_w[${spanS}s]))`);
  let stored = 0;
  for (let i = 0; i < 30; i++) {
    await fetch(`${base}/internal/force_flush`);
    const body = (await getJson(base, `/api/v1/query?query=${query}&time=${at}`)) as {
      data: { result: { value: [number, string] }[] };
    };
    stored = Number(body.data.result[0]?.value[1] ?? 0);
    if (stored >= expected) break;
    await sleep(1000);
  }
  return stored;
}

/**
 * VictoriaMetrics' closed-loop ingest rate of the load scenario's readings as line protocol, with
 * what it costs in CPU and a check that every acknowledged sample is stored. Acknowledged before
 * the data is on disk (see {@link ACKED}). Missing binary: `{ skipped }`; any other failure throws.
 */
export async function measureVictoriaMetrics(opts: PeerOptions): Promise<PeerResult | { skipped: string }> {
  const binary = opts.binary ?? findBinary('victoria-metrics');
  if (binary === null)
    return { skipped: 'victoria-metrics not installed (apt-get install victoria-metrics)' };
  const connections = opts.connections ?? DEFAULT_CONNECTIONS;
  const batch = opts.batchLines ?? DEFAULT_BATCH;
  const warmupS = opts.warmupSeconds ?? DEFAULT_WARMUP_S;
  const mode = opts.generator ?? 'prerendered';
  if (!(opts.seconds > 0)) throw new Error(`seconds must be > 0, got ${opts.seconds}`);
  if (!(Number.isInteger(connections) && connections >= 1))
    throw new Error(`bad connections: ${connections}`);
  if (!(Number.isInteger(batch) && batch >= 1)) throw new Error(`bad batch: ${batch}`);

  const gens = loadSites(opts.devices, opts.sites).map((s) => new LineProtocolGenerator(s, 1));
  // One reading from a throwaway generator, so the measured ones start at their first device.
  let fieldsPerLine = 0;
  new LineProtocolGenerator(loadSites(opts.devices, opts.sites)[0]!, 1).emit(1, Date.now(), 1, (line) => {
    fieldsPerLine = countFields(line);
  });
  const source =
    mode === 'prerendered' ? prerenderedSource(gens, batch, connections) : liveSource(gens, batch);

  const dataDir = mkdtempSync(join(os.tmpdir(), 'hashwatt-vm-'));
  let vm: Awaited<ReturnType<typeof startVictoriaMetrics>> | null = null;
  // Ctrl-C or a kill must not leave the server running or its data behind either.
  const onSignal = (signal: NodeJS.Signals) => {
    vm?.child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    // Alone, this handler kept the process from dying: let the signal do what it would have.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  let phase: 'warmup' | 'measure' | 'stop' = 'warmup';
  try {
    vm = await startVictoriaMetrics(binary, dataDir);
    const { base } = vm;
    const port = Number(new URL(base).port);
    const version = await versionOf(base);

    let ackedTotal = 0;
    let ackedMeasured = 0;
    let failed = 0;
    let firstFailure = '';
    let fatal: Error | null = null;
    const worker = async () => {
      while (phase !== 'stop' && fatal === null) {
        let release = () => {};
        try {
          const next = source.next();
          release = next.release;
          const { body, lines } = next;
          const res = await post(agent, port, WRITE_PATH, body);
          if (res.status === 204) {
            ackedTotal += lines;
            if (phase === 'measure') ackedMeasured += lines;
          } else {
            failed++;
            firstFailure ||= `${res.status} ${res.text}`;
          }
        } catch (err) {
          fatal = err as Error;
        } finally {
          release();
        }
      }
    };
    const workers = Array.from({ length: connections }, () => worker());

    // Warm-up: every device's series created (the first pass is much slower) and the least time.
    const warmStart = performance.now();
    while (fatal === null) {
      const elapsed = (performance.now() - warmStart) / 1000;
      if (elapsed >= warmupS && ackedTotal >= source.roundLines) break;
      if (elapsed > MAX_WARMUP_S) {
        fatal = new Error(`warm-up did not finish in ${MAX_WARMUP_S} s (${ackedTotal} lines acknowledged)`);
        break;
      }
      await sleep(100);
    }
    const warmupTook = (performance.now() - warmStart) / 1000;

    const vmCpu0 = processCpuS(vm.child.pid!);
    const selfCpu0 = selfCpuS();
    const busy0 = machineBusyS();
    const t0 = performance.now();
    phase = 'measure';
    const deadline = t0 + opts.seconds * 1000;
    while (fatal === null && performance.now() < deadline)
      await sleep(Math.min(100, deadline - performance.now()));
    phase = 'stop';
    const measured = (performance.now() - t0) / 1000;
    const vmCpu1 = processCpuS(vm.child.pid!);
    const selfCpu1 = selfCpuS();
    const busy1 = machineBusyS();
    const linesMeasured = ackedMeasured;
    await Promise.all(workers);
    if (fatal !== null) throw fatal;
    if (linesMeasured === 0)
      throw new Error(`no line acknowledged while measuring; first failure: ${firstFailure}`);

    const stored = await storedPowerSamples(base, source, ackedTotal);
    const series = ((await getJson(base, '/api/v1/series/count')) as { data: number[] }).data[0] ?? 0;
    const rowsInserted = await scrapeCounter(base, 'vm_rows_inserted_total{type="influx"}');
    const rowsInvalid = await scrapeCounter(base, 'vm_rows_invalid_total{type="influx"}');
    if (stored < ackedTotal)
      throw new Error(
        `victoria-metrics acknowledged ${ackedTotal} lines but only ${stored} power_w samples are stored`,
      );
    if (series < opts.devices * fieldsPerLine)
      throw new Error(`expected ${opts.devices * fieldsPerLine} series, victoria-metrics has ${series}`);

    const linesPerS = linesMeasured / measured;
    const cores = (cpuS: number) => Number((cpuS / measured).toFixed(2));
    return {
      samples_per_s: Math.round(linesPerS * fieldsPerLine),
      samples_per_vm_cpu_s:
        vmCpu1 > vmCpu0 ? Math.round((linesMeasured * fieldsPerLine) / (vmCpu1 - vmCpu0)) : 0,
      lines_per_s: Math.round(linesPerS),
      fields_per_line: fieldsPerLine,
      version,
      acked: ACKED,
      devices: opts.devices,
      sites: opts.sites,
      connections,
      batch_lines: batch,
      generator: mode,
      measure_s: Number(measured.toFixed(1)),
      warmup_s: Number(warmupTook.toFixed(1)),
      cpu_cores: {
        generator: cores(selfCpu1 - selfCpu0),
        victoriametrics: cores(vmCpu1 - vmCpu0),
        other: cores(Math.max(0, busy1 - busy0 - (selfCpu1 - selfCpu0) - (vmCpu1 - vmCpu0))),
        available: os.availableParallelism(),
      },
      failed_requests: failed,
      verified: {
        acked_lines: ackedTotal,
        stored_power_w_samples: stored,
        series,
        rows_inserted: rowsInserted,
        rows_invalid: rowsInvalid,
      },
    };
  } finally {
    phase = 'stop';
    agent.destroy();
    if (vm) await stopProcess(vm.child);
    rmSync(dataDir, { recursive: true, force: true });
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '20' },
      devices: { type: 'string', default: '200000' },
      sites: { type: 'string', default: '4' },
      connections: { type: 'string', default: String(DEFAULT_CONNECTIONS) },
      batch: { type: 'string', default: String(DEFAULT_BATCH) },
      warmup: { type: 'string', default: String(DEFAULT_WARMUP_S) },
      generator: { type: 'string', default: 'prerendered' },
    },
  });
  if (values.generator !== 'prerendered' && values.generator !== 'live')
    throw new Error(`--generator must be prerendered or live, got ${values.generator}`);
  const result = await measureVictoriaMetrics({
    seconds: Number(values.seconds),
    devices: Number(values.devices),
    sites: Number(values.sites),
    connections: Number(values.connections),
    batchLines: Number(values.batch),
    warmupSeconds: Number(values.warmup),
    generator: values.generator,
  });
  console.log(JSON.stringify(result, null, 2));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
