import type { Storage } from '../storage/database.ts';
import {
  aggregateDeviceGroups,
  listFleetSites,
  readFleetSnapshot,
  writeFleetSnapshot,
} from '../storage/fleet.ts';
import { foldDeviceGroups, type SiteAggregate } from './aggregate.ts';
import { type SiteState, summariseSite } from './site-state.ts';
import type { Thresholds } from './thresholds.ts';

export { classifyDevice, DEVICE_STATES, type DeviceState } from './device-state.ts';
export type { SiteState } from './site-state.ts';
export { DEFAULT_THRESHOLDS, type Thresholds } from './thresholds.ts';

export interface FleetSnapshot {
  takenAtMs: number;
  /** How long the aggregate took: its cost grows with the fleet. */
  durationMs: number;
  sites: SiteState[];
}

export interface FleetReaderOptions {
  /** On-demand reads reuse a snapshot younger than this. */
  maxAgeMs?: number;
  /**
   * Several replicas on one database: the one holding the job lease computes the aggregate and
   * stores it; the others read it, so every replica reports the same numbers for the same instant.
   * A stored aggregate older than `staleAfterMs` (its writer died, the lease moves) is ignored and
   * the aggregate computed here.
   */
  shared?: { isWriter: () => Promise<boolean>; staleAfterMs?: number };
  now?: () => number;
  onRefreshError?: (error: unknown) => void;
}

/**
 * What every site is doing now, from one aggregate over the latest-state table. Scrapes (from any
 * number of Prometheus servers) and the alert evaluator read a shared snapshot; once started, a
 * background refresh keeps it current so a scrape never waits for the aggregate, and the refresh
 * backs off to ten times the aggregate's own duration, so it never costs more than ~10 % of a core.
 */
export class FleetReader {
  readonly #storage: Storage;
  readonly #defaults: Thresholds;
  readonly #o: Required<Omit<FleetReaderOptions, 'onRefreshError' | 'shared'>> &
    Pick<FleetReaderOptions, 'onRefreshError' | 'shared'>;
  #latest: FleetSnapshot | undefined;
  #inFlight: Promise<FleetSnapshot> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #intervalMs = 0;

  constructor(storage: Storage, defaults: Thresholds, options: FleetReaderOptions = {}) {
    this.#storage = storage;
    this.#defaults = defaults;
    this.#o = { maxAgeMs: 1_000, now: Date.now, ...options };
  }

  get defaults(): Thresholds {
    return this.#defaults;
  }

  /** The last snapshot taken successfully, however old (undefined before the first). */
  get latest(): FleetSnapshot | undefined {
    return this.#latest;
  }

  /** A current snapshot: the background one while refreshing runs, else at most `maxAgeMs` old. */
  read(): Promise<FleetSnapshot> {
    const latest = this.#latest;
    // While the background refresh runs, allow for its interval (plus one slow run) before distrusting it.
    const maxAge = this.#timer ? Math.max(this.#o.maxAgeMs, 3 * this.#intervalMs) : this.#o.maxAgeMs;
    if (latest && this.#o.now() - latest.takenAtMs < maxAge) return Promise.resolve(latest);
    return this.refresh();
  }

  /** Takes a new snapshot now (joining one already under way). */
  refresh(): Promise<FleetSnapshot> {
    this.#inFlight ??= this.#take().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  /** Keeps the snapshot fresh in the background, at least every `minIntervalMs`. */
  start(minIntervalMs: number): void {
    if (this.#timer) return;
    this.#intervalMs = minIntervalMs;
    const loop = async () => {
      try {
        const { durationMs } = await this.refresh();
        this.#intervalMs = Math.max(minIntervalMs, 10 * durationMs);
      } catch (error) {
        this.#o.onRefreshError?.(error);
      }
      if (this.#timer) {
        this.#timer = setTimeout(loop, this.#intervalMs);
        this.#timer.unref();
      }
    };
    this.#timer = setTimeout(loop, 0);
    this.#timer.unref();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #take(): Promise<FleetSnapshot> {
    const shared = this.#o.shared;
    if (shared && !(await shared.isWriter().catch(() => false))) {
      const stored = await readFleetSnapshot<SiteAggregate>(this.#storage.db);
      const staleAfterMs = shared.staleAfterMs ?? 10_000;
      if (stored && this.#o.now() - stored.takenAtMs < staleAfterMs) return this.#keep(stored);
    }
    const computed = await this.#compute();
    if (shared) await writeFleetSnapshot(this.#storage.db, computed).catch(() => {});
    return this.#keep(computed);
  }

  /** The site states of an aggregate, judged at the instant it was taken (so every replica agrees). */
  #keep(a: { takenAtMs: number; durationMs: number; sites: SiteAggregate[] }): FleetSnapshot {
    const snapshot = {
      takenAtMs: a.takenAtMs,
      durationMs: a.durationMs,
      sites: a.sites.map((s) => summariseSite(s, this.#defaults, a.takenAtMs)),
    };
    this.#latest = snapshot;
    return snapshot;
  }

  async #compute(): Promise<{ takenAtMs: number; durationMs: number; sites: SiteAggregate[] }> {
    const started = performance.now();
    const nowMs = this.#o.now();
    const [sites, groups] = await Promise.all([
      listFleetSites(this.#storage.db),
      aggregateDeviceGroups(this.#storage.db, nowMs, {
        deviceStaleAfterS: this.#defaults.device_stale_after_s,
        gpuIdleUtilMax: this.#defaults.gpu_idle_util_max,
      }),
    ]);
    return {
      takenAtMs: nowMs,
      durationMs: performance.now() - started,
      sites: foldDeviceGroups(sites, groups),
    };
  }
}
