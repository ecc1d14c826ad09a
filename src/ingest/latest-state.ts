import type { Logger } from '../log.ts';
import type { Storage } from '../storage/database.ts';
import { mergeLatest, type ReadingRecord, updateDeviceLatest } from '../storage/readings.ts';

const CLOSE_ATTEMPTS = 4;
const CLOSE_RETRY_MS = 500;

/** What the latest-state writer reports about itself; the metrics module implements it. */
export interface LatestStateObserver {
  flushed(devices: number, seconds: number): void;
  flushFailed(): void;
}

export interface LatestStateOptions {
  storage: Storage;
  logger: Logger;
  /** Pending latest state is written at least this often. */
  flushMs: number;
  /**
   * Flushes are spaced at least this many times their own duration, so keeping the latest state
   * takes a bounded share of the database: under heavy load it gets coarser instead of slowing ingest.
   */
  spacingFactor?: number;
  /** Rows per statement: bounds one statement's memory and lock time. */
  maxRowsPerStatement?: number;
  observer?: LatestStateObserver;
}

/**
 * Folds committed readings into the newest per device by the latest-state rule (mergeLatest: a
 * newer reading wins and carries what it lacks for a while; a repeat of the same instant only fills
 * in, as the readings table does). Runs per reading, so it keeps references and copies only when
 * two readings are merged; pure otherwise, so the rule is tested without I/O.
 */
export function foldLatest(pending: Map<number, ReadingRecord>, records: Iterable<ReadingRecord>): void {
  for (const r of records) {
    const seen = pending.get(r.device_id);
    const next = mergeLatest(seen, r);
    if (next !== seen) pending.set(r.device_id, next);
  }
}

/**
 * Keeps `device_latest` (what every device is doing now) up to date from committed readings, off
 * the acknowledgement path. Readings are the record and are committed before they are acknowledged;
 * this table is derived from them. Writing it in the readings' transaction cost ~40 % of the ingest
 * rate (docs/performance.md), so it is written here, coalesced per device, and trails the committed
 * readings by about `flushMs` (plus one flush; more under heavy load, see `spacingFactor`). A crash
 * loses at most that much latest state, which each device's next reading restores; a graceful stop
 * flushes everything the database accepts.
 */
export class LatestStateWriter {
  readonly #o: Required<Omit<LatestStateOptions, 'observer'>> & Pick<LatestStateOptions, 'observer'>;
  #pending = new Map<number, ReadingRecord>();
  #oldestPendingMs: number | undefined;
  #flushing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: LatestStateOptions) {
    this.#o = { spacingFactor: 3, maxRowsPerStatement: 20_000, ...options };
  }

  /** Devices whose latest state is not yet written. */
  get pendingDevices(): number {
    return this.#pending.size;
  }

  /** How far the written latest state trails what was committed, in seconds (0 when caught up). */
  lagSeconds(nowMs = Date.now()): number {
    return this.#oldestPendingMs === undefined ? 0 : Math.max(0, (nowMs - this.#oldestPendingMs) / 1000);
  }

  /** Records committed readings; they reach `device_latest` with the next flush. */
  offer(records: readonly ReadingRecord[]): void {
    if (records.length === 0) return;
    foldLatest(this.#pending, records);
    // Batches can commit out of order: the lag is measured from the oldest receipt still pending.
    this.#oldestPendingMs = Math.min(
      this.#oldestPendingMs ?? Number.POSITIVE_INFINITY,
      records[0]!.received_ms,
    );
    if (!this.#timer && !this.#closed) this.#schedule(this.#o.flushMs);
  }

  /** Writes everything offered so far; resolves once it is in `device_latest` (or the write failed). */
  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing;
    if (this.#pending.size === 0) return;
    this.#flushing = this.#write().finally(() => {
      this.#flushing = undefined;
    });
    await this.#flushing;
  }

  /** Drops what is pending for a deleted site: its devices are gone, so are their rows. */
  forgetSite(siteId: number): void {
    for (const [deviceId, r] of this.#pending) if (r.site_id === siteId) this.#pending.delete(deviceId);
  }

  /**
   * Stops the background flushes and writes what is pending, trying a few times over about two
   * seconds when the database fails: what is still pending after that is reported and lost (the
   * readings behind it are committed; each device's next reading restores its latest state).
   */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (let attempt = 0; attempt < CLOSE_ATTEMPTS; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, CLOSE_RETRY_MS));
      await this.flush();
      if (this.#pending.size === 0) return;
    }
    this.#o.logger.error(
      { devices: this.#pending.size },
      'latest state not written at stop; the devices’ next readings will restore it',
    );
  }

  /** The timer stays set while its flush runs, so offers meanwhile do not schedule another. */
  #schedule(delayMs: number): void {
    this.#timer = setTimeout(async () => {
      const started = performance.now();
      await this.flush();
      this.#timer = undefined;
      if (this.#pending.size > 0 && !this.#closed)
        this.#schedule(Math.max(this.#o.flushMs, this.#o.spacingFactor * (performance.now() - started)));
    }, delayMs);
    this.#timer.unref();
  }

  async #write(): Promise<void> {
    const batch = this.#pending;
    const oldest = this.#oldestPendingMs;
    this.#pending = new Map();
    this.#oldestPendingMs = undefined;
    const rows = [...batch.values()];
    const started = performance.now();
    try {
      for (let i = 0; i < rows.length; i += this.#o.maxRowsPerStatement) {
        await updateDeviceLatest(this.#o.storage.db, rows.slice(i, i + this.#o.maxRowsPerStatement));
      }
      this.#o.observer?.flushed(rows.length, (performance.now() - started) / 1000);
    } catch (error) {
      // Keep what was not written (rewriting rows that were is harmless), folding in what arrived
      // meanwhile, and try again with the next flush.
      this.#o.observer?.flushFailed();
      this.#o.logger.warn({ err: String(error), devices: rows.length }, 'latest-state flush failed');
      const arrived = this.#pending;
      this.#pending = batch;
      foldLatest(this.#pending, arrived.values());
      this.#oldestPendingMs = oldest;
    }
  }
}
