import type { Logger } from '../log.ts';
import type { Storage } from '../storage/database.ts';
import {
  allocColumns,
  copyCoreRow,
  pickRows,
  type ReadingColumns,
  type ReadingRecord,
  recordOf,
} from '../storage/reading-columns.ts';
import { writeLatestRows } from '../storage/readings.ts';

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
 * The newest state of every device this replica has seen, one slot per device in columns, and
 * which slots changed since they were last taken for writing. Readings are folded in place by the
 * latest-state rule: a newer reading replaces the state whole (a metric the device stopped
 * reporting is gone at once); a reading of the same instant only fills in what is absent (a stored
 * value is never replaced, as in `readings`: Prometheus sends one scrape's metrics in several
 * requests) and moves the receipt forward; an older one changes nothing. The receipt never moves
 * back: batches commit out of order.
 *
 * Columns rather than a record per device: this runs per committed reading at the full ingest rate
 * and holds every device for seconds, so records here were promoted to V8's old generation and
 * churned there (docs/performance.md, "Latest state in columns": ~110 MB of RSS at 200,000
 * devices). Pure: the rule is tested without I/O.
 */
export class LatestTable {
  #slotOf = new Map<number, number>();
  #free: number[] = [];
  #used = 0;
  #rows: ReadingColumns = allocColumns(1024);
  #dirty = new Uint8Array(1024);
  #dirtyList: number[] = [];

  /** Devices whose state changed since it was last taken. */
  get pending(): number {
    return this.#dirtyList.length;
  }

  /** Folds committed readings in; returns how many slots became pending. */
  fold(cols: ReadingColumns): number {
    let added = 0;
    for (let i = 0; i < cols.length; i++) {
      let slot = this.#slotOf.get(cols.deviceId[i]!);
      if (slot === undefined) {
        slot = this.#allocate(cols.deviceId[i]!);
        copyCoreRow(cols, i, this.#rows, slot);
        added += this.#mark(slot);
        continue;
      }
      const rows = this.#rows;
      const held = rows.tsUs[slot]!;
      const ts = cols.tsUs[i]!;
      if (ts < held) continue;
      const received = cols.receivedMs[i]!;
      if (ts > held) {
        const heldReceived = rows.receivedMs[slot]!;
        copyCoreRow(cols, i, rows, slot);
        if (heldReceived > received) rows.receivedMs[slot] = heldReceived;
        added += this.#mark(slot);
        continue;
      }
      let changed = received > rows.receivedMs[slot]!;
      if (changed) rows.receivedMs[slot] = received;
      for (let m = 0; m < rows.metrics.length; m++) {
        const column = rows.metrics[m]!;
        const v = cols.metrics[m]![i]!;
        if (!Number.isNaN(v) && Number.isNaN(column[slot]!)) {
          column[slot] = v;
          changed = true;
        }
      }
      if (rows.status[slot] === 0 && cols.status[i]! > 0) {
        rows.status[slot] = cols.status[i]!;
        changed = true;
      }
      if (changed) added += this.#mark(slot);
    }
    return added;
  }

  /** The device's state, or undefined when it has none here. */
  get(deviceId: number): ReadingRecord | undefined {
    const slot = this.#slotOf.get(deviceId);
    return slot === undefined ? undefined : recordOf(this.#rows, slot);
  }

  /**
   * The pending devices' slots, sorted by device id (writeLatestRows' order); they are no longer
   * pending: read them with `rowsOf`, and `restore` them if the write fails.
   */
  take(): number[] {
    const slots = this.#dirtyList;
    this.#dirtyList = [];
    for (const slot of slots) this.#dirty[slot] = 0;
    const deviceId = this.#rows.deviceId;
    slots.sort((a, b) => deviceId[a]! - deviceId[b]!);
    return slots;
  }

  /** The current state in `slots` (of devices not forgotten since), as new columns. */
  rowsOf(slots: readonly number[]): ReadingColumns {
    const deviceId = this.#rows.deviceId;
    const live = slots.every((s) => deviceId[s] !== 0) ? slots : slots.filter((s) => deviceId[s] !== 0);
    return pickRows(this.#rows, live);
  }

  /** Marks slots pending again (a write that failed): they hold the newest state, so that is what is retried. */
  restore(slots: readonly number[]): void {
    for (const slot of slots) if (this.#rows.deviceId[slot] !== 0) this.#mark(slot);
  }

  /** Forgets devices (deleted, or their site was): their slots are reused. */
  forget(deviceIds: Iterable<number>): void {
    let unmarked = false;
    for (const id of deviceIds) {
      const slot = this.#slotOf.get(id);
      if (slot === undefined) continue;
      this.#slotOf.delete(id);
      this.#rows.deviceId[slot] = 0;
      if (this.#dirty[slot]) {
        this.#dirty[slot] = 0;
        unmarked = true;
      }
      this.#free.push(slot);
    }
    if (unmarked) this.#dirtyList = this.#dirtyList.filter((s) => this.#dirty[s] === 1);
  }

  /** Forgets every device of a site. */
  forgetSite(siteId: number): void {
    const ids: number[] = [];
    for (const [id, slot] of this.#slotOf) if (this.#rows.siteId[slot] === siteId) ids.push(id);
    this.forget(ids);
  }

  #mark(slot: number): number {
    if (this.#dirty[slot]) return 0;
    this.#dirty[slot] = 1;
    this.#dirtyList.push(slot);
    return 1;
  }

  #allocate(deviceId: number): number {
    let slot = this.#free.pop();
    if (slot === undefined) {
      if (this.#used === this.#rows.length) this.#grow();
      slot = this.#used++;
    }
    this.#slotOf.set(deviceId, slot);
    return slot;
  }

  #grow(): void {
    const size = this.#rows.length * 2;
    const old = this.#rows;
    const bigger = allocColumns(size);
    bigger.siteId.set(old.siteId);
    bigger.deviceId.set(old.deviceId);
    bigger.kind.set(old.kind);
    bigger.tsUs.set(old.tsUs);
    bigger.receivedMs.set(old.receivedMs);
    for (let m = 0; m < old.metrics.length; m++) bigger.metrics[m]!.set(old.metrics[m]!);
    bigger.status.set(old.status);
    this.#rows = bigger;
    const dirty = new Uint8Array(size);
    dirty.set(this.#dirty);
    this.#dirty = dirty;
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
  readonly #table = new LatestTable();
  #oldestPendingMs: number | undefined;
  #flushing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: LatestStateOptions) {
    this.#o = { spacingFactor: 3, maxRowsPerStatement: 20_000, ...options };
  }

  /** Devices whose latest state is not yet written. */
  get pendingDevices(): number {
    return this.#table.pending;
  }

  /** How far the written latest state trails what was committed, in seconds (0 when caught up). */
  lagSeconds(nowMs = Date.now()): number {
    return this.#oldestPendingMs === undefined ? 0 : Math.max(0, (nowMs - this.#oldestPendingMs) / 1000);
  }

  /** Records committed readings; they reach `device_latest` with the next flush. */
  offer(readings: ReadingColumns): void {
    if (readings.length === 0) return;
    if (this.#table.fold(readings) === 0 && this.#table.pending === 0) return;
    // Batches can commit out of order: the lag is measured from the oldest receipt still pending.
    this.#oldestPendingMs = Math.min(
      this.#oldestPendingMs ?? Number.POSITIVE_INFINITY,
      readings.receivedMs[0]!,
    );
    if (!this.#timer && !this.#closed) this.#schedule(this.#o.flushMs);
  }

  /** Writes everything offered so far; resolves once it is in `device_latest` (or the write failed). */
  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing;
    if (this.#table.pending === 0) return;
    this.#flushing = this.#write().finally(() => {
      this.#flushing = undefined;
    });
    await this.#flushing;
  }

  /** Drops what is held for a deleted site: its devices are gone, so are their rows. */
  forgetSite(siteId: number): void {
    this.#table.forgetSite(siteId);
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
      if (this.#table.pending === 0) return;
    }
    this.#o.logger.error(
      { devices: this.#table.pending },
      'latest state not written at stop; the devices’ next readings will restore it',
    );
  }

  /** The timer stays set while its flush runs, so offers meanwhile do not schedule another. */
  #schedule(delayMs: number): void {
    this.#timer = setTimeout(async () => {
      const started = performance.now();
      await this.flush();
      this.#timer = undefined;
      if (this.#table.pending > 0 && !this.#closed)
        this.#schedule(Math.max(this.#o.flushMs, this.#o.spacingFactor * (performance.now() - started)));
    }, delayMs);
    this.#timer.unref();
  }

  async #write(): Promise<void> {
    const oldest = this.#oldestPendingMs;
    this.#oldestPendingMs = undefined;
    const slots = this.#table.take();
    const started = performance.now();
    const step = this.#o.maxRowsPerStatement;
    try {
      // Chunk by chunk, so at most one statement's rows are copied out of the table at a time.
      for (let i = 0; i < slots.length; i += step) {
        const rows = this.#table.rowsOf(slots.slice(i, i + step));
        const { dropped } = await writeLatestRows(this.#o.storage.db, rows);
        // Devices deleted meanwhile: their state is gone with them.
        if (dropped.length > 0) this.#table.forget(dropped);
      }
      this.#o.observer?.flushed(slots.length, (performance.now() - started) / 1000);
    } catch (error) {
      // Keep what was not written (rewriting rows that were is harmless) and try again with the
      // next flush; the slots hold the newest state, including what arrived meanwhile.
      this.#o.observer?.flushFailed();
      this.#o.logger.warn({ err: String(error), devices: slots.length }, 'latest-state flush failed');
      this.#table.restore(slots);
      this.#oldestPendingMs = Math.min(
        oldest ?? Number.POSITIVE_INFINITY,
        this.#oldestPendingMs ?? Number.POSITIVE_INFINITY,
      );
    }
  }
}
