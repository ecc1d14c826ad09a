// Ingest throughput of hashwatt's push receivers — Prometheus remote_write, InfluxDB line protocol
// and OTLP/HTTP — next to the JSON HTTP path in the same run (the machine is shared and noisy, so
// only same-run ratios mean much). The issue's goal: each protocol at ≥ 0.5× the JSON path's
// readings/s.
//
// The load is the JSON path's: the `load` scenario's 200 000 ASICs on its four sites (already
// registered by the JSON warm-up), each site an open-loop sender with the simulator's agent window
// (4 requests in flight) and batch bound (5 000 readings), new readings every 50 ms whatever the
// answers, fresh timestamps on every reading (nothing is a duplicate). Bodies come pre-encoded per
// device (bench/support/push-bodies.ts); a request costs the generator a copy, timestamp patches
// and the protocol's usual compression (snappy for remote_write; gzip level 1 for the others, as
// the simulator's load gzips JSON). Its CPU is measured over the same window as the service's.
//
// Rates are probed as multiples of the JSON HTTP path's held rate, not ramped from scratch, to keep
// the added time to about a minute and a half (under half a minute with --quick: one probe). The first probe offers
// the goal itself (×0.5), so it answers the goal's question before any probe has overloaded the
// service (an overloaded probe leaves a backlog behind that skews the next); then up by 1.5 while
// clean, or halving the gap when not. A row's readings/s is what the service stored at its best
// clean probe (no refusal, every answer a 2xx that stored everything, ≥ 95 % of the offer stored).
//
// Used by bench/index.ts (`npm run bench`); `node bench/push-protocols.ts [--quick]` runs the JSON
// HTTP ramp and this part alone.
import http from 'node:http';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { compress as snappyCompress } from 'snappy';
import { provisionSites } from '../simulators/agent/provision.ts';
import { DEFAULT_AGENT_OPTIONS } from '../simulators/agent/site-agent.ts';
import { loadScenario } from '../simulators/scenario.ts';
import { ProtoError, ProtoReader, WIRE_LEN, WIRE_VARINT } from '../src/protocols/protobuf/reader.ts';
import {
  ADMIN_TOKEN,
  type BenchService,
  dropBenchDatabase,
  FULL_PLAN,
  isClean,
  measureWindow,
  QUICK_PLAN,
  rampTransport,
  type Scrape,
  startBenchService,
  sum,
  type Window,
  warmUp,
} from './ingest.ts';
import {
  createPushEncoder,
  LoadReadings,
  PUSH_PROTOCOLS,
  type PushBodyEncoder,
  type PushProtocol,
  SAMPLES_PER_PUSH_READING,
  verifyPushEncoder,
} from './support/push-bodies.ts';

const log = (line: string) => process.stderr.write(`${line}\n`);
const gzipAsync = promisify(gzip);

/** The issue's later performance goal: each protocol at least this share of the JSON path's readings/s. */
export const GOAL_RATIO_TO_HTTP = 0.5;
/** The simulator's seed for the load scenario (its CLI default): the same readings as the JSON path. */
const LOAD_SEED = 1;
/** How often each site's sender takes what became due, as the simulator's load generator does. */
const SLICE_MS = 50;
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * How the probes run per protocol: the full run's three take ~30 s; --quick's one probe at the
 * goal's rate ~8 s (a window under ~5 s can store more than the offer while it catches up).
 */
export interface PushPlan {
  /** Seconds each probe is measured (after a one-second settle). */
  stepS: number;
  probes: number;
  /** Factor between probes while clean (×0.5, ×0.75, ×1.125 of the JSON rate). */
  growth: number;
}
export const FULL_PUSH_PLAN: PushPlan = { stepS: 7, probes: 3, growth: 1.5 };
export const QUICK_PUSH_PLAN: PushPlan = { stepS: 5, probes: 1, growth: 1.5 };

/**
 * The fields of a protobuf answer (OTLP's google.rpc.Status, its partial success), as
 * `field: value` leaves, or undefined when the body is not a message. A length-delimited field is
 * a string when it is text, else a sub-message when it reads as one. Stripping the bytes around the text instead
 * left a printable length byte in front of it ("8the site's share…").
 */
function protobufLeaves(body: Uint8Array): string[] | undefined {
  const leaves: string[] = [];
  const r = new ProtoReader(body);
  try {
    while (r.pos < r.end) {
      const tag = r.uint32();
      const field = tag >>> 3;
      if ((tag & 7) === WIRE_VARINT) leaves.push(`${field}: ${r.int64()}`);
      else if ((tag & 7) === WIRE_LEN) {
        const len = r.length();
        const bytes = body.subarray(r.pos, r.pos + len);
        r.pos += len;
        const text = Buffer.from(bytes).toString('utf8');
        // Text has no control bytes; a sub-message's low field tags (0x08, 0x12…) are ones.
        const nested = bytes.some((b) => b < 0x20) ? protobufLeaves(bytes) : undefined;
        leaves.push(...(nested ?? [`${field}: ${text}`]));
      } else r.skip(tag & 7);
    }
  } catch (error) {
    if (error instanceof ProtoError) return undefined;
    throw error;
  }
  return leaves.length > 0 ? leaves : undefined;
}

/** An answer's text for a report line: protobuf answers (OTLP) by their fields, the rest as text. */
function printable(body: Buffer, contentType: string | undefined): string {
  const leaves = contentType?.includes('protobuf') ? protobufLeaves(body) : undefined;
  if (leaves) return leaves.join(', ');
  return body
    .toString('latin1')
    .replace(/[^\x20-\x7e]+/g, ' ')
    .trim();
}

/** Where and how each protocol is sent, as its usual sender sends it. */
interface PushEndpoint {
  description: string;
  path: string;
  headers(token: string): Record<string, string>;
  compress(raw: Buffer): Promise<Buffer>;
  /** For a 2xx: why the answer says something was not stored (unmapped, partial success), if it does. */
  shortfall(headers: http.IncomingHttpHeaders, body: Buffer): string | undefined;
}

const ENDPOINTS: Record<PushProtocol, PushEndpoint> = {
  remote_write: {
    description: 'Prometheus remote_write 1.0 (snappy protobuf), hashwatt_<metric>{device,kind,model}',
    path: '/api/v1/write',
    headers: (token) => ({
      authorization: `Bearer ${token}`,
      'content-type': 'application/x-protobuf',
      'content-encoding': 'snappy',
      'x-prometheus-remote-write-version': '0.1.0',
    }),
    compress: (raw) => snappyCompress(raw),
    shortfall: (headers) => {
      const unmapped = headers['x-hashwatt-unmapped-series'];
      return unmapped === undefined ? undefined : `${unmapped} unmapped series`;
    },
  },
  influx: {
    description: 'InfluxDB line protocol (gzip), measurement hashwatt, tags device/kind/model, precision ms',
    path: '/api/v2/write?org=hashwatt&bucket=bench&precision=ms',
    headers: (token) => ({
      authorization: `Token ${token}`,
      'content-type': 'text/plain; charset=utf-8',
      'content-encoding': 'gzip',
    }),
    compress: (raw) => gzipAsync(raw, { level: 1 }),
    shortfall: () => undefined,
  },
  otlp: {
    description:
      'OTLP/HTTP protobuf (gzip), gauges named after hashwatt metrics, attributes device/kind/hw.model',
    path: '/v1/metrics',
    headers: (token) => ({
      authorization: `Bearer ${token}`,
      'content-type': 'application/x-protobuf',
      'content-encoding': 'gzip',
    }),
    compress: (raw) => gzipAsync(raw, { level: 1 }),
    // A full success is the empty ExportMetricsServiceResponse; anything else carries partial_success.
    shortfall: (headers, body) =>
      body.length === 0 ? undefined : `partial success: ${printable(body, headers['content-type'])}`,
  },
};

/** What one probe's requests were answered, counted by the sender. */
interface SenderCounters {
  requests: number;
  /** Answers other than 2xx, by status ("error" for no answer at all). */
  non2xx: Record<string, number>;
  /** 2xx answers that said something was not stored (remote_write's unmapped header, OTLP's partial success). */
  shortfalls: number;
  /** The first non-2xx or shortfall, verbatim, so a failed row names its cause. */
  firstProblem: string | undefined;
  readingsSent: number;
  wireBytes: number;
  /** Readings due but never sent: beyond the agent's buffer, or still waiting when the probe ended. */
  unsent: number;
}

const emptyCounters = (): SenderCounters => ({
  requests: 0,
  non2xx: {},
  shortfalls: 0,
  firstProblem: undefined,
  readingsSent: 0,
  wireBytes: 0,
  unsent: 0,
});

interface SiteSender {
  name: string;
  token: string;
  readings: LoadReadings;
  encoder: PushBodyEncoder;
  agent: http.Agent;
  ratePerS: number;
  generated: number;
  due: number;
  inFlight: number;
  lastTsMs: number;
}

/** The sender's bounds; the defaults are the simulator's agent's, as the JSON path runs it. */
export interface PushLoadOptions {
  /** Requests in flight per site. */
  window: number;
  maxBatchReadings: number;
  /** Readings a site holds unsent before the oldest are dropped. */
  maxBacklogReadings: number;
}

export const JSON_PATH_SENDER: PushLoadOptions = {
  window: DEFAULT_AGENT_OPTIONS.window,
  maxBatchReadings: DEFAULT_AGENT_OPTIONS.limits.maxBatchReadings,
  maxBacklogReadings: DEFAULT_AGENT_OPTIONS.limits.maxReadings,
};

/**
 * One protocol's open-loop load over the scenario's sites: each site offers its share of the rate
 * in 50 ms slices and sends what is due, up to 5 000 readings a request and 4 requests in flight
 * (the simulator's agent defaults), without waiting for answers beyond that window.
 */
export class PushLoad {
  readonly #url: string;
  readonly #endpoint: PushEndpoint;
  readonly #sites: SiteSender[];
  readonly #window: number;
  readonly #maxBatch: number;
  readonly #maxBacklog: number;
  readonly #inFlight = new Set<Promise<void>>();
  #stopped = true;
  counters = emptyCounters();
  /** Readings sent since the load was made (counters restart per probe; this does not). */
  sentTotal = 0;

  constructor(
    url: string,
    protocol: PushProtocol,
    sites: readonly { name: string; token: string; readings: LoadReadings; encoder: PushBodyEncoder }[],
    options: PushLoadOptions = JSON_PATH_SENDER,
  ) {
    this.#window = options.window;
    this.#maxBatch = options.maxBatchReadings;
    this.#maxBacklog = options.maxBacklogReadings;
    this.#url = url;
    this.#endpoint = ENDPOINTS[protocol];
    this.#sites = sites.map((s) => ({
      ...s,
      agent: new http.Agent({ keepAlive: true, maxSockets: this.#window }),
      ratePerS: 0,
      generated: 0,
      due: 0,
      inFlight: 0,
      lastTsMs: 0,
    }));
  }

  /** Offers `rate` readings/s for `seconds`, then waits for the answers of what is in flight. */
  async offer(rate: number, seconds: number): Promise<void> {
    const devices = this.#sites.reduce((n, s) => n + s.readings.devices.length, 0);
    for (const site of this.#sites) {
      site.ratePerS = (rate * site.readings.devices.length) / devices;
      site.generated = 0;
      site.due = 0;
      site.lastTsMs = Date.now();
    }
    this.#stopped = false;
    const started = performance.now();
    const durationMs = seconds * 1000;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const offsetMs = Math.min(performance.now() - started, durationMs);
        for (const site of this.#sites) this.#take(site, offsetMs);
        if (offsetMs >= durationMs) {
          clearInterval(timer);
          resolve();
        }
      }, SLICE_MS);
    });
    this.#stopped = true;
    for (const site of this.#sites) {
      this.counters.unsent += site.due;
      site.due = 0;
    }
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
  }

  close(): void {
    for (const site of this.#sites) site.agent.destroy();
  }

  /** Makes what became due by `offsetMs` sendable (the agent's buffer bound drops the oldest) and sends. */
  #take(site: SiteSender, offsetMs: number): void {
    const target = Math.floor((site.ratePerS * offsetMs) / 1000);
    site.due += target - site.generated;
    site.generated = target;
    if (site.due > this.#maxBacklog) {
      this.counters.unsent += site.due - this.#maxBacklog;
      site.due = this.#maxBacklog;
    }
    this.#pump(site);
  }

  #pump(site: SiteSender): void {
    while (!this.#stopped && site.inFlight < this.#window && site.due > 0) {
      const count = Math.min(site.due, this.#maxBatch);
      site.due -= count;
      this.#send(site, count);
    }
  }

  /** Encodes `count` readings stamped over the time since the site's last request, and posts them. */
  #send(site: SiteSender, count: number): void {
    site.inFlight++;
    const nowMs = Math.max(Date.now(), site.lastTsMs);
    const run = site.readings.next(count, site.lastTsMs, Math.max(1, nowMs - site.lastTsMs));
    site.lastTsMs = nowMs;
    const raw = site.encoder.encode(run);
    this.counters.readingsSent += count;
    this.sentTotal += count;
    const sent: Promise<void> = this.#endpoint
      .compress(raw)
      .then((body) => this.#post(site, body))
      .finally(() => {
        site.inFlight--;
        this.#inFlight.delete(sent);
        this.#pump(site);
      });
    this.#inFlight.add(sent);
  }

  #post(site: SiteSender, body: Buffer): Promise<void> {
    this.counters.requests++;
    this.counters.wireBytes += body.length;
    return new Promise<void>((resolve) => {
      let settled = false;
      const settle = (problem?: { status: string; text: string }) => {
        if (settled) return;
        settled = true;
        if (problem) {
          if (problem.status !== 'shortfall') {
            this.counters.non2xx[problem.status] = (this.counters.non2xx[problem.status] ?? 0) + 1;
          } else this.counters.shortfalls++;
          this.counters.firstProblem ??= `${site.name}: ${problem.text}`;
        }
        resolve();
      };
      const req = http.request(`${this.#url}${this.#endpoint.path}`, {
        method: 'POST',
        agent: site.agent,
        timeout: REQUEST_TIMEOUT_MS,
        headers: { ...this.#endpoint.headers(site.token), 'content-length': body.length },
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) =>
        settle({ status: 'error', text: err.code ?? err.message }),
      );
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (err) => settle({ status: 'error', text: err.message }));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const answer = Buffer.concat(chunks);
          if (status < 200 || status > 299) {
            const text = printable(answer, res.headers['content-type']).slice(0, 300);
            settle({ status: String(status), text: `HTTP ${status} ${text}` });
            return;
          }
          const shortfall = this.#endpoint.shortfall(res.headers, answer);
          settle(
            shortfall === undefined ? undefined : { status: 'shortfall', text: shortfall.slice(0, 300) },
          );
        });
      });
      req.end(body);
    });
  }
}

/** One probe: the service's figures for the window, and what the sender saw over the whole probe. */
export interface PushWindow extends Window {
  requests: number;
  /** Answers other than 2xx over the probe, by status; any is a failure of the probe. */
  non_2xx: Record<string, number>;
  /** 2xx answers reporting unmapped series or rejected points (a failure too). */
  shortfalls: number;
  first_problem: string | null;
  /** Samples the service found already stored (must be 0: every reading has a fresh timestamp). */
  duplicate_samples: number;
  /** Series, fields or points the service could not map (must be 0: hashwatt's own names). */
  unmapped: number;
  wire_bytes_per_reading: number;
  /** The load generator's own CPU over the window (compression included). */
  generator_cpu_s_per_100k_samples: number | null;
}

const nonOkCount = (w: PushWindow) => Object.values(w.non_2xx).reduce((n, c) => n + c, 0);

/** Clean: as the JSON path's probes, and every answer a 2xx that stored everything. */
const isPushClean = (w: PushWindow) => isClean(w) && nonOkCount(w) === 0 && w.shortfalls === 0;

async function probe(
  service: BenchService,
  protocol: PushProtocol,
  load: PushLoad,
  rate: number,
  seconds: number,
) {
  load.counters = emptyCounters();
  let cpu0 = process.cpuUsage();
  let sent0 = 0;
  let generatorCpuS = 0;
  let sentInWindow = 0;
  const around = {
    begin: () => {
      cpu0 = process.cpuUsage();
      sent0 = load.sentTotal;
    },
    end: () => {
      const used = process.cpuUsage(cpu0);
      generatorCpuS = (used.user + used.system) / 1e6;
      sentInWindow = load.sentTotal - sent0;
    },
  };
  const measured = await measureWindow(service, protocol, (s) => load.offer(rate, s), rate, seconds, around);
  const { window, before, after } = measured;
  const delta = (m: (s: Scrape) => number) => m(after) - m(before);
  const c = load.counters;
  const generatorSamples = sentInWindow * SAMPLES_PER_PUSH_READING;
  const w: PushWindow = {
    ...window,
    requests: c.requests,
    non_2xx: c.non2xx,
    shortfalls: c.shortfalls,
    first_problem: c.firstProblem ?? null,
    duplicate_samples: delta((s) => sum(s, 'hashwatt_samples_duplicate_total', `transport="${protocol}"`)),
    unmapped: delta((s) => sum(s, 'hashwatt_ingest_unmapped_total', `protocol="${protocol}"`)),
    wire_bytes_per_reading: c.readingsSent > 0 ? Math.round(c.wireBytes / c.readingsSent) : 0,
    generator_cpu_s_per_100k_samples:
      generatorSamples > 0 ? Number(((generatorCpuS / generatorSamples) * 1e5).toFixed(3)) : null,
  };
  const problems = nonOkCount(w) + w.shortfalls;
  log(
    `  ${protocol} ${w.offered_per_s}/s: stored ${w.readings_per_s} readings/s (${w.samples_per_s} samples/s), ` +
      `refused ${w.refused_per_s}/s, ${w.requests} requests, ${problems} not 2xx-and-stored${c.firstProblem ? ` (first: ${c.firstProblem})` : ''}, ` +
      `p99 ${w.ack_p99_ms} ms, generator ${w.generator_cpu_s_per_100k_samples} s/100k samples`,
  );
  return w;
}

export interface PushResult {
  protocol: PushProtocol;
  description: string;
  path: string;
  /** The service's stored readings/s at the best clean probe (0 when none was clean). */
  readings_per_s: number;
  /** Whether any probe was clean; when none was, readings_per_s is 0 and the rate is below the lowest probe. */
  held: boolean;
  /** The lowest probe's offer over the JSON rate: with no clean probe, the protocol holds less than this. */
  lowest_probe_ratio: number;
  /** The most the service stored per second in a probe it could not hold (while refusing), if any. */
  stored_while_saturated_per_s: number | null;
  samples_per_s: number;
  samples_per_reading: number;
  /** readings_per_s over the JSON HTTP path's held readings/s in this run. */
  ratio_to_http: number;
  /** A probe offering at least GOAL_RATIO_TO_HTTP × the JSON rate was held clean, and the row is ok. */
  meets_goal: boolean;
  /** Every probe was clean: the protocol may hold more than its best probe offered. */
  lower_bound: boolean;
  held_s: number;
  offered_per_s: number;
  ack_p50_ms: number | null;
  ack_p99_ms: number | null;
  cpu_s_per_100k_samples: number | null;
  cpu_s_per_100k_readings: number | null;
  generator_cpu_s_per_100k_samples: number | null;
  wire_bytes_per_reading: number;
  rss_mb: number;
  requests: number;
  /** Non-2xx answers over every probe, by status: 429/503 above the protocol's rate are saturation. */
  non_2xx: Record<string, number>;
  /**
   * No probe got an answer other than 2xx, 429 or 503, a 2xx reporting something unstored, or
   * stored a duplicate or unmapped sample: those are receiver or encoder bugs, not saturation.
   */
  ok: boolean;
  first_problem: string | null;
  steps: PushWindow[];
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;

/** Probes one protocol at multiples of the JSON path's rate from the goal's: up by `growth` while clean, halving the gap when not. */
async function probeProtocol(
  service: BenchService,
  protocol: PushProtocol,
  load: PushLoad,
  httpReadingsPerS: number,
  plan: PushPlan,
): Promise<PushResult> {
  const steps: PushWindow[] = [];
  let best: PushWindow | undefined;
  let ratio = GOAL_RATIO_TO_HTTP;
  let lo = 0;
  let hi = Number.POSITIVE_INFINITY;
  for (let i = 0; i < plan.probes; i++) {
    const w = await probe(service, protocol, load, ratio * httpReadingsPerS, plan.stepS);
    steps.push(w);
    if (isPushClean(w)) {
      best = w;
      lo = ratio;
      ratio = Number.isFinite(hi) ? (lo + hi) / 2 : ratio * plan.growth;
    } else {
      hi = ratio;
      ratio = (lo + hi) / 2;
    }
  }
  const saturation = new Set(['429', '503']);
  const bugs = steps.some(
    (s) =>
      s.shortfalls > 0 ||
      s.duplicate_samples > 0 ||
      s.unmapped > 0 ||
      Object.keys(s.non_2xx).some((k) => !saturation.has(k)),
  );
  const unclean = steps.filter((s) => !isPushClean(s));
  const non2xx: Record<string, number> = {};
  for (const s of steps) for (const [k, n] of Object.entries(s.non_2xx)) non2xx[k] = (non2xx[k] ?? 0) + n;
  const readings = best?.readings_per_s ?? 0;
  const ratioToHttp = httpReadingsPerS > 0 ? round3(readings / httpReadingsPerS) : 0;
  const ok = !bugs;
  const perReading = best && best.readings_per_s > 0 ? best.samples_per_s / best.readings_per_s : 0;
  return {
    protocol,
    description: ENDPOINTS[protocol].description,
    path: ENDPOINTS[protocol].path,
    readings_per_s: readings,
    held: best !== undefined,
    lowest_probe_ratio: round3(Math.min(...steps.map((s) => s.offered_per_s)) / httpReadingsPerS),
    stored_while_saturated_per_s:
      unclean.length > 0 ? Math.max(...unclean.map((s) => s.readings_per_s)) : null,
    samples_per_s: best?.samples_per_s ?? 0,
    samples_per_reading: Math.round(perReading * 100) / 100,
    ratio_to_http: ratioToHttp,
    meets_goal:
      ok && best !== undefined && best.offered_per_s >= Math.floor(GOAL_RATIO_TO_HTTP * httpReadingsPerS),
    lower_bound: best !== undefined && !Number.isFinite(hi),
    held_s: plan.stepS,
    offered_per_s: best?.offered_per_s ?? 0,
    ack_p50_ms: best?.ack_p50_ms ?? null,
    ack_p99_ms: best?.ack_p99_ms ?? null,
    cpu_s_per_100k_samples: best?.cpu_s_per_100k_samples ?? null,
    cpu_s_per_100k_readings:
      best?.cpu_s_per_100k_samples == null ? null : round3(best.cpu_s_per_100k_samples * perReading),
    generator_cpu_s_per_100k_samples: best?.generator_cpu_s_per_100k_samples ?? null,
    wire_bytes_per_reading: (best ?? steps.at(-1))?.wire_bytes_per_reading ?? 0,
    rss_mb: Math.max(...steps.map((s) => s.rss_mb)),
    requests: steps.reduce((n, s) => n + s.requests, 0),
    non_2xx: non2xx,
    ok,
    first_problem: steps.find((s) => s.first_problem !== null)?.first_problem ?? null,
    steps,
  };
}

export interface PushResults {
  /** The JSON HTTP path's held readings/s in this run: the probes' unit and the ratios' denominator. */
  http_readings_per_s: number;
  goal_ratio_to_http: number;
  plan: PushPlan;
  remote_write: PushResult;
  influx: PushResult;
  otlp: PushResult;
}

/**
 * The load scenario's sites with a token each and their readings' source. The sites exist once the
 * simulator has run against the service (the JSON warm-up): provisioning rotates their tokens.
 */
export async function preparePushSites(
  url: string,
): Promise<{ name: string; token: string; readings: LoadReadings }[]> {
  const scenario = loadScenario('load');
  const tokens = await provisionSites({ url, adminToken: ADMIN_TOKEN, scenario });
  return scenario.sites.map((spec) => ({
    name: spec.name,
    token: tokens[spec.name]!,
    readings: new LoadReadings(spec, LOAD_SEED),
  }));
}

/**
 * Measures the three push protocols against a running bench service whose load-scenario devices
 * are registered (the JSON warm-up), in one process with the service as its child.
 */
export async function measurePushProtocols(
  service: BenchService,
  httpReadingsPerS: number,
  plan: PushPlan,
): Promise<PushResults> {
  const sites = await preparePushSites(service.url);
  const results: Partial<Record<PushProtocol, PushResult>> = {};
  for (const protocol of PUSH_PROTOCOLS) {
    const t0 = performance.now();
    const encoders = sites.map((s) => ({ ...s, encoder: createPushEncoder(protocol, s.readings) }));
    // A body of each site checked against hashwatt's decoder and protobufjs before any is timed.
    for (const s of encoders) verifyPushEncoder(s.encoder, s.readings);
    log(`  ${protocol}: bodies pre-encoded for ${Math.round(performance.now() - t0)} ms`);
    const load = new PushLoad(service.url, protocol, encoders);
    try {
      results[protocol] = await probeProtocol(service, protocol, load, httpReadingsPerS, plan);
    } finally {
      load.close();
    }
  }
  return {
    http_readings_per_s: httpReadingsPerS,
    goal_ratio_to_http: GOAL_RATIO_TO_HTTP,
    plan,
    remote_write: results.remote_write!,
    influx: results.influx!,
    otlp: results.otlp!,
  };
}

/** One table row per protocol, for the bench's printed table and bench/README.md. */
export function formatPushRows(push: PushResults): string[] {
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  return PUSH_PROTOCOLS.map((protocol) => {
    const r = push[protocol];
    const failures = Object.entries(r.non_2xx)
      .map(([status, count]) => `${n(count)}× ${status}`)
      .join(', ');
    const goal = `goal ≥ ${push.goal_ratio_to_http} ${r.meets_goal ? 'met' : 'NOT met'}`;
    const saturated =
      r.stored_while_saturated_per_s === null
        ? ''
        : `; stored ≤ ${n(r.stored_while_saturated_per_s)}/s while refusing above it`;
    const verdict = !r.ok
      ? `FAILED: ${r.first_problem ?? 'duplicate or unmapped samples stored'}`
      : r.held
        ? `**${r.lower_bound ? '≥ ' : ''}${r.ratio_to_http}** (${goal})`
        : `**< ${r.lowest_probe_ratio}** (${goal}: no clean probe${saturated})`;
    const held = r.held ? `held ${r.held_s} s at ${n(r.offered_per_s)}/s offered` : 'not held';
    return `| ${r.description}, ${held} | ${n(r.readings_per_s)} | ${n(r.samples_per_s)} | ${verdict} | ${r.cpu_s_per_100k_samples ?? '–'} s | ${failures || 'none'} of ${n(r.requests)} |`;
  });
}

/**
 * The line under the table: service CPU per 100k readings side by side (a JSON reading is six
 * samples, status included; a pushed one five, so per-sample figures flatter the JSON path).
 */
export function formatPushNote(
  push: PushResults,
  http: { cpu_s_per_100k_samples: number | null; samples_per_s: number; readings_per_s: number },
): string {
  const httpPerReading =
    http.cpu_s_per_100k_samples === null || http.readings_per_s === 0
      ? '–'
      : String(round3((http.cpu_s_per_100k_samples * http.samples_per_s) / http.readings_per_s));
  const rows = PUSH_PROTOCOLS.map((p) => `${p} ${push[p].cpu_s_per_100k_readings ?? '–'} s`).join(', ');
  return (
    `Push probes are multiples of the JSON HTTP rate held above (${Math.round(push.http_readings_per_s).toLocaleString('en-US')}/s), from ×${push.goal_ratio_to_http}. ` +
    `Service CPU per 100k readings: JSON HTTP ${httpPerReading} s; ${rows}.`
  );
}

export const PUSH_TABLE_HEAD = [
  '| push protocol, same fleet and run | readings/s | samples/s | ÷ JSON HTTP readings/s | service CPU per 100k samples | non-2xx answers |',
  '|---|---|---|---|---|---|',
];

if (import.meta.main) {
  const quick = process.argv.includes('--quick');
  const plan = quick ? QUICK_PLAN : FULL_PLAN;
  const service = await startBenchService();
  try {
    await warmUp(service, plan);
    log('ingest over HTTP (the JSON path the protocols are compared with)');
    const httpResult = await rampTransport(service, 'http', plan);
    log('push protocols');
    const push = await measurePushProtocols(
      service,
      httpResult.readings_per_s > 0 ? httpResult.readings_per_s : httpResult.half_rate,
      quick ? QUICK_PUSH_PLAN : FULL_PUSH_PLAN,
    );
    console.log(JSON.stringify({ http: httpResult, push }, null, 2));
    console.log(
      [...PUSH_TABLE_HEAD, ...formatPushRows(push), '', formatPushNote(push, httpResult)].join('\n'),
    );
  } finally {
    await service.stop();
    await dropBenchDatabase();
  }
}
