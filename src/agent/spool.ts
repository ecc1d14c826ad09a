/**
 * The agent's disk spool: every reading read from a device is appended to a segment file before
 * it is sent, and stays there until the service has acknowledged it. So readings survive an
 * agent restart, a `kill -9` and (once fdatasync'd, every `syncIntervalMs`) a power cut, and are
 * resent on start with the same bytes (same ts): the service counts what it had as duplicates.
 *
 * Layout, in `dir`:
 *   <first seq, 16 digits>.seg   records: u32 LE length, u32 LE CRC-32 of the payload, payload (the JSON)
 *   <first seq, 16 digits>.ack   acknowledged records of that segment: (u32 LE index, u32 LE count) runs
 * A record is written with one write(2) as soon as the reading is read: the page cache keeps it
 * when the process dies, fdatasync (grouped) when the machine does. Acknowledgements are appended
 * without sync: one lost on a power cut only means that reading is sent again.
 *
 * Bounded by `maxBytes`: when full, the oldest segment not in flight is deleted and its unacknowledged
 * readings are counted as dropped. Only a window of readings is held in memory (`memoryReadings`);
 * the rest is read back from disk as the window empties, oldest first.
 */
import {
  closeSync,
  fdatasync,
  fstatSync,
  fsync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { type Batch, type BufferLimits, ReadingBuffer, type ReadingStore } from './delivery/buffer.ts';

const HEADER_BYTES = 8;
/** No reading is near this; a length past it is a torn or foreign record. */
const MAX_RECORD_BYTES = 16 * 1024 * 1024;
const READ_CHUNK_BYTES = 256 * 1024;

export interface SpoolOptions {
  dir: string;
  /** Bytes of segment files at most; past it the oldest segment is dropped. */
  maxBytes: number;
  /** Batch limits for delivery (readings and bytes per request or frame). */
  maxBatchReadings: number;
  maxBatchBytes: number;
  /** Size a segment is sealed at. Default: maxBytes / 16, between 64 KiB and 8 MiB. */
  segmentBytes?: number;
  /** Readings held in memory, ready to send. Default 20 000. */
  memoryReadings?: number;
  memoryBytes?: number;
  /** How often written records are fdatasync'd. Default 200 ms. */
  syncIntervalMs?: number;
  /** Keep (device, ts) keys of readings added in this process (tests). */
  trackKeys?: boolean;
  /** Told when the spool could not be written or read (disk full, I/O error). */
  onError?: (error: Error) => void;
}

interface Segment {
  readonly first: number;
  readonly segPath: string;
  readonly ackPath: string;
  /** Records in the file. */
  count: number;
  bytes: number;
  /** Acknowledged (or counted dropped) records. */
  settled: number;
  /** Records of it in batches in flight. */
  inFlight: number;
  sealed: boolean;
  fd: number;
  ackFd: number | null;
  /** Records acknowledged before this process started (from the .ack file). */
  ackedBefore: Uint8Array | null;
  /** Written since the last fdatasync. */
  dirty: boolean;
}

export interface SpoolStats {
  /** Readings held (not yet acknowledged): in memory and on disk only. */
  readings: number;
  bytes: number;
  segments: number;
  /** Readings found unacknowledged when the spool was opened. */
  recovered: number;
  /** Records cut off when opening, after a torn write. */
  tornRecords: number;
  appended: number;
  /** Readings known to be on stable storage (fdatasync'd), this process. */
  durable: number;
  dropped: number;
  writeErrors: number;
}

function segmentName(first: number): string {
  return String(first).padStart(16, '0');
}

function encodeRecord(json: string): Buffer {
  const payload = Buffer.from(json, 'utf8');
  const record = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  record.writeUInt32LE(payload.length, 0);
  record.writeUInt32LE(crc32(payload), 4);
  payload.copy(record, HEADER_BYTES);
  return record;
}

/** Reads records from `fd` at `offset`; calls `take` for each whole, valid one. Returns where it stopped. */
function scanRecords(
  fd: number,
  offset: number,
  fileBytes: number,
  take: (payload: Buffer, recordBytes: number) => boolean,
): { offset: number; torn: boolean } {
  let pos = offset;
  let buf = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  while (pos < fileBytes) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, fileBytes - pos), pos);
    if (n <= 0) break;
    let at = 0;
    while (at + HEADER_BYTES <= n) {
      const length = buf.readUInt32LE(at);
      if (length > MAX_RECORD_BYTES) return { offset: pos + at, torn: true };
      if (at + HEADER_BYTES + length > n) break;
      const payload = buf.subarray(at + HEADER_BYTES, at + HEADER_BYTES + length);
      if (crc32(payload) !== buf.readUInt32LE(at + 4)) return { offset: pos + at, torn: true };
      const more = take(Buffer.from(payload), HEADER_BYTES + length);
      at += HEADER_BYTES + length;
      if (!more) return { offset: pos + at, torn: false };
    }
    if (at === 0) {
      // One record larger than the buffer: grow it and read again.
      const length = n >= HEADER_BYTES ? buf.readUInt32LE(0) : 0;
      if (pos + HEADER_BYTES + length > fileBytes || n < HEADER_BYTES) return { offset: pos, torn: true };
      buf = Buffer.allocUnsafe(HEADER_BYTES + length);
      continue;
    }
    pos += at;
  }
  return { offset: pos, torn: pos < fileBytes };
}

export class SpoolStore implements ReadingStore {
  readonly #options: Required<Omit<SpoolOptions, 'onError' | 'trackKeys'>> & Pick<SpoolOptions, 'onError'>;
  readonly #memory: ReadingBuffer;
  readonly #segments: Segment[] = [];
  #nextSeq = 0;
  /** The next record to bring into memory: its seq, segment and byte offset. */
  #loadSeq = 0;
  #loadOffset = 0;
  #unsettled = 0;
  #bytes = 0;
  #dropped = 0;
  #recovered = 0;
  #torn = 0;
  #appended = 0;
  #durableSeq = 0;
  #writeErrors = 0;
  #dirFsyncNeeded = false;
  #syncTimer: NodeJS.Timeout | null = null;
  #syncing: Promise<void> | null = null;
  #closed = false;
  readonly #dirFd: number;

  private constructor(options: SpoolOptions) {
    const segmentBytes =
      options.segmentBytes ??
      Math.min(8 * 1024 * 1024, Math.max(64 * 1024, Math.floor(options.maxBytes / 16)));
    this.#options = {
      dir: options.dir,
      maxBytes: options.maxBytes,
      maxBatchReadings: options.maxBatchReadings,
      maxBatchBytes: options.maxBatchBytes,
      segmentBytes,
      memoryReadings: options.memoryReadings ?? 20_000,
      memoryBytes: options.memoryBytes ?? 16 * 1024 * 1024,
      syncIntervalMs: options.syncIntervalMs ?? 200,
      onError: options.onError,
    };
    // The memory window never evicts: the spool decides what is dropped, on disk.
    this.#memory = new ReadingBuffer(
      {
        maxReadings: Number.POSITIVE_INFINITY,
        maxBytes: Number.POSITIVE_INFINITY,
        maxBatchReadings: options.maxBatchReadings,
        maxBatchBytes: options.maxBatchBytes,
      },
      options.trackKeys ?? false,
    );
    mkdirSync(options.dir, { recursive: true });
    this.#dirFd = openSync(options.dir, 'r');
  }

  /** Opens (creating) the spool in `dir` and recovers what an earlier run left unacknowledged. */
  static open(options: SpoolOptions): SpoolStore {
    const store = new SpoolStore(options);
    store.#recover();
    return store;
  }

  #recover(): void {
    const names = readdirSync(this.#options.dir)
      .filter((n) => /^\d{16}\.seg$/.test(n))
      .sort();
    for (const name of names) {
      const first = Number(name.slice(0, 16));
      const segPath = path.join(this.#options.dir, name);
      const ackPath = path.join(this.#options.dir, `${name.slice(0, 16)}.ack`);
      const fd = openSync(segPath, 'r+');
      const fileBytes = readSize(fd);
      let count = 0;
      const scanned = scanRecords(fd, 0, fileBytes, () => {
        count++;
        return true;
      });
      if (scanned.torn) {
        // A write torn by a crash: the records after it were never whole. Cut them off.
        this.#torn++;
        ftruncateSync(fd, scanned.offset);
      }
      const ackedBefore = new Uint8Array(count);
      let settled = 0;
      try {
        const ackFd = openSync(ackPath, 'r');
        const ackBytes = readSize(ackFd);
        const buf = Buffer.allocUnsafe(ackBytes - (ackBytes % 8));
        if (buf.length > 0) readSync(ackFd, buf, 0, buf.length, 0);
        closeSync(ackFd);
        for (let at = 0; at + 8 <= buf.length; at += 8) {
          const index = buf.readUInt32LE(at);
          const n = buf.readUInt32LE(at + 4);
          for (let i = index; i < index + n && i < count; i++) {
            if (ackedBefore[i] === 0) settled++;
            ackedBefore[i] = 1;
          }
        }
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
      const segment: Segment = {
        first,
        segPath,
        ackPath,
        count,
        bytes: scanned.offset,
        settled,
        inFlight: 0,
        sealed: true,
        fd,
        ackFd: null,
        ackedBefore,
        dirty: false,
      };
      if (settled === count) {
        this.#unlink(segment);
        continue;
      }
      this.#segments.push(segment);
      this.#unsettled += count - settled;
      this.#bytes += segment.bytes;
      this.#nextSeq = first + count;
    }
    this.#recovered = this.#unsettled;
    this.#loadSeq = this.#segments[0]?.first ?? this.#nextSeq;
    this.#loadOffset = 0;
    this.#durableSeq = this.#nextSeq;
    this.#refill();
  }

  get limits(): BufferLimits {
    return this.#memory.limits;
  }

  get size(): number {
    return this.#unsettled;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get dropped(): number {
    return this.#dropped;
  }

  get batchesInFlight(): number {
    return this.#memory.batchesInFlight;
  }

  get hasSendable(): boolean {
    return this.#memory.hasSendable || this.#loadSeq < this.#nextSeq;
  }

  stats(): SpoolStats {
    return {
      readings: this.#unsettled,
      bytes: this.#bytes,
      segments: this.#segments.length,
      recovered: this.#recovered,
      tornRecords: this.#torn,
      appended: this.#appended,
      durable: Math.max(0, this.#durableSeq - (this.#nextSeq - this.#appended)),
      dropped: this.#dropped,
      writeErrors: this.#writeErrors,
    };
  }

  #active(recordBytes: number): Segment {
    let active = this.#segments.at(-1);
    if (
      active &&
      !active.sealed &&
      active.bytes + recordBytes > this.#options.segmentBytes &&
      active.count > 0
    ) {
      active.sealed = true;
      this.#maybeDelete(active);
      active = undefined;
    }
    if (!active || active.sealed) {
      const first = this.#nextSeq;
      const name = segmentName(first);
      const segPath = path.join(this.#options.dir, `${name}.seg`);
      active = {
        first,
        segPath,
        ackPath: path.join(this.#options.dir, `${name}.ack`),
        count: 0,
        bytes: 0,
        settled: 0,
        inFlight: 0,
        sealed: false,
        fd: openSync(segPath, 'a+'),
        ackFd: null,
        ackedBefore: null,
        dirty: false,
      };
      this.#segments.push(active);
      this.#dirFsyncNeeded = true;
    }
    return active;
  }

  /** Appends one reading (written at once, fdatasync'd within syncIntervalMs). Returns readings dropped. */
  add(json: string, key: string | null = null): number {
    if (this.#closed) throw new Error('spool closed');
    const record = encodeRecord(json);
    let segment: Segment;
    try {
      segment = this.#active(record.length);
      writeSync(segment.fd, record);
    } catch (error) {
      // Disk full or failing: the reading cannot be kept. Counted, and said, never silent.
      this.#writeErrors++;
      this.#dropped++;
      this.#options.onError?.(error as Error);
      return 1;
    }
    const caughtUp = this.#loadSeq === this.#nextSeq;
    const seq = this.#nextSeq++;
    segment.count++;
    segment.bytes += record.length;
    segment.dirty = true;
    this.#bytes += record.length;
    this.#unsettled++;
    this.#appended++;
    if (caughtUp && this.#memoryHasRoom()) {
      this.#memory.add(json, key, seq);
      this.#loadSeq = seq + 1;
      this.#loadOffset = segment.bytes;
    }
    this.#scheduleSync();
    return this.#enforceLimit();
  }

  #memoryHasRoom(): boolean {
    return this.#memory.size < this.#options.memoryReadings && this.#memory.bytes < this.#options.memoryBytes;
  }

  /** Deletes the oldest segments not in flight until the spool fits its bound. */
  #enforceLimit(): number {
    let dropped = 0;
    while (this.#bytes > this.#options.maxBytes) {
      const victim = this.#segments.find((s) => s.sealed && s.inFlight === 0);
      if (!victim) break; // only in-flight data or the open segment: over the bound until they settle
      const lost = victim.count - victim.settled;
      this.#memory.removeQueuedSeqs(victim.first, victim.first + victim.count);
      dropped += lost;
      this.#unsettled -= lost;
      victim.settled = victim.count;
      if (this.#loadSeq >= victim.first && this.#loadSeq < victim.first + victim.count) {
        const next = this.#segments[this.#segments.indexOf(victim) + 1];
        this.#loadSeq = next?.first ?? this.#nextSeq;
        this.#loadOffset = 0;
      }
      this.#remove(victim);
    }
    this.#dropped += dropped;
    return dropped;
  }

  /** Brings readings from disk into memory while the window has room. */
  #refill(): void {
    while (this.#loadSeq < this.#nextSeq && this.#memoryHasRoom()) {
      const segment = this.#segmentOf(this.#loadSeq);
      if (!segment) {
        // The seq's segment is gone (dropped): go on at the next one.
        const next = this.#segments.find((s) => s.first > this.#loadSeq);
        this.#loadSeq = next?.first ?? this.#nextSeq;
        this.#loadOffset = 0;
        continue;
      }
      let index = this.#loadSeq - segment.first;
      const from = index;
      let added = 0;
      try {
        const scanned = scanRecords(segment.fd, this.#loadOffset, segment.bytes, (payload, recordBytes) => {
          const seq = segment.first + index;
          if (segment.ackedBefore?.[index] !== 1) {
            this.#memory.add(payload.toString('utf8'), null, seq);
            added++;
          }
          index++;
          this.#loadOffset += recordBytes;
          return this.#memoryHasRoom();
        });
        if (scanned.torn || (index === from && index < segment.count))
          throw new Error(`spool segment ${segment.segPath} unreadable at byte ${scanned.offset}`);
      } catch (error) {
        // The rest of this segment cannot be read back: count it dropped rather than spin on it.
        this.#options.onError?.(error as Error);
        const lost = segment.count - index;
        this.#dropped += lost;
        this.#unsettled -= lost;
        segment.settled += lost;
        index = segment.count;
      }
      this.#loadSeq = segment.first + index;
      if (index >= segment.count) {
        if (!segment.sealed) break; // caught up with the open segment
        const next = this.#segments[this.#segments.indexOf(segment) + 1];
        this.#loadSeq = next?.first ?? this.#nextSeq;
        this.#loadOffset = 0;
      } else if (added === 0 && !this.#memoryHasRoom()) break;
    }
  }

  #segmentOf(seq: number): Segment | undefined {
    let lo = 0;
    let hi = this.#segments.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.#segments[mid]!;
      if (seq < s.first) hi = mid - 1;
      else if (seq >= s.first + s.count) lo = mid + 1;
      else return s;
    }
    return undefined;
  }

  takeNext(): Batch | undefined {
    if (!this.#memory.hasSendable) this.#refill();
    const batch = this.#memory.takeNext();
    if (batch?.seqs) for (const seq of batch.seqs) this.#segmentOf(seq)!.inFlight++;
    return batch;
  }

  requeue(batch: Batch): void {
    if (batch.seqs) for (const seq of batch.seqs) this.#segmentOf(seq)!.inFlight--;
    this.#memory.requeue(batch);
  }

  complete(batch: Batch): void {
    this.#memory.complete(batch);
    const seqs = batch.seqs ?? [];
    // Runs of consecutive records of one segment: one ack entry each.
    let i = 0;
    while (i < seqs.length) {
      const segment = this.#segmentOf(seqs[i]!);
      let j = i + 1;
      while (
        j < seqs.length &&
        seqs[j] === seqs[j - 1]! + 1 &&
        segment &&
        seqs[j]! < segment.first + segment.count
      )
        j++;
      if (segment) {
        const n = j - i;
        segment.inFlight -= n;
        segment.settled += n;
        this.#unsettled -= n;
        this.#appendAck(segment, seqs[i]! - segment.first, n);
        this.#maybeDelete(segment);
      }
      i = j;
    }
    this.#refill();
  }

  #appendAck(segment: Segment, index: number, count: number): void {
    if (segment.sealed && segment.settled === segment.count && segment.inFlight === 0) return; // deleted next
    try {
      segment.ackFd ??= openSync(segment.ackPath, 'a');
      const entry = Buffer.allocUnsafe(8);
      entry.writeUInt32LE(index, 0);
      entry.writeUInt32LE(count, 4);
      writeSync(segment.ackFd, entry);
    } catch (error) {
      // Without the note the reading is sent again after a restart: a duplicate, nothing lost.
      this.#options.onError?.(error as Error);
    }
  }

  splitLargerThan(maxBytes: number): number {
    return this.#memory.splitLargerThan(maxBytes);
  }

  #maybeDelete(segment: Segment): void {
    if (segment.sealed && segment.settled >= segment.count && segment.inFlight === 0) this.#remove(segment);
  }

  #remove(segment: Segment): void {
    const i = this.#segments.indexOf(segment);
    if (i >= 0) this.#segments.splice(i, 1);
    this.#bytes -= segment.bytes;
    this.#unlink(segment);
  }

  #unlink(segment: Segment): void {
    closeSync(segment.fd);
    if (segment.ackFd !== null) closeSync(segment.ackFd);
    // The .ack goes first: a crash between the two leaves a segment read again (duplicates), never
    // an ack note applied to a later segment of the same name.
    for (const file of [segment.ackPath, segment.segPath]) {
      try {
        unlinkSync(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.#options.onError?.(error as Error);
      }
    }
  }

  #scheduleSync(): void {
    if (this.#syncTimer || this.#closed) return;
    this.#syncTimer = setTimeout(() => {
      this.#syncTimer = null;
      void this.sync();
    }, this.#options.syncIntervalMs);
    this.#syncTimer.unref();
  }

  /** fdatasyncs every segment written since the last call (and the directory for new files). */
  sync(): Promise<void> {
    if (this.#syncing) return this.#syncing.then(() => this.sync());
    const upTo = this.#nextSeq;
    const dirty = this.#segments.filter((s) => s.dirty);
    const dir = this.#dirFsyncNeeded;
    for (const s of dirty) s.dirty = false;
    this.#dirFsyncNeeded = false;
    const syncFd = (fd: number, data: boolean) =>
      new Promise<void>((resolve) => {
        (data ? fdatasync : fsync)(fd, (error) => {
          // A segment deleted meanwhile has a closed fd: nothing left to make durable.
          if (error && error.code !== 'EBADF') this.#options.onError?.(error);
          resolve();
        });
      });
    this.#syncing = (async () => {
      await Promise.all(dirty.map((s) => syncFd(s.fd, true)));
      if (dir) await syncFd(this.#dirFd, false);
      this.#durableSeq = Math.max(this.#durableSeq, upTo);
    })().finally(() => {
      this.#syncing = null;
    });
    return this.#syncing;
  }

  /** Syncs and closes the files. What is unacknowledged stays for the next open. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#syncTimer) clearTimeout(this.#syncTimer);
    this.#syncTimer = null;
    await this.sync();
    this.#closed = true;
    for (const s of this.#segments) {
      closeSync(s.fd);
      if (s.ackFd !== null) closeSync(s.ackFd);
    }
    this.#segments.length = 0;
    closeSync(this.#dirFd);
  }
}

function readSize(fd: number): number {
  return fstatSync(fd).size;
}
