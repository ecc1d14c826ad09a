/**
 * A minimal protobuf wire-format reader for the two messages hashwatt receives (remote_write's
 * WriteRequest, OTLP's ExportMetricsServiceRequest). Hand-rolled rather than protobufjs because
 * the decoders visit fields once and build hashwatt samples directly, without an intermediate
 * object tree (bench/protocols-decode.ts measures both).
 *
 * Every read is bounds-checked. Malformed input raises ProtoError, which each decoder catches once
 * at its entry point and turns into a `fatal` result: a well-formed body never takes that path.
 */

/** The body is not a well-formed message; `offset` is where reading failed. */
export class ProtoError extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.name = 'ProtoError';
    this.offset = offset;
  }
}

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

const TWO_32 = 4294967296;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export class ProtoReader {
  readonly buf: Uint8Array;
  /** The end of the message being read; `enter` narrows it to a sub-message, `leave` restores it. */
  end: number;
  pos: number;
  private readonly view: DataView;

  constructor(buf: Uint8Array, start = 0, end = buf.length, view?: DataView) {
    this.buf = buf;
    this.end = end;
    this.pos = start;
    // Sub-message readers share their parent's view rather than building one each.
    this.view = view ?? new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /**
   * Narrows the reader to the next `len` bytes (a sub-message) without allocating a reader;
   * returns the outer end for `leave`. The hot loops (one call per sample) use this.
   */
  enter(len: number): number {
    const outer = this.end;
    this.end = this.pos + len;
    return outer;
  }

  /** Back to the outer message; the sub-message must have been read to its end. */
  leave(outer: number): void {
    if (this.pos !== this.end) this.fail('sub-message not read to its end');
    this.end = outer;
  }

  /** A reader over the next `len` bytes (a sub-message); the cursor moves past them. */
  sub(len: number): ProtoReader {
    const r = new ProtoReader(this.buf, this.pos, this.pos + len, this.view);
    this.pos += len;
    return r;
  }

  private fail(message: string): never {
    throw new ProtoError(message, this.pos);
  }

  /** An unsigned varint that must fit 32 bits (tags, lengths, enums). */
  uint32(): number {
    const buf = this.buf;
    let result = 0;
    for (let shift = 0; ; shift += 7) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const b = buf[this.pos++]!;
      if (shift === 28) {
        // The fifth byte carries bits 28..31 and must be the last.
        if ((b & 0xf0) !== 0) this.fail('varint exceeds 32 bits');
        return result + b * 2 ** 28;
      }
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
    }
  }

  /**
   * A signed int64 varint as a double: exact when |value| < 2^53 (every timestamp in milliseconds
   * is); beyond that the nearest double, which the caller's range check refuses.
   */
  int64(): number {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const b = buf[this.pos++]!;
      const bits = b & 0x7f;
      if (shift < 28) lo |= bits << shift;
      else if (shift === 28) {
        lo |= (bits & 0x0f) << 28;
        hi = bits >>> 4;
      } else hi |= bits << (shift - 32);
      if ((b & 0x80) === 0) return int64ToNumber(lo >>> 0, hi >>> 0);
      shift += 7;
    }
    return this.fail('varint longer than 10 bytes');
  }

  bool(): boolean {
    return this.uint32() !== 0;
  }

  double(): number {
    if (this.pos + 8 > this.end) this.fail('truncated double');
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** The little-endian uint32 at an absolute offset already read (a NaN's payload bits). */
  uint32At(offset: number): number {
    return this.view.getUint32(offset, true);
  }

  /** A fixed64 as its two unsigned 32-bit halves. */
  fixed64(): { lo: number; hi: number } {
    if (this.pos + 8 > this.end) this.fail('truncated fixed64');
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getUint32(this.pos + 4, true);
    this.pos += 8;
    return { lo, hi };
  }

  /** An sfixed64 as a double (exact when |value| < 2^53). */
  sfixed64(): number {
    const { lo, hi } = this.fixed64();
    return int64ToNumber(lo, hi);
  }

  /** The length of a length-delimited field; checks it lies inside the current message. */
  length(): number {
    const len = this.uint32();
    if (len > this.end - this.pos) this.fail(`length ${len} runs past the end of the message`);
    return len;
  }

  /** A UTF-8 string field. Invalid UTF-8 is malformed input. */
  string(): string {
    const len = this.length();
    const start = this.pos;
    this.pos += len;
    return decodeUtf8(this.buf, start, start + len, this);
  }

  /** Skips a field of the given wire type. */
  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.int64();
        return;
      case WIRE_I64:
        if (this.pos + 8 > this.end) this.fail('truncated fixed64');
        this.pos += 8;
        return;
      case WIRE_LEN: {
        // Read the length before the cursor: `this.pos += this.length()` would add to the old one.
        const len = this.length();
        this.pos += len;
        return;
      }
      case WIRE_I32:
        if (this.pos + 4 > this.end) this.fail('truncated fixed32');
        this.pos += 4;
        return;
      default:
        this.fail(`unsupported wire type ${wireType}`);
    }
  }

  /** Raises when the field's wire type is not the expected one. */
  expect(wireType: number, expected: number, field: string): void {
    if (wireType !== expected) this.fail(`${field}: wire type ${wireType}, expected ${expected}`);
  }

  /** Raises unless the cursor stopped exactly at the message end. */
  done(): void {
    if (this.pos !== this.end) this.fail('message overruns its length');
  }
}

/**
 * Node's native byte-to-string copy for Latin-1 (ASCII is a subset), on any Uint8Array: one
 * allocation, no view of the bytes. Not in Node's type declarations, hence the cast.
 */
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice(start: number, end: number): string })
  .latin1Slice as (this: Uint8Array, start: number, end: number) => string;

/**
 * Short ASCII strings seen before, by FNV-1a hash of their bytes. A push request repeats its label
 * names and most values (metric names, kinds, models, each device's name once per metric) in every
 * series, so most strings are found here instead of allocated (docs/performance.md).
 */
const interned = new Map<number, string>();
const INTERNED_MAX = 65_536;

function internAscii(buf: Uint8Array, start: number, end: number, hash: number): string {
  const seen = interned.get(hash);
  if (seen !== undefined && seen.length === end - start) {
    let same = true;
    for (let i = start; i < end; i++) {
      if (seen.charCodeAt(i - start) !== buf[i]) {
        same = false;
        break;
      }
    }
    if (same) return seen;
  }
  const text = latin1Slice.call(buf, start, end);
  if (interned.size >= INTERNED_MAX) interned.clear();
  interned.set(hash, text);
  return text;
}

function decodeUtf8(buf: Uint8Array, start: number, end: number, reader: ProtoReader): string {
  // Label names and values are nearly always ASCII: building the string directly is several times
  // faster than TextDecoder for such short strings.
  // One string built from the bytes once they are known to be ASCII: appending a character at a
  // time allocated a string per character.
  if (end - start <= 64) {
    let ascii = true;
    let hash = 2166136261;
    for (let i = start; i < end; i++) {
      const b = buf[i]!;
      if (b >= 0x80) {
        ascii = false;
        break;
      }
      hash = Math.imul(hash ^ b, 16777619);
    }
    if (ascii) return internAscii(buf, start, end, hash);
  }
  try {
    return utf8.decode(buf.subarray(start, end));
  } catch {
    throw new ProtoError('string is not valid UTF-8', reader.pos);
  }
}

/** Two's-complement 64 bits to the nearest double. */
export function int64ToNumber(lo: number, hi: number): number {
  if (hi & 0x80000000) {
    // Negative: negate the 64-bit value, then convert.
    const nlo = (~lo + 1) >>> 0;
    const nhi = (~hi + (nlo === 0 ? 1 : 0)) >>> 0;
    return -(nhi * TWO_32 + nlo);
  }
  return hi * TWO_32 + lo;
}

/**
 * Unsigned nanoseconds (a fixed64 as two halves) to integer microseconds, floored, exactly:
 * hi·2^32 = hi·(4294967·1000 + 296), so µs = hi·4294967 + ⌊(hi·296 + lo) / 1000⌋ with every term
 * below 2^53 for any instant before the year 2554.
 */
export function nanosToMicros(lo: number, hi: number): number {
  return hi * 4294967 + Math.floor((hi * 296 + lo) / 1000);
}

/**
 * Skips a field the decoder does not read, but refuses a field it knows that arrives with another
 * wire type: skipping it would silently store a default (a value 0, a 1970 timestamp) in place of
 * what the sender meant. `known` maps field numbers to their wire type.
 */
export function skipField(r: ProtoReader, tag: number, known: Readonly<Record<number, number>>): void {
  const field = tag >>> 3;
  const expected = known[field];
  if (expected !== undefined && expected !== (tag & 7)) {
    throw new ProtoError(`field ${field} has wire type ${tag & 7}, expected ${expected}`, r.pos);
  }
  r.skip(tag & 7);
}
