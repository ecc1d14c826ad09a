import type { Storage } from '../storage/database.ts';
import { aggregateSites } from '../storage/fleet.ts';
import { type SiteState, summariseSite } from './site-state.ts';
import type { Thresholds } from './thresholds.ts';

export { classifyDevice, DEVICE_STATES, type DeviceState } from './device-state.ts';
export type { SiteState } from './site-state.ts';
export { DEFAULT_THRESHOLDS, type Thresholds } from './thresholds.ts';

export interface FleetSnapshot {
  takenAtMs: number;
  sites: SiteState[];
}

/**
 * Reads what every site is doing now. Scrapes from several Prometheus servers and the alert
 * evaluator arrive close together; sharing one snapshot for `maxAgeMs` keeps the database to one
 * fleet aggregate per interval however many ask.
 */
export class FleetReader {
  readonly #storage: Storage;
  readonly #defaults: Thresholds;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  #last: Promise<FleetSnapshot> | undefined;
  #lastAt = 0;

  constructor(
    storage: Storage,
    defaults: Thresholds,
    options: { maxAgeMs?: number; now?: () => number } = {},
  ) {
    this.#storage = storage;
    this.#defaults = defaults;
    this.#maxAgeMs = options.maxAgeMs ?? 1_000;
    this.#now = options.now ?? Date.now;
  }

  get defaults(): Thresholds {
    return this.#defaults;
  }

  /** The current snapshot, at most `maxAgeMs` old. */
  read(): Promise<FleetSnapshot> {
    const now = this.#now();
    if (this.#last && now - this.#lastAt < this.#maxAgeMs) return this.#last;
    this.#lastAt = now;
    const next = this.#take(now);
    this.#last = next;
    // A failed read is not cached: the next caller tries again.
    next.catch(() => {
      if (this.#last === next) this.#last = undefined;
    });
    return next;
  }

  async #take(nowMs: number): Promise<FleetSnapshot> {
    const aggregates = await aggregateSites(this.#storage.db, nowMs, {
      deviceStaleAfterS: this.#defaults.device_stale_after_s,
      gpuIdleUtilMax: this.#defaults.gpu_idle_util_max,
    });
    return { takenAtMs: nowMs, sites: aggregates.map((a) => summariseSite(a, this.#defaults, nowMs)) };
  }
}
