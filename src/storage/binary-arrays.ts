/**
 * Postgres arrays in the binary wire format (array_send / array_recv), for the write path's
 * `unnest()` parameters. A Buffer parameter goes to Postgres as binary (pg-protocol sets format 1
 * for it), so the server reads each float as 8 bytes instead of running the text float parser on
 * it, and the service builds one buffer per column instead of a string of the numbers' text
 * (docs/performance.md, "Binary parameters").
 *
 * Layout: ndim, has-nulls flag, element type OID, then per dimension its length and lower bound,
 * then each element as a length (-1 for NULL) and its bytes, all big-endian.
 */

const HEADER_BYTES = 20;
/** Element type OIDs (pg_type.oid, fixed for built-in types). */
const OID = { int4: 23, float4: 700, float8: 701, timestamptz: 1184 } as const;
/** Microseconds from the Unix epoch to Postgres' epoch (2000-01-01T00:00:00Z). */
const PG_EPOCH_US = 946_684_800_000_000;
const TWO_32 = 4_294_967_296;

function header(buffer: Buffer, oid: number, length: number, hasNulls: boolean): void {
  buffer.writeInt32BE(1, 0);
  buffer.writeInt32BE(hasNulls ? 1 : 0, 4);
  buffer.writeInt32BE(oid, 8);
  buffer.writeInt32BE(length, 12);
  buffer.writeInt32BE(1, 16);
}

type Nullable = ArrayLike<number | null | undefined>;

/**
 * A float8[] (or float4[]) of the values, NULL where a value is absent; `null` (SQL NULL, which a
 * multi-argument unnest() pads) when none is present, so a batch of ASICs sends no GPU columns.
 */
export function floatArray(values: Nullable, type: 'float8' | 'float4' = 'float8'): Buffer | null {
  const column = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) column[i] = values[i] ?? Number.NaN;
  return floatColumn(column, type);
}

/** An int4[] of key values (never NULL). */
export function int4Array(values: ArrayLike<number>): Buffer {
  const buffer = Buffer.allocUnsafe(HEADER_BYTES + values.length * 8);
  header(buffer, OID.int4, values.length, false);
  let at = HEADER_BYTES;
  for (let i = 0; i < values.length; i++) {
    at = buffer.writeInt32BE(4, at);
    at = buffer.writeInt32BE(values[i]!, at);
  }
  return buffer;
}

/**
 * A timestamptz[] of integer epoch microseconds (never NULL): timestamptz is an int64 of
 * microseconds since 2000-01-01 on the wire, so a reading's instant arrives exactly, with no
 * `to_timestamp()` of a float per row.
 */
export function timestamptzArray(epochUs: ArrayLike<number>): Buffer {
  const buffer = Buffer.allocUnsafe(HEADER_BYTES + epochUs.length * 12);
  header(buffer, OID.timestamptz, epochUs.length, false);
  let at = HEADER_BYTES;
  for (let i = 0; i < epochUs.length; i++) {
    const us = epochUs[i]! - PG_EPOCH_US;
    // An int64 as two int32s: exact for integers below 2^53, which every epoch-µs instant is.
    const high = Math.floor(us / TWO_32);
    at = buffer.writeInt32BE(8, at);
    at = buffer.writeInt32BE(high, at);
    at = buffer.writeUInt32BE(us - high * TWO_32, at);
  }
  return buffer;
}

/** floatArray for a column in which NaN marks an absent value (validation never lets NaN through). */
export function floatColumn(values: Float64Array, type: 'float8' | 'float4' = 'float8'): Buffer | null {
  let absent = 0;
  for (let i = 0; i < values.length; i++) if (Number.isNaN(values[i]!)) absent++;
  if (absent === values.length) return null;
  const width = type === 'float8' ? 8 : 4;
  const buffer = Buffer.allocUnsafe(HEADER_BYTES + values.length * 4 + (values.length - absent) * width);
  header(buffer, OID[type], values.length, absent > 0);
  let at = HEADER_BYTES;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) {
      at = buffer.writeInt32BE(-1, at);
      continue;
    }
    at = buffer.writeInt32BE(width, at);
    at = width === 8 ? buffer.writeDoubleBE(v, at) : buffer.writeFloatBE(v, at);
  }
  return buffer;
}
