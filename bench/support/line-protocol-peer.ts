/**
 * What the ingest benchmark's peers share: a time-series database started on loopback with its data
 * in a temp dir, driven closed loop with the load scenario's readings as InfluxDB line protocol
 * (each keep-alive connection POSTs a batch and sends the next once it is answered 204), then
 * checked that every acknowledged line is stored and queryable, stopped and its dir removed, also
 * on failure or a signal. Each peer (bench/peer-victoriametrics.ts, bench/peer-influxdb.ts) says
 * how to start its server and how to count what it stored; {@link measureLineProtocolPeer} does
 * the rest, and measures what that costs in CPU.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import os from 'node:os';
import { delimiter, join } from 'node:path';
import { countFields, LineProtocolGenerator } from '../../simulators/load/line-protocol.ts';
import { loadScenario, type SiteSpec } from '../../simulators/scenario.ts';

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
  /** Path of the binary; default: the peer's binary on PATH. */
  binary?: string;
}

export const DEFAULT_CONNECTIONS = 4;
export const DEFAULT_BATCH = 5_000;
export const DEFAULT_WARMUP_S = 5;
/** Warm-up gives up after this long: registering 1M new series takes VictoriaMetrics ~10 s here. */
const MAX_WARMUP_S = 300;
/** How long the check waits for every acknowledged line to become queryable. */
const VERIFY_TIMEOUT_S = 30;
/** Rendered passes over all devices in prerendered mode: each device alternates between this many value sets. */
const PRERENDERED_PASSES = 2;
/** Epoch ms from 2001 to 2286 have 13 digits, so timestamps can be rewritten in place. */
const TS_DIGITS = 13;
/** Clock ticks per second of /proc's times (USER_HZ): 100 on Linux x86_64. */
const CLK_TCK = 100;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Where `name` is on PATH, or null. */
export function findBinary(name: string): string | null {
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

/** A port free on 127.0.0.1 when asked (another process could take it before the server binds it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** CPU seconds (user + system, all threads) of a process, from /proc. */
export function processCpuS(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Busy CPU seconds of the whole machine (all but idle and iowait), from /proc/stat. */
function machineBusyS(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - cpu[3]! - cpu[4]!) / CLK_TCK;
}

function selfCpuS(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Standard output of a command, trimmed; rejects with its exit and standard error. */
export function commandOutput(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(file, args, { env, timeout: 30_000 }, (err, out, errOut) =>
      err
        ? reject(new Error(`${file} ${args.join(' ')}: ${err.message} ${errOut}`.trim()))
        : resolve(out.trim()),
    ),
  );
}

/** The installed version of a Debian package, or '' when dpkg does not know it. */
export async function debianVersion(pkg: string): Promise<string> {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax, not JavaScript's
  return commandOutput('dpkg-query', ['-W', '-f', '${Version}', pkg]).catch(() => '');
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
      // Fresh timestamps, strictly later than any given before: every device's ts keeps rising,
      // so no line overwrites another (InfluxDB keeps one value per series, field and ts).
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

/** GET on 127.0.0.1 and the answer parsed as JSON; throws on a non-2xx answer. */
export async function getJson(base: string, path: string): Promise<unknown> {
  const res = await fetch(base + path);
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as unknown;
}

/** A peer's server process, started and listening. */
export interface PeerProcess {
  child: ChildProcess;
  /** `http://127.0.0.1:<port>` */
  base: string;
  /** The last few kB of its standard error, for failure messages. */
  stderr: () => string;
}

/**
 * Spawns a server and polls `ready` (an awaited condition, ~10 times a second) until it holds;
 * throws with the server's standard error if it exits or is not ready within `timeoutS`.
 */
export async function startPeerProcess(
  name: string,
  binary: string,
  args: string[],
  base: string,
  ready: () => Promise<boolean>,
  options: { env?: NodeJS.ProcessEnv; timeoutS?: number } = {},
): Promise<PeerProcess> {
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'], env: options.env });
  let err = '';
  child.stderr?.on('data', (c: Buffer) => {
    err = (err + c.toString('utf8')).slice(-4000);
  });
  const spawned = new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', resolve);
  });
  const spawnError = await spawned;
  if (spawnError) throw new Error(`${name} did not start: ${spawnError.message}`);
  const timeoutS = options.timeoutS ?? 15;
  const deadline = performance.now() + timeoutS * 1000;
  const peer = { child, base, stderr: () => err };
  try {
    while (performance.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`${name} exited with ${child.exitCode ?? child.signalCode}: ${err}`);
      if (await ready().catch(() => false)) return peer;
      await sleep(100);
    }
    throw new Error(`${name} was not ready within ${timeoutS} s: ${err}`);
  } catch (e) {
    await stopProcess(child);
    throw e;
  }
}

/** SIGTERM, then SIGKILL after 10 s; resolves once the process has exited. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** The time span of every line sent (acknowledged or not), epoch ms, both ends included. */
export interface SentWindow {
  fromMs: number;
  toMs: number;
}

/** What a peer module tells the driver. */
export interface LineProtocolPeer<P extends PeerProcess> {
  /** The binary's name, as in messages. */
  name: string;
  /** Temp dir prefix under os.tmpdir(). */
  tempPrefix: string;
  /** Starts the server with its state under `dir` (empty, removed by the driver) and waits until it takes writes. */
  start(binary: string, dir: string): Promise<P>;
  /** Path and query of the write endpoint; a write is acknowledged by 204. */
  writePath: string;
  /**
   * Samples of one field (one per line) stored and queryable within `window`. The driver polls it
   * until it reaches the acknowledged lines or {@link VERIFY_TIMEOUT_S} pass.
   */
  countStored(peer: P, window: SentWindow): Promise<number>;
}

/** A closed-loop run of a peer, peer-neutral: each peer names the figures in its own result. */
export interface PeerRun {
  lines_per_s: number;
  samples_per_s: number;
  /**
   * Samples per CPU-second of the peer's server: steadier than samples_per_s when other work
   * shares the machine, so runs can be compared; it does not scale perfectly with more cores.
   */
  samples_per_peer_cpu_s: number;
  fields_per_line: number;
  devices: number;
  sites: number;
  connections: number;
  batch_lines: number;
  generator: 'prerendered' | 'live';
  measure_s: number;
  warmup_s: number;
  /**
   * CPU while measuring, in cores: this process (load generator and HTTP client), the peer's
   * server, everything else on the machine (a shared machine is noisy), and how many cores there are.
   */
  cpu_cores: { generator: number; peer: number; other: number; available: number };
  /** Requests answered with anything but 204 (their lines are not counted). */
  failed_requests: number;
  /** Lines answered 204, warm-up included. */
  acked_lines: number;
  /** Samples of the counted field stored over every line's time span: at least acked_lines. */
  stored_samples: number;
  window: SentWindow;
}

/**
 * Drives one peer closed loop as the module header says, checks that every acknowledged line is
 * stored (throws when fewer are), then hands the run and the still-running server to `report`
 * for the peer's own checks and result; stops the server and removes its dir in every case.
 */
export async function measureLineProtocolPeer<P extends PeerProcess, R>(
  peer: LineProtocolPeer<P>,
  opts: PeerOptions,
  binary: string,
  report: (server: P, run: PeerRun) => Promise<R>,
): Promise<R> {
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

  const dir = mkdtempSync(join(os.tmpdir(), peer.tempPrefix));
  let server: P | null = null;
  // Ctrl-C or a kill must not leave the server running or its data behind either.
  const onSignal = (signal: NodeJS.Signals) => {
    server?.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    // Alone, this handler kept the process from dying: let the signal do what it would have.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  let phase: 'warmup' | 'measure' | 'stop' = 'warmup';
  try {
    server = await peer.start(binary, dir);
    const port = Number(new URL(server.base).port);
    const pid = server.child.pid!;

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
          const res = await post(agent, port, peer.writePath, body);
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

    const peerCpu0 = processCpuS(pid);
    const selfCpu0 = selfCpuS();
    const busy0 = machineBusyS();
    const t0 = performance.now();
    phase = 'measure';
    const deadline = t0 + opts.seconds * 1000;
    while (fatal === null && performance.now() < deadline)
      await sleep(Math.min(100, deadline - performance.now()));
    phase = 'stop';
    const measured = (performance.now() - t0) / 1000;
    const peerCpu1 = processCpuS(pid);
    const selfCpu1 = selfCpuS();
    const busy1 = machineBusyS();
    const linesMeasured = ackedMeasured;
    await Promise.all(workers);
    if (fatal !== null) throw fatal;
    if (linesMeasured === 0)
      throw new Error(`no line acknowledged while measuring; first failure: ${firstFailure}`);

    // Every line sent lies in this span; a line answered otherwise than 204 may be stored too.
    const window = { fromMs: source.minTsMs, toMs: source.maxTsMs };
    let stored = 0;
    const verifyDeadline = performance.now() + VERIFY_TIMEOUT_S * 1000;
    for (;;) {
      stored = await peer.countStored(server, window);
      if (stored >= ackedTotal || performance.now() > verifyDeadline) break;
      await sleep(1000);
    }
    if (stored < ackedTotal)
      throw new Error(`${peer.name} acknowledged ${ackedTotal} lines but only ${stored} are stored`);

    const linesPerS = linesMeasured / measured;
    const cores = (cpuS: number) => Number((cpuS / measured).toFixed(2));
    return await report(server, {
      lines_per_s: Math.round(linesPerS),
      samples_per_s: Math.round(linesPerS * fieldsPerLine),
      samples_per_peer_cpu_s:
        peerCpu1 > peerCpu0 ? Math.round((linesMeasured * fieldsPerLine) / (peerCpu1 - peerCpu0)) : 0,
      fields_per_line: fieldsPerLine,
      devices: opts.devices,
      sites: opts.sites,
      connections,
      batch_lines: batch,
      generator: mode,
      measure_s: Number(measured.toFixed(1)),
      warmup_s: Number(warmupTook.toFixed(1)),
      cpu_cores: {
        generator: cores(selfCpu1 - selfCpu0),
        peer: cores(peerCpu1 - peerCpu0),
        other: cores(Math.max(0, busy1 - busy0 - (selfCpu1 - selfCpu0) - (peerCpu1 - peerCpu0))),
        available: os.availableParallelism(),
      },
      failed_requests: failed,
      acked_lines: ackedTotal,
      stored_samples: stored,
      window,
    });
  } finally {
    phase = 'stop';
    agent.destroy();
    if (server) await stopProcess(server.child);
    rmSync(dir, { recursive: true, force: true });
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
}

/** The command-line options both peers' CLIs take, with the same defaults. */
export const PEER_CLI_OPTIONS = {
  seconds: { type: 'string', default: '20' },
  devices: { type: 'string', default: '200000' },
  sites: { type: 'string', default: '4' },
  connections: { type: 'string', default: String(DEFAULT_CONNECTIONS) },
  batch: { type: 'string', default: String(DEFAULT_BATCH) },
  warmup: { type: 'string', default: String(DEFAULT_WARMUP_S) },
  generator: { type: 'string', default: 'prerendered' },
} as const;

/** PeerOptions from parsed {@link PEER_CLI_OPTIONS}. */
export function peerOptionsFromCli(values: Record<keyof typeof PEER_CLI_OPTIONS, string>): PeerOptions {
  if (values.generator !== 'prerendered' && values.generator !== 'live')
    throw new Error(`--generator must be prerendered or live, got ${values.generator}`);
  return {
    seconds: Number(values.seconds),
    devices: Number(values.devices),
    sites: Number(values.sites),
    connections: Number(values.connections),
    batchLines: Number(values.batch),
    warmupSeconds: Number(values.warmup),
    generator: values.generator,
  };
}
