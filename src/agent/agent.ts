/**
 * The site agent: polls the site's miners, meters and GPU hosts (./poller.ts, ./collectors/),
 * spools every reading to disk (./spool.ts) and delivers it to hashwatt (./delivery/), with its own
 * health on a local /metrics (./health.ts). A target that cannot be read is reported `offline`,
 * never skipped: the service then counts it down instead of wondering.
 */
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import type { DeviceKind } from '../catalog/index.ts';
import {
  configuredDevices,
  type GpuTarget,
  PollError,
  type PollResult,
  type Target,
} from './collectors/collector.ts';
import { DcgmCollector } from './collectors/gpu/dcgm.ts';
import { NvidiaSmiCollector } from './collectors/gpu/nvidia-smi.ts';
import { MinerCollector } from './collectors/miner.ts';
import { ModbusCollector } from './collectors/modbus/collector.ts';
import type { AgentConfig, ScheduledTarget } from './config.ts';
import { createTransport, Delivery, resolveDeliveryOptions } from './delivery/delivery.ts';
import { FallbackTransport } from './delivery/fallback-transport.ts';
import type { Transport } from './delivery/transport.ts';
import { type AgentMetrics, createAgentMetrics, serveHealth, type TargetHealth } from './health.ts';
import { Poller } from './poller.ts';
import { type AgentReading, finalizeReading } from './reading.ts';
import { SpoolStore } from './spool.ts';

export const AGENT_VERSION = '0.1.0';

export type AgentLogger = pino.Logger;

/** JSON logs on stderr (stdout is for the commands' output); the token never reaches them. */
export function createAgentLogger(level: string): AgentLogger {
  return pino(
    {
      level,
      base: { service: 'hashwatt-agent' },
      redact: { paths: ['token', '*.token'], censor: '[redacted]' },
    },
    pino.destination(2),
  );
}

export interface AgentDeps {
  logger?: AgentLogger;
  /** Epoch ms: what readings are stamped with. */
  now?: () => number;
  /** Replaces the transport to hashwatt (tests). */
  transport?: Transport;
  /** Keep the (device, ts) keys of acknowledged readings (tests). */
  trackAcks?: boolean;
  /** Called with every reading as it is spooled (tests, the simulators' counters). */
  onReading?: (reading: AgentReading, json: string) => void;
}

interface TargetState {
  readonly target: ScheduledTarget;
  readonly health: TargetHealth;
  /** Devices the target has reported: what an offline reading names. */
  readonly devices: Map<string, { kind: DeviceKind; model?: string }>;
}

export interface AgentStatus {
  targets: TargetHealth[];
  delivery: ReturnType<Delivery['counters']>;
  spool: ReturnType<SpoolStore['stats']>;
  pollsActive: number;
  pollsMaxActive: number;
  healthUrl: string | null;
}

function collectorName(target: Target): string {
  switch (target.type) {
    case 'miner':
      return target.api;
    case 'meter':
      return 'modbus';
    case 'gpu':
      return target.source;
  }
}

function targetLabel(target: Target): string {
  return target.type === 'gpu' ? target.name : target.device;
}

export class Agent {
  readonly config: AgentConfig;
  readonly delivery: Delivery;
  readonly spool: SpoolStore;
  readonly #logger: AgentLogger;
  readonly #now: () => number;
  readonly #metrics: AgentMetrics;
  readonly #poller: Poller;
  readonly #states = new Map<string, TargetState>();
  readonly #miners = new MinerCollector();
  readonly #modbus = new ModbusCollector();
  readonly #dcgm = new DcgmCollector();
  readonly #nvidiaSmi = new NvidiaSmiCollector();
  readonly #transport: Transport;
  readonly #onReading: AgentDeps['onReading'];
  #health: { url: string; close: () => Promise<void> } | null = null;
  #lastDeliveryError: string | null = null;
  #lastDeliveryLogMs = 0;
  #stopping: Promise<{ drained: boolean }> | null = null;

  private constructor(config: AgentConfig, deps: AgentDeps) {
    this.config = config;
    this.#logger = deps.logger ?? createAgentLogger(config.logLevel);
    this.#now = deps.now ?? Date.now;
    this.#onReading = deps.onReading;
    const options = resolveDeliveryOptions({
      userAgent: `hashwatt-agent/${AGENT_VERSION}`,
      keepOnUnauthorized: true,
      trackAcks: deps.trackAcks ?? false,
      ...(config.delivery.window !== undefined && { window: config.delivery.window }),
      ...(config.delivery.gzipLevel !== undefined && { gzipLevel: config.delivery.gzipLevel }),
      ...(config.delivery.retryMaxMs !== undefined && {
        backoff: { maxMs: config.delivery.retryMaxMs, baseMs: Math.min(500, config.delivery.retryMaxMs) },
      }),
      limits: {
        ...(config.delivery.maxBatchReadings !== undefined && {
          maxBatchReadings: config.delivery.maxBatchReadings,
        }),
        ...(config.delivery.maxBatchBytes !== undefined && { maxBatchBytes: config.delivery.maxBatchBytes }),
      },
    });
    this.spool = SpoolStore.open({
      dir: config.spool.dir,
      maxBytes: config.spool.maxBytes,
      syncIntervalMs: config.spool.syncIntervalMs,
      maxBatchReadings: options.limits.maxBatchReadings,
      maxBatchBytes: options.limits.maxBatchBytes,
      trackKeys: deps.trackAcks ?? false,
      onError: (error) => this.#logger.error({ err: error.message }, 'spool I/O failed'),
    });
    this.#transport =
      deps.transport ??
      createTransport(config.transport === 'ws' ? 'ws-fallback' : 'http', config.url, config.token, options);
    this.delivery = new Delivery('site', this.#transport, options, this.spool);
    for (const target of config.targets) {
      const devices = new Map<string, { kind: DeviceKind; model?: string }>();
      for (const d of configuredDevices(target)) devices.set(d.device, { kind: d.kind });
      this.#states.set(target.id, {
        target,
        devices,
        health: {
          collector: collectorName(target),
          target: targetLabel(target),
          up: null,
          polls: 0,
          failures: 0,
          lastSuccessMs: null,
          lastError: null,
          firmware: null,
          model: null,
        },
      });
    }
    this.#metrics = createAgentMetrics({
      targets: () => [...this.#states.values()].map((s) => s.health),
      delivery: () => this.delivery.counters(),
      spool: () => this.spool.stats(),
      spoolCapacityBytes: config.spool.maxBytes,
      lastAckMs: () => this.delivery.lastAckAtMs,
      transport: () =>
        this.#transport instanceof FallbackTransport ? this.#transport.mode : this.config.transport,
      unauthorized: () => this.delivery.unauthorized,
      pollsActive: () => this.#poller.active,
      perTarget: config.health.perTarget,
    });
    this.#poller = new Poller({
      targets: config.targets,
      concurrency: config.concurrency,
      now: this.#now,
      poll: (target, startedAtMs) => this.#pollOne(target, startedAtMs),
      onSkipped: (target) => this.#metrics.pollSkipped(collectorName(target)),
    });
  }

  /** Opens the spool (resending what it holds), starts /metrics, delivery and polling. */
  static async start(config: AgentConfig, deps: AgentDeps = {}): Promise<Agent> {
    const agent = new Agent(config, deps);
    if (config.health.listen)
      agent.#health = await serveHealth(agent.#metrics.registry, config.health.listen);
    const recovered = agent.spool.stats().recovered;
    agent.#logger.info(
      {
        targets: config.targets.length,
        url: config.url,
        transport: config.transport,
        spool: config.spool.dir,
        recovered,
        metrics: agent.#health?.url ?? null,
      },
      'agent started',
    );
    const torn = agent.spool.stats().tornRecords;
    if (torn > 0)
      agent.#logger.warn(
        { torn },
        'spool records torn by a crash were cut off; the readings before them are kept',
      );
    agent.delivery.pump();
    agent.#poller.start();
    return agent;
  }

  get healthUrl(): string | null {
    return this.#health?.url ?? null;
  }

  get metricsRegistry(): AgentMetrics['registry'] {
    return this.#metrics.registry;
  }

  async #poll(target: ScheduledTarget, ts: number): Promise<PollResult> {
    const context = { ts, timeoutMs: target.timeoutMs, connectTimeoutMs: this.config.connectTimeoutMs };
    switch (target.type) {
      case 'miner':
        return this.#miners.poll(target, context);
      case 'meter':
        return this.#modbus.poll(target, context);
      case 'gpu':
        return (target as GpuTarget).source === 'dcgm'
          ? this.#dcgm.poll(target, context)
          : this.#nvidiaSmi.poll(target, context);
    }
  }

  async #pollOne(target: ScheduledTarget, ts: number): Promise<void> {
    const state = this.#states.get(target.id)!;
    const health = state.health;
    const started = performance.now();
    health.polls++;
    let result: PollResult | null = null;
    let failure: PollError | null = null;
    try {
      result = await this.#poll(target, ts);
    } catch (error) {
      failure =
        error instanceof PollError
          ? error
          : new PollError('malformed', `collector failed: ${(error as Error).message}`);
    }
    const seconds = (performance.now() - started) / 1000;
    const collector = health.collector;
    if (result) {
      for (const repair of result.repairs) this.#metrics.repaired(repair);
      const seen = new Set<string>();
      for (const reading of result.readings) {
        seen.add(reading.device);
        state.devices.set(reading.device, {
          kind: reading.kind,
          ...(reading.model !== undefined && { model: reading.model }),
        });
        this.#spool(reading);
      }
      // A device the target reported before and not now (a GPU off the bus) is down, not gone.
      for (const [device, known] of state.devices)
        if (!seen.has(device) && target.type === 'gpu') this.#spool(offlineReading(device, known, ts));
      if (health.up === false)
        this.#logger.info(
          { target: health.target, collector, after: health.lastError },
          'target answers again',
        );
      health.up = true;
      health.lastSuccessMs = this.#now();
      health.lastError = null;
      if (result.identity) {
        health.firmware = result.identity.firmware;
        health.model = result.identity.model ?? health.model;
      }
      if (result.problems.length > 0)
        this.#logger.debug({ target: health.target, problems: result.problems }, 'poll problems');
      this.#metrics.pollFinished(collector, true, null, seconds);
    } else if (failure) {
      health.failures++;
      const message = `${failure.code}: ${failure.message}`;
      if (health.up !== false)
        this.#logger.warn(
          { target: health.target, collector, reason: failure.code, error: failure.message },
          'target down',
        );
      health.up = false;
      health.lastError = message;
      for (const [device, known] of state.devices) this.#spool(offlineReading(device, known, ts));
      this.#metrics.pollFinished(collector, false, failure.code, seconds);
    }
    this.delivery.pump();
    this.#logDelivery();
  }

  #spool(raw: AgentReading): void {
    const { reading, dropped } = finalizeReading(raw);
    for (const d of dropped) this.#metrics.valueDropped(d.reason);
    const json = JSON.stringify(reading);
    this.delivery.push(json, `${reading.device}@${reading.ts}`);
    this.#onReading?.(reading, json);
  }

  /** Delivery trouble, said once when it starts and every 30 s while it lasts. */
  #logDelivery(): void {
    const error = this.delivery.lastError;
    const now = performance.now();
    if (error === this.#lastDeliveryError && (error === null || now - this.#lastDeliveryLogMs < 30_000))
      return;
    if (error === null) this.#logger.info('delivering again');
    else
      this.#logger.warn({ error, spooled: this.spool.size }, 'delivery failing; readings stay in the spool');
    this.#lastDeliveryError = error;
    this.#lastDeliveryLogMs = now;
  }

  status(): AgentStatus {
    return {
      targets: [...this.#states.values()].map((s) => ({ ...s.health })),
      delivery: this.delivery.counters(),
      spool: this.spool.stats(),
      pollsActive: this.#poller.active,
      pollsMaxActive: this.#poller.maxActive,
      healthUrl: this.healthUrl,
    };
  }

  /**
   * Stops polling (polls under way finish and are spooled), delivers what it can within `flushMs`,
   * then closes. What is still unacknowledged stays in the spool for the next start.
   */
  stop(options: { flushMs?: number } = {}): Promise<{ drained: boolean }> {
    this.#stopping ??= (async () => {
      await this.#poller.stop();
      const drained = await this.delivery.drain(options.flushMs ?? 10_000);
      await this.delivery.close();
      await this.spool.close();
      await this.#health?.close();
      this.#logger.info({ drained, left: this.spool.size }, 'agent stopped');
      return { drained };
    })();
    return this.#stopping;
  }
}

function offlineReading(
  device: string,
  known: { kind: DeviceKind; model?: string },
  ts: number,
): AgentReading {
  return {
    device,
    kind: known.kind,
    ts,
    status: 'offline',
    ...(known.model !== undefined && { model: known.model }),
  };
}
