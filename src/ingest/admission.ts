import { HashwattError } from '../errors.ts';

/** Room in the write queue: readings, and the bytes they weigh in memory (decoded). */
export interface QueueLoad {
  readings: number;
  bytes: number;
}

export interface SiteAdmissionOptions {
  /**
   * Share of the write queue no site may take while other sites might arrive: a newcomer always
   * finds this much room, so one flooding site cannot push every other site into 429s.
   */
  headroomRatio?: number;
  /** Readings any site may hold whatever its share, so a well-behaved agent's batches are never split. */
  floorReadings?: number;
  /**
   * Bytes any site may hold whatever its share: a few ordinary batches (a 5,000-reading batch
   * weighs about 1 MiB), so only byte-heavy senders ever meet the byte share.
   */
  floorBytes?: number;
  /** How long the writer takes to drain a full queue (its queue delay target), for the retry hint. */
  drainMs?: number;
}

/** Retry hints of a site over its share stay in this range, like the writer's. */
const MIN_RETRY_AFTER_MS = 100;
const MAX_RETRY_AFTER_MS = 5_000;

/**
 * What one site may hold of a bounded resource: an equal part of the bound (less the headroom)
 * among the sites holding some of it now, never under `floor`.
 */
export function siteShare(
  queueLimit: number,
  activeSites: number,
  floor: number,
  headroomRatio: number,
): number {
  return Math.max(floor, Math.floor((queueLimit * (1 - headroomRatio)) / Math.max(1, activeSites)));
}

/** One site's ask of one bounded resource (readings or bytes of the write queue, decode budget bytes). */
export interface ShareAsk {
  /** What the site holds already. */
  held: number;
  /** What it asks for more. */
  request: number;
  /** The resource's bound. */
  limit: number;
  /** What all sites hold now. */
  used: number;
  /** Sites holding some now. */
  activeSites: number;
  floor: number;
  headroomRatio: number;
}

/**
 * The fairness rule, one for every resource: a site holding nothing is always let in; a site
 * within its share is let in; a site past its share only while the resource has room beyond the
 * headroom kept for the others. So a lone sender may use what nobody else needs, yet under
 * overload what is refused is the excess of whoever holds more than its share.
 */
export function withinShare(ask: ShareAsk): boolean {
  if (ask.held === 0) return true;
  if (ask.held + ask.request <= siteShare(ask.limit, ask.activeSites, ask.floor, ask.headroomRatio)) {
    return true;
  }
  return ask.used + ask.request <= Math.floor(ask.limit * (1 - ask.headroomRatio));
}

/**
 * When a site over its share should come back: once what it already holds has drained, at the
 * pace that drains the whole queue bound in `drainMs`.
 */
export function shareRetryAfterMs(held: number, queueLimit: number, drainMs: number): number {
  const ms = Math.ceil((held / Math.max(1, queueLimit)) * drainMs);
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(MIN_RETRY_AFTER_MS, ms));
}

/**
 * Per-site fairness in front of the writer's one queue, in both of the writer's bounds: readings,
 * and bytes (its queued-bytes cap refuses with 429 too, so a site sending few readings in heavy
 * batches could otherwise take it all). The writer bounds the totals; this keeps a headroom of
 * each for sites within their share (withinShare).
 */
export class SiteAdmission {
  readonly #headroomRatio: number;
  readonly #floor: QueueLoad;
  readonly #drainMs: number;
  /** What each site holds from admission until its batch settles; sites holding nothing are absent. */
  readonly #held = new Map<number, QueueLoad>();

  constructor(options: SiteAdmissionOptions = {}) {
    this.#headroomRatio = options.headroomRatio ?? 0.25;
    this.#floor = { readings: options.floorReadings ?? 2_000, bytes: options.floorBytes ?? 4 * 1024 * 1024 };
    this.#drainMs = options.drainMs ?? 500;
  }

  /** What a site holds now. */
  held(siteId: number): QueueLoad {
    return this.#held.get(siteId) ?? { readings: 0, bytes: 0 };
  }

  /** Sites holding room now. */
  get activeSites(): number {
    return this.#held.size;
  }

  /**
   * Refuses (429) `request` more for a site past its share of `limit`, in readings or in bytes,
   * when the queue (`queued`, admitted across all sites) has no room beyond the headroom.
   */
  assertShare(siteId: number, request: QueueLoad, limit: QueueLoad, queued: QueueLoad): void {
    const held = this.held(siteId);
    for (const dimension of ['readings', 'bytes'] as const) {
      const fits = withinShare({
        held: held[dimension],
        request: request[dimension],
        limit: limit[dimension],
        used: queued[dimension],
        activeSites: this.#held.size,
        floor: this.#floor[dimension],
        headroomRatio: this.#headroomRatio,
      });
      if (!fits) {
        throw new HashwattError('overloaded', "the site's share of the write queue is full; retry later", {
          retryAfterMs: shareRetryAfterMs(held[dimension], limit[dimension], this.#drainMs),
        });
      }
    }
  }

  /** Counts `load` against a site until the returned release is called (idempotent). */
  hold(siteId: number, load: QueueLoad): () => void {
    const before = this.held(siteId);
    this.#held.set(siteId, { readings: before.readings + load.readings, bytes: before.bytes + load.bytes });
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = this.held(siteId);
      const left = { readings: now.readings - load.readings, bytes: now.bytes - load.bytes };
      if (left.readings > 0 || left.bytes > 0) this.#held.set(siteId, left);
      else this.#held.delete(siteId);
    };
  }
}
