import { createGunzip } from 'node:zlib';
import { HashwattError } from '../errors.ts';
import { withinShare } from '../ingest/admission.ts';

export interface BodyLimits {
  /** Bytes on the wire (compressed, when it is). */
  maxWireBytes: number;
  /** Bytes after decompression; a gzip bomb is cut off here while inflating, not after. */
  maxDecodedBytes: number;
}

const MIB = 1024 * 1024;
export const INGEST_BODY_LIMITS: BodyLimits = { maxWireBytes: 4 * MIB, maxDecodedBytes: 32 * MIB };

/** Who a body's bytes are counted against in the budget: the site sending it. */
export type BudgetHolder = number | string;

export interface DecodeBudgetOptions {
  /** Share of the budget a holder past its equal share may not take: room kept for the others. */
  headroomRatio?: number;
  /** Bytes any holder may hold whatever its share: an ordinary uncompressed body. */
  floorBytes?: number;
}

/**
 * Bytes held by request bodies being read and decoded, across every request of the process. The
 * per-request limits alone let 16 small gzip bodies inflate to 33 MB each at once (+230 MB RSS);
 * past this budget a body is refused (429) instead of decoded. Counted as bytes arrive and inflate,
 * so no request holds room for bytes it has not produced.
 *
 * Counted per holder too, with the write queue's fairness rule (withinShare): one site sending
 * many heavy bodies at once is held to its share while the budget is past its headroom, so the
 * 429 goes to that site, not to the next well-behaved one. A holder's single body in flight may
 * still use whatever is free, as a lone maximal body needs most of the budget.
 */
export class DecodeBudget {
  readonly capacityBytes: number;
  readonly #headroomRatio: number;
  readonly #floorBytes: number;
  #usedBytes = 0;
  /** Bytes held per holder; holders holding nothing are absent. */
  readonly #held = new Map<BudgetHolder, number>();

  constructor(capacityBytes: number, options: DecodeBudgetOptions = {}) {
    this.capacityBytes = capacityBytes;
    this.#headroomRatio = options.headroomRatio ?? 0.25;
    this.#floorBytes = options.floorBytes ?? INGEST_BODY_LIMITS.maxWireBytes;
  }

  get usedBytes(): number {
    return this.#usedBytes;
  }

  /** Bytes a holder holds now. */
  heldBytes(holder: BudgetHolder): number {
    return this.#held.get(holder) ?? 0;
  }

  /**
   * Takes `bytes` of room; false (taking nothing) when that would pass the capacity, or when
   * `holder` has other bodies in flight (it holds more than `ownBytes`, what this body holds) and
   * is past its share of a budget with only the headroom left.
   */
  tryAcquire(bytes: number, holder?: BudgetHolder, ownBytes = 0): boolean {
    if (this.#usedBytes + bytes > this.capacityBytes) return false;
    if (holder !== undefined) {
      const held = this.heldBytes(holder);
      const fair =
        held <= ownBytes ||
        withinShare({
          held,
          request: bytes,
          limit: this.capacityBytes,
          used: this.#usedBytes,
          activeSites: this.#held.size,
          floor: this.#floorBytes,
          headroomRatio: this.#headroomRatio,
        });
      if (!fair) return false;
      this.#held.set(holder, held + bytes);
    }
    this.#usedBytes += bytes;
    return true;
  }

  /** Gives back room taken with tryAcquire (for the same holder). */
  release(bytes: number, holder?: BudgetHolder): void {
    this.#usedBytes = Math.max(0, this.#usedBytes - bytes);
    if (holder === undefined) return;
    const left = this.heldBytes(holder) - bytes;
    if (left > 0) this.#held.set(holder, left);
    else this.#held.delete(holder);
  }
}

/**
 * What an inflated byte weighs in memory until the body is parsed: the text decoded from it, and
 * the flat copy of that text JSON.parse makes. The budget counts both, so its capacity is real heap.
 */
const INFLATED_BYTE_WEIGHT = 2;

/**
 * Room for one body at the per-request limits at its weight in memory (its text and the copy
 * JSON.parse flattens, plus its wire bytes and another body's), or many ordinary bodies at once:
 * a 5,000-reading batch is about 1 MiB. Two maximal bodies at once held 3 copies each and took
 * the hostile run past 512 MB RSS (docs/reliability.md).
 */
export const DECODE_BUDGET = new DecodeBudget(
  INFLATED_BYTE_WEIGHT * INGEST_BODY_LIMITS.maxDecodedBytes + 2 * INGEST_BODY_LIMITS.maxWireBytes,
);

/** What one request holds of the budget; given back whole once its body is parsed or refused. */
class BudgetLease {
  readonly #budget: DecodeBudget;
  readonly #holder: BudgetHolder | undefined;
  #heldBytes = 0;

  constructor(budget: DecodeBudget, holder: BudgetHolder | undefined) {
    this.#budget = budget;
    this.#holder = holder;
  }

  /** Takes room for `bytes` more, or throws the 429 that tells the client to come back. */
  take(bytes: number): void {
    if (!this.#budget.tryAcquire(bytes, this.#holder, this.#heldBytes)) {
      throw new HashwattError(
        'overloaded',
        'too many request bodies are being decoded at once; retry later',
        {
          retryAfterMs: BUDGET_RETRY_AFTER_MS,
        },
      );
    }
    this.#heldBytes += bytes;
  }

  releaseAll(): void {
    this.#budget.release(this.#heldBytes, this.#holder);
    this.#heldBytes = 0;
  }
}

/** Decoding a body takes milliseconds, so room frees up soon; a second is a calm retry pace. */
const BUDGET_RETRY_AFTER_MS = 1_000;

/** The body stream failed under us: the client aborted or half-closed the upload. */
function clientClosed(cause: unknown): HashwattError {
  return new HashwattError(
    'client_closed_request',
    'the client closed the connection before the whole body arrived',
    {},
    { cause },
  );
}

/** Reads a request body within the wire limit, counting as it streams (Content-Length may lie or be absent). */
async function readWire(request: Request, maxBytes: number, lease: BudgetLease): Promise<Buffer> {
  const declared = Number(request.headers.get('content-length') ?? Number.NaN);
  if (declared > maxBytes) {
    // Answering before the body is read closes the connection under a sender still writing, which
    // then sees a broken pipe instead of the 413. A body up to a few times the limit is read and
    // dropped so the answer arrives; anything bigger is cut off at once.
    if (declared <= DRAIN_FACTOR * maxBytes) await drain(request, DRAIN_FACTOR * maxBytes);
    throw tooLarge(`the body exceeds ${maxBytes} bytes`);
  }
  if (!request.body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of request.body) {
      size += chunk.byteLength;
      // Past the limit, keep reading (and dropping) for the same reason as above, within the same bound.
      if (size > DRAIN_FACTOR * maxBytes) break;
      if (size <= maxBytes) {
        lease.take(chunk.byteLength);
        chunks.push(chunk);
      }
    }
  } catch (error) {
    if (error instanceof HashwattError) throw error;
    // Whatever the stream says (ECONNRESET, "aborted", a premature close), only the client ends a
    // body early; left as it was, a reset would read as the database going away (503).
    throw clientClosed(error);
  }
  if (size > maxBytes) throw tooLarge(`the body exceeds ${maxBytes} bytes`);
  return Buffer.concat(chunks, size);
}

const DRAIN_FACTOR = 4;

/** Reads and discards up to `budget` more bytes of a body. */
async function drain(request: Request, budget: number): Promise<void> {
  if (!request.body) return;
  let left = budget;
  try {
    for await (const chunk of request.body) {
      left -= chunk.byteLength;
      if (left <= 0) return;
    }
  } catch {
    // The sender went away: nothing left to answer.
  }
}

function tooLarge(message: string): HashwattError {
  return new HashwattError('payload_too_large', message);
}

/**
 * Inflates a gzip body straight into text, counting decoded bytes against the request's limit and
 * the process budget as they come. Each inflated chunk is decoded and dropped at once: no buffer
 * of the whole inflated body is ever built beside its text.
 */
async function gunzipToText(
  wire: Buffer,
  maxBytes: number,
  lease: BudgetLease,
): Promise<{ text: string; bytes: number }> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const pieces: string[] = [];
  const bytes = await inflate(wire, maxBytes, lease, (chunk) =>
    pieces.push(decodeUtf8Piece(decoder, chunk, false)),
  );
  pieces.push(decodeUtf8Piece(decoder, undefined, true));
  return { text: pieces.join(''), bytes };
}

const INFLATE_CHUNK_BYTES = 64 * 1024;

/**
 * Inflates a gzip body chunk by chunk into `sink`, counting the decoded size against the limit and
 * every inflated byte (at INFLATED_BYTE_WEIGHT: decoding builds text or samples about its size
 * again) against the budget as it comes, so a bomb is cut off at the limit. Returns the size.
 */
async function inflate(
  wire: Buffer,
  maxBytes: number,
  lease: BudgetLease,
  sink: (chunk: Buffer) => void,
): Promise<number> {
  // 128 KiB output chunks instead of zlib's 16 KiB: an agent's 5,000-reading batch inflates to
  // ~1 MB, and each chunk costs a thread-pool round trip, a stream event and a decode step
  // (docs/performance.md); a bomb still stops within one chunk of the limit.
  const gunzip = createGunzip({ chunkSize: INFLATE_CHUNK_BYTES });
  let size = 0;
  gunzip.end(wire);
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) throw tooLarge(`the decompressed body exceeds ${maxBytes} bytes`);
      lease.take(chunk.length * INFLATED_BYTE_WEIGHT);
      sink(chunk);
    }
  } catch (error) {
    if (error instanceof HashwattError) throw error;
    throw new HashwattError('invalid_encoding', 'the body is not valid gzip', { field: 'content-encoding' });
  } finally {
    // Stops inflating at once when the loop ended early (a limit): the rest is never produced.
    gunzip.destroy();
  }
  return size;
}

/** One step of a streaming fatal UTF-8 decode; invalid UTF-8 is the same 400 as decodeUtf8's. */
function decodeUtf8Piece(
  decoder: InstanceType<typeof TextDecoder>,
  chunk: Uint8Array | undefined,
  last: boolean,
): string {
  try {
    return decoder.decode(chunk, { stream: !last });
  } catch {
    throw new HashwattError('invalid_encoding', 'the body is not valid UTF-8', { field: 'body' });
  }
}

// fatal: invalid UTF-8 is refused rather than turned into U+FFFD, which would store a name the agent
// never sent. ignoreBOM keeps a byte-order mark in the text, so JSON.parse refuses it as before.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Bytes to text, refusing invalid UTF-8 with a 400 instead of replacing it. */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new HashwattError('invalid_encoding', 'the body is not valid UTF-8', { field: 'body' });
  }
}

/**
 * The decoded JSON body of an ingest request, with content type and encoding checked. The bytes
 * read and inflated are held against `budget` until the body is parsed (or refused); what the
 * parsed batch weighs after that is the caller's to count (`decodedBytes`). `holder` (the sending
 * site) is held to its fair share of the budget under contention.
 */
export async function readJsonBody(
  request: Request,
  limits: BodyLimits,
  {
    budget = DECODE_BUDGET,
    holder,
    turn = async (work) => work(),
  }: {
    /** The decode budget the body's bytes are held against; the process-wide one by default. */
    budget?: DecodeBudget;
    /** Who holds them (the site), for the budget's per-holder share. */
    holder?: BudgetHolder;
    /** Where the parse runs: the ingest pipeline's per-site turns; unset, at once. */
    turn?: <T>(work: () => T) => Promise<T>;
  } = {},
): Promise<{ value: unknown; wireBytes: number; decodedBytes: number }> {
  const type = request.headers.get('content-type') ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new HashwattError('unsupported_media_type', 'Content-Type must be application/json', {
      field: 'content-type',
    });
  }
  const encoding = (request.headers.get('content-encoding') ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity' && encoding !== 'gzip') {
    throw new HashwattError('unsupported_media_type', 'Content-Encoding must be gzip or absent', {
      field: 'content-encoding',
    });
  }
  const lease = new BudgetLease(budget, holder);
  try {
    const wire = await readWire(request, limits.maxWireBytes, lease);
    if (encoding === 'gzip') {
      const { text, bytes } = await gunzipToText(wire, limits.maxDecodedBytes, lease);
      return { value: await turn(() => parseJson(text)), wireBytes: wire.length, decodedBytes: bytes };
    }
    const value = await turn(() => parseJson(decodeUtf8(wire)));
    return { value, wireBytes: wire.length, decodedBytes: wire.length };
  } finally {
    lease.releaseAll();
  }
}

/** A gzip body inflated into bytes (see inflate). */
async function gunzipToBytes(wire: Buffer, maxBytes: number, lease: BudgetLease): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const size = await inflate(wire, maxBytes, lease, (chunk) => chunks.push(chunk));
  return Buffer.concat(chunks, size);
}

/**
 * A binary or non-JSON body (remote_write, line protocol, OTLP) read within the limits and the
 * decode budget, inflated when it is gzip, and handed to `decode` in the caller's turn; the bytes
 * stay held against the budget until `decode` returns. Other encodings are passed through as
 * they came (remote_write's snappy is the decoder's to undo, within its own bound). The caller
 * checks Content-Type and Content-Encoding first: each protocol names its own.
 */
export async function readBinaryBody<T>(
  request: Request,
  limits: BodyLimits,
  decode: (body: Uint8Array) => T,
  {
    budget = DECODE_BUDGET,
    holder,
    turn = async (work) => work(),
    expandsTo,
  }: {
    budget?: DecodeBudget;
    holder?: BudgetHolder;
    turn?: <R>(work: () => R) => Promise<R>;
    /**
     * Bytes `decode` will inflate the body to itself (remote_write's snappy declares its length
     * up front): held against the budget before decoding, as gzip's are while inflating.
     */
    expandsTo?: (body: Uint8Array) => number;
  } = {},
): Promise<{ value: T; wireBytes: number; decodedBytes: number }> {
  const gzip = (request.headers.get('content-encoding') ?? '').trim().toLowerCase() === 'gzip';
  const lease = new BudgetLease(budget, holder);
  try {
    const wire = await readWire(request, limits.maxWireBytes, lease);
    const body = gzip ? await gunzipToBytes(wire, limits.maxDecodedBytes, lease) : wire;
    const expanded = expandsTo ? Math.min(expandsTo(body), limits.maxDecodedBytes) : body.length;
    if (expandsTo) lease.take(expanded * INFLATED_BYTE_WEIGHT);
    // What the decoded batch weighs is charged to the write queue by the caller: the expanded size.
    return { value: await turn(() => decode(body)), wireBytes: wire.length, decodedBytes: expanded };
  } finally {
    lease.releaseAll();
  }
}

/** JSON.parse with the contract's error. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HashwattError('invalid_json', `malformed JSON: ${(error as Error).message}`);
  }
}
