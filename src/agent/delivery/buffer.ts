/**
 * The agent's store of readings not yet acknowledged, in generation order, grouped into batches.
 * A reading is kept as its serialised JSON from the moment it is generated, so a retry resends
 * exactly the same bytes (same ts) and the service can count it as a duplicate.
 *
 * `ReadingBuffer` keeps them in memory (the simulators); `SpoolStore` (../spool.ts) keeps them on
 * disk and a window of them in memory (the site agent). Delivery sees only `ReadingStore`.
 */

export interface BufferLimits {
  /** Unacknowledged readings kept at most; past this the oldest not in flight are dropped. */
  maxReadings: number;
  maxBytes: number;
  /** One request body or frame holds at most this many readings and bytes (before compression). */
  maxBatchReadings: number;
  maxBatchBytes: number;
}

export type BatchState = 'open' | 'queued' | 'in_flight';

export interface Batch {
  /** Unique per agent; the WebSocket frame's seq. Kept across resends. */
  readonly id: number;
  readings: string[];
  /** (device, ts) keys of the readings, only when the agent tracks acknowledgements. */
  keys: string[] | null;
  /** Spool sequence number of each reading (SpoolStore), so an ack settles its records on disk. */
  seqs: number[] | null;
  bytes: number;
  /** open: still taking readings; queued: sealed, waiting to be sent; in_flight: sent, not answered. */
  state: BatchState;
  /** Times this batch has been sent. */
  attempts: number;
}

/** What delivery needs from wherever unacknowledged readings are kept. */
export interface ReadingStore {
  /** Batch limits; delivery lowers maxBatchBytes after a 413 or a 1009. */
  readonly limits: BufferLimits;
  /** Readings held: queued and in flight. */
  readonly size: number;
  readonly bytes: number;
  /** Readings evicted because the store was full, since creation. */
  readonly dropped: number;
  readonly batchesInFlight: number;
  /** Whether anything is waiting to be sent (not counting what is in flight). */
  readonly hasSendable: boolean;
  /** Appends one serialised reading; returns how many readings were dropped to make room. */
  add(json: string, key?: string | null): number;
  takeNext(): Batch | undefined;
  complete(batch: Batch): void;
  requeue(batch: Batch): void;
  splitLargerThan(maxBytes: number): number;
}

export class ReadingBuffer implements ReadingStore {
  readonly limits: BufferLimits;
  readonly #trackKeys: boolean;
  #batches: Batch[] = [];
  #nextId = 1;
  #readings = 0;
  #bytes = 0;
  #dropped = 0;

  constructor(limits: BufferLimits, trackKeys = false) {
    this.limits = limits;
    this.#trackKeys = trackKeys;
  }

  /** Readings held: queued and in flight. */
  get size(): number {
    return this.#readings;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Readings evicted because the buffer was full, since creation. */
  get dropped(): number {
    return this.#dropped;
  }

  get inFlight(): number {
    let n = 0;
    for (const b of this.#batches) if (b.state === 'in_flight') n += b.readings.length;
    return n;
  }

  /** Batches currently in flight. */
  get batchesInFlight(): number {
    let n = 0;
    for (const b of this.#batches) if (b.state === 'in_flight') n++;
    return n;
  }

  /** Whether anything is waiting to be sent (not counting what is in flight). */
  get hasSendable(): boolean {
    for (const b of this.#batches) if (b.state !== 'in_flight') return true;
    return false;
  }

  /**
   * Appends one serialised reading. Byte counts use string length: readings are ASCII JSON apart from
   * rare non-ASCII device names, and the limits are safety bounds, not exact wire sizes.
   * Returns the number of readings dropped to make room.
   */
  add(json: string, key: string | null = null, seq: number | null = null): number {
    let tail = this.#batches.at(-1);
    if (
      tail?.state !== 'open' ||
      tail.readings.length >= this.limits.maxBatchReadings ||
      (tail.readings.length > 0 && tail.bytes + json.length + 1 > this.limits.maxBatchBytes)
    ) {
      if (tail?.state === 'open') tail.state = 'queued';
      tail = {
        id: this.#nextId++,
        readings: [],
        keys: this.#trackKeys ? [] : null,
        seqs: seq !== null ? [] : null,
        bytes: 0,
        state: 'open',
        attempts: 0,
      };
      this.#batches.push(tail);
    }
    tail.readings.push(json);
    if (tail.keys && key !== null) tail.keys.push(key);
    if (seq !== null) {
      tail.seqs ??= [];
      tail.seqs.push(seq);
    }
    // +1 for the comma that joins readings in a body.
    tail.bytes += json.length + 1;
    this.#readings++;
    this.#bytes += json.length + 1;
    return this.#evict();
  }

  /** Drops the oldest readings that are not in flight until the buffer fits its limits again. */
  #evict(): number {
    let dropped = 0;
    let i = 0;
    while (
      (this.#readings > this.limits.maxReadings || this.#bytes > this.limits.maxBytes) &&
      i < this.#batches.length
    ) {
      const batch = this.#batches[i]!;
      // In-flight readings may already be stored; dropping them would make "dropped" lie.
      if (batch.state === 'in_flight') {
        i++;
        continue;
      }
      const json = batch.readings.shift()!;
      batch.keys?.shift();
      batch.seqs?.shift();
      batch.bytes -= json.length + 1;
      this.#readings--;
      this.#bytes -= json.length + 1;
      dropped++;
      if (batch.readings.length === 0) this.#batches.splice(i, 1);
    }
    this.#dropped += dropped;
    return dropped;
  }

  /** Takes the oldest batch that is not in flight, seals it and marks it in flight. */
  takeNext(): Batch | undefined {
    for (const batch of this.#batches) {
      if (batch.state === 'in_flight') continue;
      batch.state = 'in_flight';
      batch.attempts++;
      return batch;
    }
    return undefined;
  }

  /** Removes an answered batch (acknowledged, or rejected as a whole). */
  complete(batch: Batch): void {
    const i = this.#batches.indexOf(batch);
    if (i < 0) return;
    this.#batches.splice(i, 1);
    this.#readings -= batch.readings.length;
    this.#bytes -= batch.bytes;
  }

  /** Puts an unanswered batch back; it keeps its place, so the oldest is resent first. */
  requeue(batch: Batch): void {
    if (this.#batches.includes(batch)) batch.state = 'queued';
  }

  /**
   * Splits queued batches larger than maxBytes into halves (new ids), after the service refused a
   * frame as too big. Returns how many batches were split.
   */
  splitLargerThan(maxBytes: number): number {
    let splits = 0;
    for (let i = 0; i < this.#batches.length; i++) {
      const batch = this.#batches[i]!;
      if (batch.state === 'in_flight' || batch.bytes <= maxBytes || batch.readings.length < 2) continue;
      const half = Math.ceil(batch.readings.length / 2);
      const second: Batch = {
        id: this.#nextId++,
        readings: batch.readings.splice(half),
        keys: batch.keys ? batch.keys.splice(half) : null,
        seqs: batch.seqs ? batch.seqs.splice(half) : null,
        bytes: 0,
        state: 'queued',
        attempts: batch.attempts,
      };
      second.bytes = second.readings.reduce((n, r) => n + r.length + 1, 0);
      batch.bytes -= second.bytes;
      batch.state = 'queued';
      this.#batches.splice(i + 1, 0, second);
      splits++;
      i--; // the first half may still be too big
    }
    return splits;
  }

  /**
   * Removes every reading not in flight whose seq lies in [fromSeq, toSeq) (the spool dropped the
   * segment holding them). Returns how many were removed. In-flight readings stay: they may be stored.
   */
  removeQueuedSeqs(fromSeq: number, toSeq: number): number {
    let removed = 0;
    for (let i = 0; i < this.#batches.length; i++) {
      const batch = this.#batches[i]!;
      const seqs = batch.seqs;
      if (batch.state === 'in_flight' || !seqs) continue;
      const keep = seqs.map((q) => q < fromSeq || q >= toSeq);
      if (keep.every(Boolean)) continue;
      const readings: string[] = [];
      const kept: number[] = [];
      const keys: string[] = [];
      let bytes = 0;
      keep.forEach((k, j) => {
        if (k) {
          readings.push(batch.readings[j]!);
          kept.push(seqs[j]!);
          if (batch.keys) keys.push(batch.keys[j]!);
          bytes += batch.readings[j]!.length + 1;
        } else removed++;
      });
      this.#readings -= batch.readings.length - readings.length;
      this.#bytes -= batch.bytes - bytes;
      batch.readings = readings;
      batch.seqs = kept;
      if (batch.keys) batch.keys = keys;
      batch.bytes = bytes;
      if (batch.readings.length === 0) this.#batches.splice(i--, 1);
    }
    return removed;
  }
}
