import { HashwattError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Storage } from '../storage/database.ts';
import {
  isDatabaseUnavailable,
  isDataError,
  isMissingPartition,
  isTransientConflict,
  unavailableError,
} from '../storage/errors.ts';
import { concatColumns, type ReadingColumns } from '../storage/reading-columns.ts';
import { writeColumns } from '../storage/readings.ts';
import { FairQueue } from './fair-queue.ts';

/** What the writer reports about itself; the metrics module implements it. */
export interface WriterObserver {
  batchCommitted(readings: number, requests: number, seconds: number): void;
  batchFailed(reason: 'unavailable' | 'error'): void;
}

export const noopWriterObserver: WriterObserver = {
  batchCommitted: () => {},
  batchFailed: () => {},
};

export interface WriterOptions {
  storage: Storage;
  logger: Logger;
  /** A transaction closes once it holds this many readings... */
  maxBatchReadings: number;
  /** ...or this long after the oldest waiting request arrived. */
  flushDelayMs: number;
  /**
   * Admitted and not yet committed work is held to what the writer can commit in about this long
   * at its measured rate; past it, new work is refused (429) with a hint of when room frees up.
   */
  queueDelayTargetMs: number;
  /** Hard bounds on what is admitted and not yet committed, whatever the measured rate. */
  maxQueuedReadings: number;
  maxQueuedBytes: number;
  /** Called when a batch hits a day without a partition; the batch is retried once after it. */
  ensurePartitions: () => Promise<void>;
  observer?: WriterObserver;
}

/** Room held in the queue for one request, from admission until its readings commit or fail. */
export interface Reservation {
  readonly readings: number;
  bytes: number;
  released: boolean;
}

interface Job {
  readings: ReadingColumns;
  reservation: Reservation;
  resolve: (duplicateSamples: Uint32Array) => void;
  reject: (error: unknown) => void;
}

/** Retry hints stay in this range: no sooner than a commit can free room, no later than agents tolerate. */
const MIN_RETRY_AFTER_MS = 100;
const MAX_RETRY_AFTER_MS = 5_000;
/** Weight of the newest batch in the smoothed commit rate. */
const RATE_SMOOTHING = 0.2;

/**
 * How many readings may wait: what the writer commits in `targetMs` at its measured rate, never
 * under `floor` (a cold or briefly slow writer must still admit full batches) nor over `max`.
 */
export function queueBound(readingsPerS: number, targetMs: number, floor: number, max: number): number {
  return Math.min(max, Math.max(floor, Math.floor((readingsPerS * targetMs) / 1000)));
}

/**
 * When to come back: once what is queued now has committed, at the measured rate. Telling every
 * refused sender only when the first bit of room frees up would bring them all back at once.
 */
export function retryAfterMs(queuedReadings: number, readingsPerS: number): number {
  if (readingsPerS <= 0) return 1_000;
  const ms = Math.ceil((queuedReadings / readingsPerS) * 1000);
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(MIN_RETRY_AFTER_MS, ms));
}

/** A request whose site was deleted (purged) before its readings committed: none of them were stored. */
function siteGone(): HashwattError {
  return new HashwattError('not_found', 'the site no longer exists; its readings were not stored');
}

/**
 * Group commit: requests from every transport queue here and are written many to a transaction,
 * so the cost of a commit (the fsync) is shared. A request's promise settles only after the
 * transaction holding its readings has committed (or failed), which is what makes an ack durable.
 */
export class GroupCommitWriter {
  readonly #o: Required<WriterOptions>;
  /** Jobs by site, served in turn: a flooding site cannot queue a quiet one behind all its batches. */
  readonly #queue = new FairQueue<number, Job>();
  #queuedReadings = 0;
  #reservedReadings = 0;
  #reservedBytes = 0;
  #inFlight = 0;
  #timer: NodeJS.Timeout | undefined;
  #idleWaiters: (() => void)[] = [];
  /** Smoothed readings/s the writer commits with all its connections busy; 0 until the first commit. */
  #commitRate = 0;

  constructor(options: WriterOptions) {
    this.#o = { observer: noopWriterObserver, ...options };
  }

  /** Readings and bytes admitted and not yet settled, and transactions under way. */
  get depth() {
    return { readings: this.#reservedReadings, bytes: this.#reservedBytes, transactions: this.#inFlight };
  }

  /** Bytes that may be admitted and not yet committed (a hard bound; past it requests get 429). */
  get maxQueuedBytes(): number {
    return this.#o.maxQueuedBytes;
  }

  /** Readings that may be admitted and not yet committed, at the current commit rate. */
  get queueLimit(): number {
    const { queueDelayTargetMs, maxBatchReadings, maxQueuedReadings } = this.#o;
    const floor = maxBatchReadings * 2 * this.#o.storage.writeConcurrency;
    return queueBound(this.#commitRate, queueDelayTargetMs, floor, maxQueuedReadings);
  }

  /** Refuses (429) a request of this size when the queue has no room for it. */
  assertRoom(readings: number, bytes: number): void {
    // An empty queue always admits one request, so a single oversized one cannot wedge forever.
    if (this.#reservedReadings === 0) return;
    const excess = this.#reservedReadings + readings - this.queueLimit;
    if (excess > 0 || this.#reservedBytes + bytes > this.#o.maxQueuedBytes) {
      throw new HashwattError('overloaded', 'the write queue is full; retry later', {
        retryAfterMs: retryAfterMs(this.#reservedReadings, this.#commitRate),
      });
    }
  }

  /** Holds room for a request, or refuses it (429) when the queue is full. */
  reserve(readings: number, bytes: number): Reservation {
    this.assertRoom(readings, bytes);
    this.#reservedReadings += readings;
    this.#reservedBytes += bytes;
    return { readings, bytes, released: false };
  }

  /**
   * Sets the bytes a reservation holds to what its request holds now: a request is charged an
   * estimate from its reading count when admitted, and its exact columns once they are built. Never
   * refuses: the work is done by then, and the estimate it replaces was checked.
   */
  resize(reservation: Reservation, bytes: number): void {
    if (reservation.released) return;
    this.#reservedBytes += bytes - reservation.bytes;
    reservation.bytes = bytes;
  }

  /** Gives back a reservation's room (idempotent). */
  release(reservation: Reservation): void {
    if (reservation.released) return;
    reservation.released = true;
    this.#reservedReadings -= reservation.readings;
    this.#reservedBytes -= reservation.bytes;
    if (this.#reservedReadings === 0 && this.#inFlight === 0 && this.#queue.size === 0) this.#notifyIdle();
  }

  /**
   * Queues readings for the next transaction; resolves after commit with, per reading, how many of
   * its samples were already stored (see writeReadings).
   */
  write(reservation: Reservation, readings: ReadingColumns): Promise<Uint32Array> {
    if (readings.length === 0) {
      this.release(reservation);
      return Promise.resolve(new Uint32Array(0));
    }
    return new Promise<Uint32Array>((resolve, reject) => {
      // A job is one request, so one site (the pipeline stores readings under the authenticated site).
      this.#queue.push(readings.siteId[0]!, { readings, reservation, resolve, reject });
      this.#queuedReadings += readings.length;
      if (this.#queuedReadings >= this.#o.maxBatchReadings) this.#pump();
      else this.#timer ??= setTimeout(() => this.#pump(), this.#o.flushDelayMs);
    });
  }

  /** Resolves once everything queued or in flight has settled. */
  idle(): Promise<void> {
    if (this.#queue.size === 0 && this.#inFlight === 0 && this.#reservedReadings === 0)
      return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #notifyIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  #pump(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    while (this.#inFlight < this.#o.storage.writeConcurrency && this.#queue.size > 0) {
      const batch: Job[] = [];
      let readings = 0;
      while (
        this.#queue.size > 0 &&
        (batch.length === 0 || readings + this.#queue.peek()!.readings.length <= this.#o.maxBatchReadings)
      ) {
        const job = this.#queue.shift()!;
        batch.push(job);
        readings += job.readings.length;
      }
      this.#queuedReadings -= readings;
      this.#inFlight++;
      void this.#commit(batch).finally(() => {
        this.#inFlight--;
        if (this.#queue.size > 0) this.#pump();
        else if (this.#inFlight === 0 && this.#reservedReadings === 0) this.#notifyIdle();
      });
    }
  }

  /** `measured`: whether the commit's rate feeds admission (not for one-request retries after a data error). */
  async #commit(batch: Job[], measured = true): Promise<void> {
    const readings = concatColumns(batch.map((j) => j.readings));
    const started = performance.now();
    try {
      const { duplicateSamples, goneSites } = await this.#writeWithPartitionRetry(readings);
      const seconds = (performance.now() - started) / 1000;
      this.#o.observer.batchCommitted(readings.length, batch.length, seconds);
      if (measured) this.#measureRate(readings.length, seconds);
      let offset = 0;
      for (const job of batch) {
        const end = offset + job.readings.length;
        this.release(job.reservation);
        // A job is one request, so one site: it is stored whole or, its site gone, refused whole.
        if (goneSites.size > 0 && goneSites.has(job.readings.siteId[0]!)) job.reject(siteGone());
        else job.resolve(duplicateSamples.subarray(offset, end));
        offset = end;
      }
    } catch (error) {
      if (batch.length > 1 && isDataError(error)) {
        // One request's data broke the statement; commit the others without it.
        await Promise.all(batch.map((job) => this.#commit([job], false)));
        return;
      }
      const unavailable = isDatabaseUnavailable(error);
      this.#o.observer.batchFailed(unavailable ? 'unavailable' : 'error');
      const failure = unavailable ? unavailableError(error) : error;
      if (!unavailable) this.#o.logger.error({ err: error, readings: readings.length }, 'batch write failed');
      for (const job of batch) {
        this.release(job.reservation);
        job.reject(failure);
      }
    }
  }

  /**
   * Per-batch rate times the connections: when admission matters, the queue is deep and every
   * connection is busy, so this estimates what the writer drains. Small batches under light load
   * understate it, which only matters above the floor of `queueLimit`.
   */
  #measureRate(readings: number, seconds: number): void {
    if (seconds <= 0) return;
    const rate = (readings / seconds) * this.#o.storage.writeConcurrency;
    this.#commitRate =
      this.#commitRate === 0 ? rate : this.#commitRate + RATE_SMOOTHING * (rate - this.#commitRate);
  }

  /** One retry for what a second attempt cures: a day without a partition yet, or a deadlock victim. */
  async #writeWithPartitionRetry(readings: ReadingColumns) {
    try {
      return await writeColumns(this.#o.storage.db, readings);
    } catch (error) {
      if (isMissingPartition(error)) await this.#o.ensurePartitions();
      else if (!isTransientConflict(error)) throw error;
      return writeColumns(this.#o.storage.db, readings);
    }
  }
}
