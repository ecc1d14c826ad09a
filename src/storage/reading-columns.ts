import {
  DEVICE_KINDS,
  DEVICE_STATUSES,
  type DeviceKind,
  type DeviceStatus,
  type ExtraValues,
  NUMERIC_METRICS,
  type ReadingMetrics,
} from './schema.ts';

/** A validated reading resolved to its site and device ids, ready to store. */
export interface ReadingRecord extends Partial<ReadingMetrics> {
  site_id: number;
  device_id: number;
  /** The registered kind of the device (not stored per reading; carried into the latest state). */
  kind: DeviceKind;
  /** Reading time, integer epoch microseconds: what `timestamptz` stores. */
  ts_us: number;
  /** When hashwatt received it, epoch milliseconds (kept in the latest state, not per reading). */
  received_ms: number;
  /** Extra metrics by `readings_extra` column, when the reading carries any. */
  extras?: ExtraValues;
}

/**
 * Readings resolved to ids, in columns: what the ingest path carries from the device directory to
 * the commit and into the latest state, and what the latest state keeps per device. A record per
 * reading lived from validation until its transaction committed (half a second under load), so it
 * was copied by every young-generation collection meanwhile and promoted; typed columns live off
 * V8's heap and are never copied (docs/performance.md, "Readings in columns").
 *
 * NaN marks an absent metric (validation never lets NaN through); `kind` and `status` are indexes
 * into DEVICE_KINDS and DEVICE_STATUSES (status + 1, 0 when absent).
 */
export interface ReadingColumns {
  readonly length: number;
  readonly siteId: Int32Array;
  readonly deviceId: Int32Array;
  readonly kind: Uint8Array;
  readonly tsUs: Float64Array;
  readonly receivedMs: Float64Array;
  /** One column per NUMERIC_METRICS entry, in that order. */
  readonly metrics: readonly Float64Array[];
  readonly status: Uint8Array;
  /** Extra metrics per row; undefined when no row has any (the common case). */
  extras: (ExtraValues | undefined)[] | undefined;
}

const KIND_INDEX = new Map<DeviceKind, number>(DEVICE_KINDS.map((k, i) => [k, i]));
const STATUS_INDEX = new Map<DeviceStatus, number>(DEVICE_STATUSES.map((s, i) => [s, i + 1]));

/** Index of a status in ReadingColumns.status (0: absent). */
export function statusIndex(status: DeviceStatus | null | undefined): number {
  return status ? STATUS_INDEX.get(status)! : 0;
}

/** Index of a kind in ReadingColumns.kind. */
export function kindIndex(kind: DeviceKind): number {
  return KIND_INDEX.get(kind)!;
}

/** Columns for `length` rows, every metric absent. */
export function allocColumns(length: number): ReadingColumns {
  return {
    length,
    siteId: new Int32Array(length),
    deviceId: new Int32Array(length),
    kind: new Uint8Array(length),
    tsUs: new Float64Array(length),
    receivedMs: new Float64Array(length),
    metrics: NUMERIC_METRICS.map(() => new Float64Array(length).fill(Number.NaN)),
    status: new Uint8Array(length),
    extras: undefined,
  };
}

/** Copies one record into row `i` (every column; absent metrics as NaN). */
export function setRow(cols: ReadingColumns, i: number, r: ReadingRecord): void {
  cols.siteId[i] = r.site_id;
  cols.deviceId[i] = r.device_id;
  cols.kind[i] = KIND_INDEX.get(r.kind)!;
  cols.tsUs[i] = r.ts_us;
  cols.receivedMs[i] = r.received_ms;
  for (let m = 0; m < NUMERIC_METRICS.length; m++) cols.metrics[m]![i] = r[NUMERIC_METRICS[m]!] ?? Number.NaN;
  cols.status[i] = r.status ? STATUS_INDEX.get(r.status)! : 0;
  setExtras(cols, i, r.extras);
}

/** Sets row `i`'s extra metrics (allocating the per-row list on the first row that has any). */
export function setExtras(cols: ReadingColumns, i: number, extras: ExtraValues | undefined): void {
  if (extras === undefined) {
    if (cols.extras) cols.extras[i] = undefined;
    return;
  }
  cols.extras ??= new Array<ExtraValues | undefined>(cols.length);
  cols.extras[i] = extras;
}

/** The records as columns, in the same order. */
export function columnsOf(records: readonly ReadingRecord[]): ReadingColumns {
  const cols = allocColumns(records.length);
  for (let i = 0; i < records.length; i++) setRow(cols, i, records[i]!);
  return cols;
}

/** Row `i` as a record, absent metrics left out. */
export function recordOf(cols: ReadingColumns, i: number): ReadingRecord {
  const record: ReadingRecord = {
    site_id: cols.siteId[i]!,
    device_id: cols.deviceId[i]!,
    kind: DEVICE_KINDS[cols.kind[i]!]!,
    ts_us: cols.tsUs[i]!,
    received_ms: cols.receivedMs[i]!,
  };
  for (let m = 0; m < NUMERIC_METRICS.length; m++) {
    const v = cols.metrics[m]![i]!;
    if (!Number.isNaN(v)) record[NUMERIC_METRICS[m]!] = v;
  }
  if (cols.status[i]! > 0) record.status = DEVICE_STATUSES[cols.status[i]! - 1]!;
  const extras = cols.extras?.[i];
  if (extras !== undefined) record.extras = extras;
  return record;
}

/** Every row as a record: for the rare paths that merge rows of one key (see insertColumns). */
export function recordsOf(cols: ReadingColumns): ReadingRecord[] {
  const out = new Array<ReadingRecord>(cols.length);
  for (let i = 0; i < cols.length; i++) out[i] = recordOf(cols, i);
  return out;
}

/** Copies row `from` of `src` into row `to` of `dst`. */
export function copyRow(src: ReadingColumns, from: number, dst: ReadingColumns, to: number): void {
  copyCoreRow(src, from, dst, to);
  setExtras(dst, to, src.extras?.[from]);
}

/** copyRow without the extra metrics (the latest state keeps the core columns only). */
export function copyCoreRow(src: ReadingColumns, from: number, dst: ReadingColumns, to: number): void {
  dst.siteId[to] = src.siteId[from]!;
  dst.deviceId[to] = src.deviceId[from]!;
  dst.kind[to] = src.kind[from]!;
  dst.tsUs[to] = src.tsUs[from]!;
  dst.receivedMs[to] = src.receivedMs[from]!;
  for (let m = 0; m < src.metrics.length; m++) dst.metrics[m]![to] = src.metrics[m]![from]!;
  dst.status[to] = src.status[from]!;
}

/** The rows at `indexes`, in that order, as new columns. */
export function pickRows(cols: ReadingColumns, indexes: ArrayLike<number>): ReadingColumns {
  const out = allocColumns(indexes.length);
  for (let k = 0; k < indexes.length; k++) copyRow(cols, indexes[k]!, out, k);
  return out;
}

/** The parts' rows one after another (a group-commit transaction of several requests). */
export function concatColumns(parts: readonly ReadingColumns[]): ReadingColumns {
  if (parts.length === 1) return parts[0]!;
  let length = 0;
  for (const p of parts) length += p.length;
  const out = allocColumns(length);
  let at = 0;
  for (const p of parts) {
    out.siteId.set(p.siteId, at);
    out.deviceId.set(p.deviceId, at);
    out.kind.set(p.kind, at);
    out.tsUs.set(p.tsUs, at);
    out.receivedMs.set(p.receivedMs, at);
    for (let m = 0; m < out.metrics.length; m++) out.metrics[m]!.set(p.metrics[m]!, at);
    out.status.set(p.status, at);
    if (p.extras) for (let i = 0; i < p.length; i++) setExtras(out, at + i, p.extras[i]);
    at += p.length;
  }
  return out;
}

/** Whether row `i` has a value for a column of `readings` (a metric or its status). */
export function hasCoreValues(cols: ReadingColumns, i: number): boolean {
  if (cols.status[i]! > 0) return true;
  for (let m = 0; m < cols.metrics.length; m++) if (!Number.isNaN(cols.metrics[m]![i]!)) return true;
  return false;
}

/** Metric values (samples) row `i` carries: status counts as one, each extra column as one. */
export function samplesOf(cols: ReadingColumns, i: number): number {
  let n = cols.status[i]! > 0 ? 1 : 0;
  for (let m = 0; m < cols.metrics.length; m++) if (!Number.isNaN(cols.metrics[m]![i]!)) n++;
  const extras = cols.extras?.[i];
  if (extras !== undefined) for (const _ in extras) n++;
  return n;
}
