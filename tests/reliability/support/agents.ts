import type { Batch } from '../../../simulators/agent/buffer.ts';
import { createTransport } from '../../../simulators/agent/site-agent.ts';
import type { SendOutcome, Transport } from '../../../simulators/agent/transport.ts';
import {
  type AgentOverrides,
  DEFAULT_AGENT_OPTIONS,
  type FleetHandle,
  loadScenario,
  provisionSites,
  type Scenario,
  type ScenarioOverrides,
  startFleet,
} from '../../../simulators/index.ts';
import { ADMIN_TOKEN } from './process.ts';

/** One acknowledged batch: when it was acknowledged and how long after its first transmission. */
export interface AckSample {
  atMs: number;
  latencyMs: number;
  readings: number;
}

/**
 * What the agents' transports saw, recorded by a thin wrapper around the simulator's real HTTP
 * and WebSocket transports: every outcome, the retry hints, and the ack latency of each batch
 * (first transmission → acknowledgement, retries and backoff included: what an operator waits).
 */
export class DeliveryLog {
  readonly outcomes = { ack: 0, retry: 0, rejected: 0 };
  /**
   * Retry outcomes by site and reason, "+hint" when the server said when to retry:
   * "demo-mining-tx: HTTP 503 database_unavailable +hint", "demo-ai-oregon: service: database_unavailable +hint".
   */
  readonly retryReasons = new Map<string, number>();
  /** Retry outcomes that carried the server's hint (Retry-After or retry_after_ms). */
  retryHints = 0;
  /** Readings refused, by site and code: per-reading rejections inside acks, and batches refused whole. */
  readonly rejections = new Map<string, number>();
  readonly acks: AckSample[] = [];
  readonly #firstSent = new Map<string, number>();

  /** Wraps a real transport so its sends are recorded here. */
  wrap(site: string, inner: Transport): Transport {
    return {
      send: async (batch: Batch): Promise<SendOutcome> => {
        const key = `${site}#${batch.id}`;
        if (!this.#firstSent.has(key)) this.#firstSent.set(key, performance.now());
        const outcome = await inner.send(batch);
        this.#record(site, key, batch, outcome);
        return outcome;
      },
      disconnect: (reason) => inner.disconnect(reason),
      close: () => inner.close(),
    };
  }

  #record(site: string, key: string, batch: Batch, outcome: SendOutcome): void {
    this.outcomes[outcome.kind]++;
    if (outcome.kind === 'retry') {
      const hint = outcome.retryAfterMs !== undefined;
      const reason = `${site}: ${outcome.reason}${hint ? ' +hint' : ''}`;
      this.retryReasons.set(reason, (this.retryReasons.get(reason) ?? 0) + 1);
      if (hint) this.retryHints++;
      return;
    }
    const refused =
      outcome.kind === 'rejected'
        ? [{ code: `batch ${outcome.status ?? 'frame'} ${outcome.code}`, n: batch.readings.length }]
        : outcome.rejected.map((r) => ({ code: `${r.field ?? ''} ${r.code}`, n: 1 }));
    for (const { code, n } of refused) {
      const name = `${site}: ${code}`;
      this.rejections.set(name, (this.rejections.get(name) ?? 0) + n);
    }
    const first = this.#firstSent.get(key);
    this.#firstSent.delete(key);
    if (outcome.kind === 'ack' && first !== undefined) {
      const now = performance.now();
      this.acks.push({ atMs: now, latencyMs: now - first, readings: batch.readings.length });
    }
  }

  /** Retry outcomes whose reason contains `text`. */
  retriesMatching(text: string): number {
    let n = 0;
    for (const [reason, count] of this.retryReasons) if (reason.includes(text)) n += count;
    return n;
  }

  reasons(): Record<string, number> {
    return Object.fromEntries([...this.retryReasons].sort((a, b) => b[1] - a[1]));
  }
}

/** The q-quantile (0..1) of some values, nearest rank; null for none. */
export function quantile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export interface AgentRun {
  scenario: Scenario;
  fleet: FleetHandle;
  log: DeliveryLog;
  /** Site names of the run (the database rows to compare). */
  sites: string[];
}

export interface StartAgentsOptions {
  /** Where the agents send (the service, or a proxy in front of it). */
  url: string;
  /** Where the sites are created (the service itself); default `url`. */
  adminUrl?: string;
  scenario?: string;
  overrides?: ScenarioOverrides;
  transport?: 'http' | 'ws';
  agent?: AgentOverrides;
  seed?: number;
}

/**
 * The demo's three sites (an HTTP mining hall, two WebSocket sites with GPUs) shrunk and sped up:
 * one reading per device per second, ~300 readings/s in all, acknowledgements tracked per reading.
 */
export const RELIABILITY_DEMO: ScenarioOverrides = { scale: 0.4, interval_s: 1, random_failures: false };

/**
 * Two of the `load` scenario's sites (one HTTP, one WebSocket) with 500 ASICs each, open loop: new
 * readings every 50 ms whatever happens to the service, so there is always work in flight when a
 * fault strikes.
 */
export const RELIABILITY_LOAD: ScenarioOverrides = {
  scale: 0.01,
  rate_per_s: 3_000,
  sites: ['load-1', 'load-2'],
};

/** Provisions a scenario's sites and starts its agents with acknowledgement tracking. */
export async function startAgents(options: StartAgentsOptions): Promise<AgentRun> {
  const scenario = loadScenario(options.scenario ?? 'demo', options.overrides ?? RELIABILITY_DEMO);
  const tokens = await provisionSites({
    url: options.adminUrl ?? options.url,
    adminToken: ADMIN_TOKEN,
    scenario,
  });
  const log = new DeliveryLog();
  // As the simulator does for load scenarios: compression must not be the bottleneck.
  const transportOptions = { ...DEFAULT_AGENT_OPTIONS, gzipLevel: scenario.rate_per_s === undefined ? 6 : 1 };
  const fleet = startFleet({
    scenario,
    url: options.url,
    tokens,
    seed: options.seed ?? 7,
    trackAcks: true,
    ...(options.agent && { agent: options.agent }),
    createTransport: (site, token) =>
      log.wrap(
        site.name,
        createTransport(options.transport ?? site.transport, options.url, token, transportOptions),
      ),
  });
  return { scenario, fleet, log, sites: scenario.sites.map((s) => s.name) };
}

/** The standard mixed load of the scenarios: the demo's physics sites plus the open-loop load sites. */
export async function startMixedLoad(
  options: Omit<StartAgentsOptions, 'scenario' | 'overrides'> & { loadRatePerS?: number },
): Promise<AgentRun[]> {
  const { loadRatePerS, ...common } = options;
  return [
    await startAgents({ ...common, scenario: 'demo', overrides: RELIABILITY_DEMO }),
    await startAgents({
      ...common,
      scenario: 'load',
      overrides: { ...RELIABILITY_LOAD, ...(loadRatePerS !== undefined && { rate_per_s: loadRatePerS }) },
    }),
  ];
}

/** Sums over runs: acknowledged readings so far, what agents hold, retry outcomes. */
export function totals(runs: readonly AgentRun[]): {
  acknowledged: number;
  buffered: number;
  generated: number;
} {
  let acknowledged = 0;
  let buffered = 0;
  let generated = 0;
  for (const r of runs) {
    const t = r.fleet.counters().total;
    acknowledged += t.acknowledged;
    buffered += t.buffered;
    generated += t.generated;
  }
  return { acknowledged, buffered, generated };
}

/** Rejection codes over runs, most frequent first. */
export function rejectionCodes(runs: readonly AgentRun[]): Record<string, number> {
  const all = new Map<string, number>();
  for (const r of runs) for (const [k, v] of r.log.rejections) all.set(k, (all.get(k) ?? 0) + v);
  return Object.fromEntries([...all].sort((a, b) => b[1] - a[1]));
}

/** Retry reasons over runs, most frequent first. */
export function retryReasons(runs: readonly AgentRun[]): Record<string, number> {
  const all = new Map<string, number>();
  for (const r of runs) for (const [k, v] of r.log.retryReasons) all.set(k, (all.get(k) ?? 0) + v);
  return Object.fromEntries([...all].sort((a, b) => b[1] - a[1]));
}
