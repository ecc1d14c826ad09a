import { performance } from 'node:perf_hooks';
import { type DeliveryCounters, sumCounters } from '../src/agent/delivery/counters.ts';
import {
  createTransport,
  Delivery,
  type DeliveryOverrides,
  resolveDeliveryOptions,
} from '../src/agent/delivery/delivery.ts';
import type { Transport } from '../src/agent/delivery/transport.ts';
import { LoadGenerator } from './load/templates.ts';
import { activeFaults, faultsForSite } from './physics/faults.ts';
import { countReportingDevices } from './physics/nameplate.ts';
import { readingKey } from './physics/reading.ts';
import { SiteSimulation } from './physics/site.ts';
import { AgentSiteRunner } from './protocols/agent-site.ts';
import type { AgentSettings, Fault, Scenario, SiteSpec } from './scenario.ts';

export interface Clock {
  /** Epoch ms. */
  now(): number;
}

export interface FleetOptions {
  scenario: Scenario;
  /** Base URL of the service, e.g. http://127.0.0.1:8080. */
  url: string;
  /** Site token per site name. */
  tokens: Readonly<Record<string, string>>;
  /** Same seed and same startMs give the same readings. Default 1. */
  seed?: number;
  /** Epoch ms of the first tick. Default: the clock's now, floored to the second. */
  startMs?: number;
  /** Source of "now" for the default start time. Default: Date.now. */
  clock?: Clock;
  /**
   * Scenario seconds per wall second (physics scenarios). Above 1 the run replays the past: the
   * default start moves back by the scenario's duration so no reading lies in the future.
   */
  speed?: number;
  /** Per-site transport override. */
  transport?: 'http' | 'ws';
  /** Delivery options over the scenario's per-site agent settings. */
  agent?: DeliveryOverrides;
  /** Record the (device, ts) of every acknowledged reading; see FleetHandle.acknowledged(). */
  trackAcks?: boolean;
  onStatus?: (status: FleetStatus) => void;
  statusIntervalMs?: number;
  /** When the scenario's duration is over: how long to keep delivering what is buffered. Default 10 s. */
  drainMs?: number;
  /** Replaces the real transports (tests). */
  createTransport?: (site: SiteSpec, token: string) => Transport;
}

export interface FleetCounters {
  total: DeliveryCounters;
  sites: Record<string, DeliveryCounters>;
}

export interface FleetStatus extends FleetCounters {
  elapsedMs: number;
  /** Readings generated per second since start: the achieved offered rate. */
  offeredPerS: number;
  acknowledgedPerS: number;
  /** Load scenarios: the target rate. */
  targetPerS: number | null;
  /** Last delivery error per site, if any. */
  errors: Record<string, string>;
}

export interface FleetHandle {
  counters(): FleetCounters;
  status(): FleetStatus;
  /**
   * Keys (readingKey(device, tsMs)) of the readings the service acknowledged, per site.
   * Empty unless started with trackAcks.
   */
  acknowledged(): Map<string, ReadonlySet<string>>;
  /** Resolves with the final counters when the scenario's duration is over and the buffer drained (or stop()). */
  readonly done: Promise<FleetCounters>;
  /** Stops generating, keeps delivering for flushMs (default 5 s), closes connections. */
  stop(options?: { flushMs?: number }): Promise<FleetCounters>;
}

/** What the fleet needs of a site's delivery: the simulator's own agent, or a real site agent's. */
interface SiteDelivery {
  readonly site: string;
  readonly lastError: string | null;
  readonly acknowledged: Set<string> | null;
  counters(): DeliveryCounters;
  drain(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Something that feeds an agent on a schedule. */
interface Generator {
  start(): void;
  /** Stops generating; resolves at once. */
  stop(): void;
  /** Resolves when the scenario's duration has been generated (never for duration 0). */
  readonly finished: Promise<void>;
}

function agentOverridesOf(settings: AgentSettings): DeliveryOverrides {
  return {
    window: settings.window,
    gzipLevel: settings.gzip_level,
    limits: {
      maxBatchReadings: settings.max_batch_readings,
      maxBatchBytes: settings.max_batch_bytes,
      maxReadings: settings.max_buffer_readings,
      maxBytes: settings.max_buffer_bytes,
    },
  };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Steps a site's physics on the scenario's interval and plays its delivery faults. */
class PhysicsGenerator implements Generator {
  readonly #sim: SiteSimulation;
  readonly #agent: Delivery;
  readonly #faults: Fault[];
  readonly #fired = new Set<Fault>();
  readonly #tickWallMs: number;
  readonly #ticks: number;
  /** Wall ms of the whole run: the last tick comes one interval before its end. */
  readonly #durationWallMs: number;
  readonly #speed: number;
  readonly #trackAcks: boolean;
  readonly #done = deferred();
  #wallStart = 0;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(sim: SiteSimulation, agent: Delivery, scenario: Scenario, speed: number, trackAcks: boolean) {
    this.#sim = sim;
    this.#agent = agent;
    this.#faults = faultsForSite(scenario.faults, sim.site.name);
    this.#speed = speed;
    this.#tickWallMs = (scenario.interval_s * 1000) / speed;
    this.#ticks =
      scenario.duration_s > 0
        ? Math.ceil(scenario.duration_s / scenario.interval_s)
        : Number.POSITIVE_INFINITY;
    this.#durationWallMs = (scenario.duration_s * 1000) / speed;
    this.#trackAcks = trackAcks;
  }

  get finished(): Promise<void> {
    return this.#done.promise;
  }

  start(): void {
    this.#wallStart = performance.now();
    this.#run();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #run(): void {
    this.#timer = null;
    if (this.#stopped) return;
    const due = Math.floor((performance.now() - this.#wallStart) / this.#tickWallMs);
    // Bounded per wake-up so a long stall cannot freeze the event loop; the rest follows at once.
    let budget = 1000;
    while (this.#sim.nextTick <= due && this.#sim.nextTick < this.#ticks && budget-- > 0) this.#tick();
    this.#agent.pump();
    if (this.#sim.nextTick >= this.#ticks) {
      // The last reading is stamped one interval before the end (90 s at 10 s: the last at 80 s);
      // the run still lasts the duration asked, so its readings are spread over all of it.
      this.#finishAt(this.#wallStart + this.#durationWallMs);
      return;
    }
    const wait = this.#wallStart + this.#sim.nextTick * this.#tickWallMs - performance.now();
    this.#timer = setTimeout(() => this.#run(), Math.max(0, wait));
  }

  /** Resolves `finished` once performance.now() has reached `endMs`; timers may fire a little early. */
  #finishAt(endMs: number): void {
    const left = endMs - performance.now();
    if (left <= 0) {
      this.#timer = null;
      this.#done.resolve();
      return;
    }
    this.#timer = setTimeout(() => this.#finishAt(endMs), Math.ceil(left));
  }

  #tick(): void {
    const offsetS = this.#sim.nextTick * this.#sim.intervalS;
    const tick = this.#sim.step();
    for (const f of this.#faults) {
      if (f.type === 'network_flap' && !this.#fired.has(f) && offsetS >= f.at_s) {
        this.#fired.add(f);
        this.#agent.interruptNetwork(((f.duration_s ?? 0) * 1000) / this.#speed);
      }
    }
    const outages = activeFaults(this.#faults, 'site_outage', offsetS);
    this.#agent.setOutage(outages.length > 0);
    // Without backfill the agent itself was down: those readings never existed.
    if (outages.some((f) => !f.backfill)) return;
    for (const r of tick.readings)
      this.#agent.push(JSON.stringify(r), this.#trackAcks ? readingKey(r.device, tick.tsMs) : null);
  }
}

/** Emits a site's share of the target rate from templates, on a 50 ms cadence, regardless of acks. */
class LoadSiteGenerator implements Generator {
  static readonly SLICE_MS = 50;
  readonly #gen: LoadGenerator;
  readonly #agent: Delivery;
  readonly #ratePerS: number;
  readonly #durationMs: number;
  readonly #startMs: number;
  readonly #trackAcks: boolean;
  readonly #done = deferred();
  #wallStart = 0;
  #emitted = 0;
  /** Readings the generator could not produce in time (CPU-bound): the offered rate says so. */
  #skipped = 0;
  #lastOffsetMs = 0;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(
    gen: LoadGenerator,
    agent: Delivery,
    ratePerS: number,
    durationS: number,
    startMs: number,
    trackAcks: boolean,
  ) {
    this.#gen = gen;
    this.#agent = agent;
    this.#ratePerS = ratePerS;
    this.#durationMs = durationS > 0 ? durationS * 1000 : Number.POSITIVE_INFINITY;
    this.#startMs = startMs;
    this.#trackAcks = trackAcks;
  }

  get finished(): Promise<void> {
    return this.#done.promise;
  }

  start(): void {
    this.#wallStart = performance.now();
    this.#timer = setInterval(() => this.#slice(), LoadSiteGenerator.SLICE_MS);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #slice(): void {
    if (this.#stopped) return;
    const offsetMs = Math.min(performance.now() - this.#wallStart, this.#durationMs);
    let count = Math.floor((this.#ratePerS * offsetMs) / 1000) - this.#emitted - this.#skipped;
    // More than a second behind: the generator cannot keep up; skip rather than burst.
    if (count > this.#ratePerS) {
      this.#skipped += count - Math.ceil(this.#ratePerS / 4);
      count = Math.ceil(this.#ratePerS / 4);
    }
    if (count > 0) {
      const from = this.#startMs + this.#lastOffsetMs;
      const names = this.#gen.devices;
      const agent = this.#agent;
      const track = this.#trackAcks;
      this.#gen.emit(count, from, Math.max(1, offsetMs - this.#lastOffsetMs), (json, d, ts) =>
        agent.push(json, track ? readingKey(names[d]!, ts) : null),
      );
      this.#emitted += count;
      this.#lastOffsetMs = offsetMs;
      agent.pump();
    }
    if (offsetMs >= this.#durationMs) {
      this.stop();
      this.#done.resolve();
    }
  }
}

/** A site_agent site: its agent polls on its own schedule; the generator only marks the duration. */
class AgentSiteGenerator implements Generator {
  readonly #runner: AgentSiteRunner;
  readonly #durationMs: number;
  readonly #done = deferred();
  #timer: NodeJS.Timeout | null = null;

  constructor(runner: AgentSiteRunner, durationS: number) {
    this.#runner = runner;
    this.#durationMs = durationS * 1000;
  }

  get finished(): Promise<void> {
    return this.#done.promise;
  }

  start(): void {
    void this.#runner.start();
    if (this.#durationMs > 0) this.#timer = setTimeout(() => this.#done.resolve(), this.#durationMs);
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}

/**
 * Why a run that has ended must not pass for a clean one, or null: readings still buffered after
 * the drain, or evicted from a full buffer, were never acknowledged and are lost to the service.
 */
export function describeUnacknowledged(total: DeliveryCounters, drainMs: number): string | null {
  if (total.buffered === 0 && total.dropped === 0) return null;
  const n = (x: number) => x.toLocaleString('en-US');
  const parts = [
    ...(total.buffered > 0 ? [`${n(total.buffered)} still buffered after the ${n(drainMs)} ms drain`] : []),
    ...(total.dropped > 0 ? [`${n(total.dropped)} dropped from a full buffer`] : []),
  ];
  return `${n(total.buffered + total.dropped)} of ${n(total.generated)} readings were never acknowledged (${parts.join(', ')}): the service did not keep up with the offered rate, or could not be reached`;
}

/**
 * Runs one agent per site of a scenario against the service. The library face for the service's
 * demo, tests and benchmarks; the CLI is a thin shell around it.
 */
export function startFleet(options: FleetOptions): FleetHandle {
  const { scenario } = options;
  const seed = options.seed ?? 1;
  const speed = options.speed ?? 1;
  const isLoad = scenario.rate_per_s !== undefined;
  if (!(speed > 0)) throw new Error(`speed must be > 0, got ${speed}`);
  if (speed !== 1 && isLoad)
    throw new Error('speed applies to physics scenarios only; load scenarios run in real time');
  if (speed > 1 && scenario.duration_s === 0 && options.startMs === undefined) {
    throw new Error(
      'speed > 1 needs a finite duration (--duration) or an explicit start (--start, startMs): readings would run into the future',
    );
  }
  const now = (options.clock ?? { now: Date.now }).now();
  const startMs =
    options.startMs ??
    Math.floor(now / 1000) * 1000 - (speed > 1 ? Math.ceil(scenario.duration_s) * 1000 : 0);
  const totalDevices = scenario.sites.reduce((n, s) => n + Math.max(1, countReportingDevices(s.devices)), 0);

  const agents: SiteDelivery[] = [];
  const generators: Generator[] = [];
  for (const site of scenario.sites) {
    const token = options.tokens[site.name];
    if (token === undefined) throw new Error(`no token for site "${site.name}"`);
    if (site.collection === 'site_agent') {
      if (speed !== 1) throw new Error(`site "${site.name}": a site_agent site runs in real time (speed 1)`);
      const runner = new AgentSiteRunner({
        site,
        url: options.url,
        token,
        seed,
        intervalS: scenario.interval_s,
        randomFailures: scenario.random_failures,
        faults: scenario.faults,
        trackAcks: options.trackAcks ?? false,
      });
      agents.push(runner);
      generators.push(new AgentSiteGenerator(runner, scenario.duration_s));
      continue;
    }
    const agentOptions = resolveDeliveryOptions(
      isLoad ? { gzipLevel: 1 } : undefined, // benchmarks: compression must not be the bottleneck
      agentOverridesOf(site.agent),
      options.agent,
      { trackAcks: options.trackAcks ?? false },
    );
    const transportKind = options.transport ?? site.transport;
    const transport = options.createTransport
      ? options.createTransport(site, token)
      : createTransport(transportKind, options.url, token, agentOptions);
    const agent = new Delivery(site.name, transport, agentOptions);
    agents.push(agent);
    if (isLoad) {
      const gen = new LoadGenerator(site, seed, scenario.ts_format === 'rfc3339' ? 'rfc3339' : 'epoch_ms');
      const share = (scenario.rate_per_s! * gen.devices.length) / totalDevices;
      if (gen.devices.length < share / 1000) {
        throw new Error(
          `site "${site.name}": ${gen.devices.length} devices cannot carry ${Math.round(share)} readings/s without repeating a (device, ts) within 1 ms; raise --scale or lower --rate`,
        );
      }
      generators.push(
        new LoadSiteGenerator(gen, agent, share, scenario.duration_s, startMs, options.trackAcks ?? false),
      );
    } else {
      const sim = new SiteSimulation(site, {
        seed,
        startMs,
        intervalS: scenario.interval_s,
        faults: scenario.faults,
        randomFailures: scenario.random_failures,
        tsFormat: scenario.ts_format,
      });
      generators.push(new PhysicsGenerator(sim, agent, scenario, speed, options.trackAcks ?? false));
    }
  }

  const wallStart = performance.now();
  const counters = (): FleetCounters => {
    const sites: Record<string, DeliveryCounters> = {};
    for (const a of agents) sites[a.site] = a.counters();
    return { total: sumCounters(Object.values(sites)), sites };
  };
  const status = (): FleetStatus => {
    const c = counters();
    const elapsedMs = performance.now() - wallStart;
    const errors: Record<string, string> = {};
    for (const a of agents) if (a.lastError) errors[a.site] = a.lastError;
    return {
      ...c,
      elapsedMs,
      offeredPerS: elapsedMs > 0 ? (c.total.generated * 1000) / elapsedMs : 0,
      acknowledgedPerS: elapsedMs > 0 ? (c.total.acknowledged * 1000) / elapsedMs : 0,
      targetPerS: scenario.rate_per_s ?? null,
      errors,
    };
  };

  let statusTimer: NodeJS.Timeout | null = null;
  if (options.onStatus) {
    const onStatus = options.onStatus;
    statusTimer = setInterval(() => onStatus(status()), options.statusIntervalMs ?? 1000);
    statusTimer.unref();
  }

  let resolveDone!: (c: FleetCounters) => void;
  const done = new Promise<FleetCounters>((resolve) => {
    resolveDone = resolve;
  });
  let stopping: Promise<FleetCounters> | null = null;
  const stop = (flushMs: number): Promise<FleetCounters> => {
    if (stopping) return stopping;
    for (const g of generators) g.stop();
    stopping = (async () => {
      await Promise.all(agents.map((a) => a.drain(flushMs)));
      await Promise.all(agents.map((a) => a.close()));
      if (statusTimer) clearInterval(statusTimer);
      const final = counters();
      resolveDone(final);
      return final;
    })();
    return stopping;
  };

  void Promise.all(generators.map((g) => g.finished)).then(() => stop(options.drainMs ?? 10_000));
  for (const g of generators) g.start();

  return {
    counters,
    status,
    acknowledged: () => new Map(agents.map((a) => [a.site, a.acknowledged ?? new Set<string>()])),
    done,
    stop: (o) => stop(o?.flushMs ?? 5000),
  };
}
