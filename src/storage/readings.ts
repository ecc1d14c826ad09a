import { type Kysely, type RawBuilder, sql } from 'kysely';
import { CORE_METRICS } from '../catalog/index.ts';
import { minuteMarks } from '../rollups/ranges.ts';
import { floatArray, floatColumn, int4Array, timestamptzArray } from './binary-arrays.ts';
import { isForeignKeyViolation } from './errors.ts';
import {
  columnsOf,
  hasCoreValues,
  pickRows,
  type ReadingColumns,
  type ReadingRecord,
  recordsOf,
} from './reading-columns.ts';
import { insertMarks } from './rollups.ts';
import {
  type Database,
  DEVICE_KINDS,
  DEVICE_STATUSES,
  EXTRA_COLUMN_NAMES,
  type ExtraValues,
  NUMERIC_METRICS,
  READING_METRICS,
} from './schema.ts';

export type { ReadingColumns, ReadingRecord } from './reading-columns.ts';

export interface WriteResult {
  /**
   * For each input record, how many of its samples (metric values) were already stored, or came
   * earlier in the same batch: a retry. Idempotency is per (device, ts, metric): a record whose
   * other samples are new fills them into the stored row.
   */
  duplicateSamples: Uint32Array;
}

/**
 * Postgres array literal built by hand: pg's generic array serialiser costs about as much Node CPU
 * as everything else on the write path together (docs/storage.md). Values are numbers we validated
 * or enum labels, so nothing needs quoting. A column with no value at all (GPU metrics in a batch of
 * ASICs) is sent as SQL NULL: a multi-argument unnest() pads it with NULLs, so neither side spends
 * time on a literal of thousands of NULLs.
 */
function arrayLiteral(values: ArrayLike<number | string | null | undefined>): string | null {
  let out = '{';
  let present = false;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ',';
    if (v === null || v === undefined) out += 'NULL';
    else {
      out += String(v);
      present = true;
    }
  }
  return present ? `${out}}` : null;
}

/** For key columns, which always have a value. */
function keyArrayLiteral(values: ArrayLike<number>): string {
  return arrayLiteral(values) ?? '{}';
}

type Value = number | string | null | undefined;
type WideColumnType = 'float8' | 'real' | 'device_status';

/** A table of one row per (site, ts, device) with one nullable column per metric. */
interface WideTable {
  readonly name: 'readings' | 'readings_extra';
  readonly columns: readonly { readonly name: string; readonly type: WideColumnType }[];
  /** The record's values in column order, or undefined when it has none for this table. */
  readonly valuesOf: (record: ReadingRecord) => Value[] | undefined;
}

const CORE_TABLE: WideTable = {
  name: 'readings',
  columns: [
    ...CORE_METRICS.map(
      (m) => ({ name: m.name, type: m.precision === 'float4' ? 'real' : 'float8' }) as const,
    ),
    { name: 'status', type: 'device_status' },
  ],
  valuesOf(record) {
    let present = false;
    const values = new Array<Value>(READING_METRICS.length);
    for (let c = 0; c < READING_METRICS.length; c++) {
      const v = record[READING_METRICS[c]!];
      values[c] = v;
      if (v !== undefined && v !== null) present = true;
    }
    return present ? values : undefined;
  },
};

const EXTRA_TABLE: WideTable = {
  name: 'readings_extra',
  columns: EXTRA_COLUMN_NAMES.map((name) => ({ name, type: 'float8' }) as const),
  valuesOf(record) {
    const extras = record.extras;
    if (extras === undefined) return undefined;
    let present = false;
    const values = new Array<Value>(EXTRA_COLUMN_NAMES.length);
    for (let c = 0; c < EXTRA_COLUMN_NAMES.length; c++) {
      const v = extras[EXTRA_COLUMN_NAMES[c]!];
      values[c] = v;
      if (v !== undefined) present = true;
    }
    return present ? values : undefined;
  },
};

/** One row to write: the merge of a batch's records with the same key, each sample owned by one record. */
interface WideRow {
  site_id: number;
  device_id: number;
  ts_us: number;
  values: Value[];
  /** The record (index in the batch) that brought each column's value; a number when all did. */
  owner: number | Int32Array;
}

function ownerOf(row: WideRow, column: number): number {
  return typeof row.owner === 'number' ? row.owner : row.owner[column]!;
}

/**
 * The batch's rows for one table, in primary-key order (site, ts, device), records with the same
 * key merged into one row: ON CONFLICT DO UPDATE refuses to touch a row twice, and a Prometheus
 * batch from several shards can carry one device's instant twice. The first value of a column
 * wins; a later one is a duplicate sample of its record. Key order also makes concurrent
 * transactions inserting overlapping keys wait on each other in the same order instead of
 * deadlocking, and touches index pages in sequence, which is faster (docs/storage.md).
 */
export function mergeRows(
  table: Pick<WideTable, 'valuesOf'>,
  records: readonly ReadingRecord[],
  duplicateSamples: Uint32Array,
): WideRow[] {
  const order: number[] = [];
  const valuesByRecord: (Value[] | undefined)[] = new Array(records.length);
  for (let i = 0; i < records.length; i++) {
    const values = table.valuesOf(records[i]!);
    valuesByRecord[i] = values;
    if (values !== undefined) order.push(i);
  }
  order.sort((a, b) => {
    const x = records[a]!;
    const y = records[b]!;
    return x.site_id - y.site_id || x.ts_us - y.ts_us || x.device_id - y.device_id || a - b;
  });
  const rows: WideRow[] = [];
  let last: WideRow | undefined;
  for (const i of order) {
    const r = records[i]!;
    const values = valuesByRecord[i]!;
    if (last && last.site_id === r.site_id && last.ts_us === r.ts_us && last.device_id === r.device_id) {
      if (typeof last.owner === 'number') last.owner = new Int32Array(values.length).fill(last.owner);
      for (let c = 0; c < values.length; c++) {
        const v = values[c];
        if (v === undefined || v === null) continue;
        if (last.values[c] === undefined || last.values[c] === null) {
          last.values[c] = v;
          last.owner[c] = i;
        } else duplicateSamples[i]!++;
      }
      continue;
    }
    // valuesOf made the array for this call: it is the row's own, no copy needed.
    last = { site_id: r.site_id, device_id: r.device_id, ts_us: r.ts_us, values, owner: i };
    rows.push(last);
  }
  return rows;
}

function keyArrays(rows: readonly WideRow[]) {
  const site = new Int32Array(rows.length);
  const device = new Int32Array(rows.length);
  const ts = new Float64Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    site[i] = rows[i]!.site_id;
    device[i] = rows[i]!.device_id;
    ts[i] = rows[i]!.ts_us;
  }
  return { site: int4Array(site), device: int4Array(device), ts: timestamptzArray(ts) };
}

/**
 * One column of the rows as an array parameter, or SQL NULL when no row has a value: metrics as
 * binary floats (docs/performance.md, "Binary parameters"), the status enum as a text literal.
 */
function columnArray(rows: readonly WideRow[], c: number, type: WideColumnType): Buffer | string | null {
  const values = new Array<Value>(rows.length);
  for (let i = 0; i < rows.length; i++) values[i] = rows[i]!.values[c];
  if (type === 'device_status') return arrayLiteral(values);
  return floatArray(values as (number | null | undefined)[], type === 'real' ? 'float4' : 'float8');
}

/** `(r.c0 IS NOT NULL)::int::text || …`: which columns a stored row holds, one '0' or '1' each. */
function heldMask(table: WideTable): RawBuilder<string> {
  return sql.raw(table.columns.map((c) => `(r.${c.name} IS NOT NULL)::int::text`).join(' || '));
}

/** The unnest() of the key arrays and one typed array per column, aliased u(s, d, t, c0, c1, …). */
function unnestRows(
  table: WideTable,
  rows: readonly WideRow[],
  extra: RawBuilder<unknown>[] = [],
  extraNames = '',
) {
  const columns = table.columns.map((c, i) => columnArray(rows, i, c.type));
  return unnestOf(table, keyArrays(rows), columns, extra, extraNames);
}

/** unnest() of key arrays and one array parameter per column of `table`. */
function unnestOf(
  table: WideTable,
  k: { site: Buffer; device: Buffer; ts: Buffer },
  columns: readonly (Buffer | string | null)[],
  extra: RawBuilder<unknown>[] = [],
  extraNames = '',
) {
  const typed = table.columns.map((c, i) => sql`${columns[i]}::${sql.raw(c.type)}[]`);
  const names = table.columns.map((_, i) => `c${i}`).join(', ');
  return sql`unnest(${k.site}::int[], ${k.device}::int[], ${k.ts}::timestamptz[], ${sql.join([...typed, ...extra])})
    AS u(s, d, t, ${sql.raw(names)}${sql.raw(extraNames)})`;
}

/** INSERT … ON CONFLICT DO NOTHING of one table's rows from their unnest(); how many went in. */
async function insertRows(
  trx: Kysely<Database>,
  table: WideTable,
  unnest: RawBuilder<unknown>,
): Promise<number> {
  const columnList = sql.raw(table.columns.map((c) => c.name).join(', '));
  const valueList = sql.raw(table.columns.map((_, i) => `c${i}`).join(', '));
  const result = await sql`
    INSERT INTO ${sql.table(table.name)} (site_id, device_id, ts, ${columnList})
    SELECT s, d, t, ${valueList} FROM ${unnest}
    ON CONFLICT DO NOTHING`.execute(trx);
  return Number(result.numAffectedRows ?? 0n);
}

/**
 * Writes one table's rows per sample: a new row is inserted; a row that exists keeps every value it
 * holds (each is a duplicate sample) and gets the columns it lacks filled in. The normal path is
 * one `INSERT … ON CONFLICT DO NOTHING`, reporting only a count: RETURNING every row cost ~30 % of
 * the write rate (docs/performance.md). Only when the count falls short does the fill-in run,
 * exact per sample (docs/storage.md, "Extra metrics and per-sample idempotency"): read which
 * columns the conflicting rows hold, then update them only if they still hold just those. A row
 * a concurrent writer changed in between is read again.
 */
async function writeWide(
  trx: Kysely<Database>,
  table: WideTable,
  records: readonly ReadingRecord[],
  duplicateSamples: Uint32Array,
): Promise<void> {
  const rows = mergeRows(table, records, duplicateSamples);
  if (rows.length === 0) return;
  if ((await insertRows(trx, table, unnestRows(table, rows))) === rows.length) return;
  await fillInAll(trx, table, rows, duplicateSamples);
}

/** The fill-in of rows the insert found already stored, until none changed under it. */
async function fillInAll(
  trx: Kysely<Database>,
  table: WideTable,
  rows: readonly WideRow[],
  duplicateSamples: Uint32Array,
): Promise<void> {
  let pending: readonly WideRow[] = rows;
  for (let attempt = 0; pending.length > 0; attempt++) {
    if (attempt === 5) throw new Error(`${table.name}: rows kept changing under the fill-in`);
    pending = await fillIn(trx, table, pending, duplicateSamples);
  }
}

/** Row `i`'s values in CORE_TABLE's column order (NaN and status 0 as undefined). */
function coreValues(cols: ReadingColumns, i: number): Value[] {
  const values = new Array<Value>(NUMERIC_METRICS.length + 1);
  for (let m = 0; m < NUMERIC_METRICS.length; m++) {
    const v = cols.metrics[m]![i]!;
    values[m] = Number.isNaN(v) ? undefined : v;
  }
  values[NUMERIC_METRICS.length] = cols.status[i]! > 0 ? DEVICE_STATUSES[cols.status[i]! - 1] : undefined;
  return values;
}

/**
 * writeWide for `readings` straight from columns, with no object per row: the batch's rows with a
 * core value, in key order, sent as binary arrays. Two rows of one key (a Prometheus batch from
 * several shards) need merging first: that rare batch takes writeWide's path on records.
 */
async function writeCoreColumns(
  trx: Kysely<Database>,
  cols: ReadingColumns,
  duplicateSamples: Uint32Array,
): Promise<void> {
  const order: number[] = [];
  for (let i = 0; i < cols.length; i++) if (hasCoreValues(cols, i)) order.push(i);
  if (order.length === 0) return;
  const { siteId, tsUs, deviceId } = cols;
  order.sort(
    (a, b) => siteId[a]! - siteId[b]! || tsUs[a]! - tsUs[b]! || deviceId[a]! - deviceId[b]! || a - b,
  );
  for (let k = 1; k < order.length; k++) {
    const a = order[k - 1]!;
    const b = order[k]!;
    if (siteId[a] === siteId[b] && tsUs[a] === tsUs[b] && deviceId[a] === deviceId[b])
      return writeWide(trx, CORE_TABLE, recordsOf(cols), duplicateSamples);
  }
  const n = order.length;
  const site = new Int32Array(n);
  const device = new Int32Array(n);
  const ts = new Float64Array(n);
  const status = new Array<string | undefined>(n);
  for (let k = 0; k < n; k++) {
    const i = order[k]!;
    site[k] = siteId[i]!;
    device[k] = deviceId[i]!;
    ts[k] = tsUs[i]!;
    status[k] = cols.status[i]! > 0 ? DEVICE_STATUSES[cols.status[i]! - 1] : undefined;
  }
  const values = new Float64Array(n);
  const columns: (Buffer | string | null)[] = CORE_TABLE.columns.map((c, m) => {
    if (c.type === 'device_status') return arrayLiteral(status);
    const metric = cols.metrics[m]!;
    for (let k = 0; k < n; k++) values[k] = metric[order[k]!]!;
    return floatColumn(values, c.type === 'real' ? 'float4' : 'float8');
  });
  const keys = { site: int4Array(site), device: int4Array(device), ts: timestamptzArray(ts) };
  if ((await insertRows(trx, CORE_TABLE, unnestOf(CORE_TABLE, keys, columns))) === n) return;
  const rows: WideRow[] = order.map((i) => ({
    site_id: siteId[i]!,
    device_id: deviceId[i]!,
    ts_us: tsUs[i]!,
    values: coreValues(cols, i),
    owner: i,
  }));
  await fillInAll(trx, CORE_TABLE, rows, duplicateSamples);
}

/** One round of the fill-in; returns the rows a concurrent writer changed meanwhile, to read again. */
async function fillIn(
  trx: Kysely<Database>,
  table: WideTable,
  rows: readonly WideRow[],
  duplicateSamples: Uint32Array,
): Promise<WideRow[]> {
  const k = keyArrays(rows);
  // Rows this transaction inserted (xmin is ours) are new: nothing of them is a duplicate.
  const { rows: held } = await sql<{ o: number; had: string }>`
    SELECT u.o::int AS o, ${heldMask(table)} AS had
    FROM unnest(${k.site}::int[], ${k.device}::int[], ${k.ts}::timestamptz[]) WITH ORDINALITY AS u(s, d, t, o)
    JOIN ${sql.table(table.name)} r
      ON r.site_id = u.s AND r.ts = u.t AND r.device_id = u.d
    WHERE r.xmin <> pg_current_xact_id()::xid`.execute(trx);
  const sources: WideRow[] = [];
  const toFill: WideRow[] = [];
  const masks: string[] = [];
  for (const { o, had } of held) {
    const row = rows[o - 1]!;
    const fill = missingValues(row.values, had);
    if (fill === undefined) countHeld(row, had, duplicateSamples);
    else {
      sources.push(row);
      toFill.push({ ...row, values: fill });
      masks.push(had);
    }
  }
  if (toFill.length === 0) return [];
  const set = sql.raw(table.columns.map((c, i) => `${c.name} = COALESCE(r.${c.name}, u.c${i})`).join(', '));
  const ordinals = keyArrayLiteral(toFill.map((_, i) => i + 1));
  const { rows: updated } = await sql<{ o: number }>`
    UPDATE ${sql.table(table.name)} r SET ${set}
    FROM ${unnestRows(table, toFill, [sql`${`{${masks.join(',')}}`}::text[]`, sql`${ordinals}::int[]`], ', had, o')}
    WHERE r.site_id = u.s AND r.ts = u.t AND r.device_id = u.d
      -- In READ COMMITTED the UPDATE re-checks this on the newest version of a row it waited for:
      -- a concurrent fill of the same column makes it differ, and the row is read again.
      AND ${heldMask(table)} = u.had
    RETURNING u.o::int AS o`.execute(trx);
  const done = new Set(updated.map((r) => r.o));
  const again: WideRow[] = [];
  for (let i = 0; i < toFill.length; i++) {
    if (done.has(i + 1)) countHeld(sources[i]!, masks[i]!, duplicateSamples);
    else again.push(sources[i]!);
  }
  return again;
}

/** The values a stored row lacks (the rest undefined), or undefined when it lacks none of them. */
export function missingValues(values: readonly Value[], had: string): Value[] | undefined {
  let fills = false;
  const fill: Value[] = new Array(values.length);
  for (let c = 0; c < values.length; c++) {
    const v = values[c];
    if (v === undefined || v === null || had.charCodeAt(c) === 49 /* '1' */) continue;
    fill[c] = v;
    fills = true;
  }
  return fills ? fill : undefined;
}

/** Counts each value a stored row already held as a duplicate sample of the record that brought it. */
function countHeld(row: WideRow, had: string, duplicateSamples: Uint32Array): void {
  for (let c = 0; c < row.values.length; c++) {
    const v = row.values[c];
    if (v !== undefined && v !== null && had.charCodeAt(c) === 49) duplicateSamples[ownerOf(row, c)]!++;
  }
}

/**
 * Stores a batch of readings in the caller's transaction, per sample: core metrics in `readings`,
 * extra metrics in `readings_extra`, each idempotent per (site, device, ts, column) (writeWide).
 */
export async function insertReadings(
  trx: Kysely<Database>,
  records: readonly ReadingRecord[],
): Promise<WriteResult> {
  return insertColumns(trx, columnsOf(records));
}

/** insertReadings for readings in columns (the service's own path). */
export async function insertColumns(trx: Kysely<Database>, cols: ReadingColumns): Promise<WriteResult> {
  const duplicateSamples = new Uint32Array(cols.length);
  if (cols.length === 0) return { duplicateSamples };
  await writeCoreColumns(trx, cols, duplicateSamples);
  if (cols.extras) await writeWide(trx, EXTRA_TABLE, recordsOf(cols), duplicateSamples);
  // The rollup job's marks commit with the readings (docs/rollups.md): a late reading marks its
  // own minute, so the rollup of any bucket it lands in is rebuilt, whenever it arrives.
  await insertMarks(trx, minuteMarks(cols.siteId, cols.tsUs));
  return { duplicateSamples };
}

/**
 * Moves devices' latest state forward, one row per device, never back to an older reading.
 * Callers pass at most one record per device (the newest). See writeLatestRows.
 */
export async function updateDeviceLatest(
  db: Kysely<Database>,
  latest: readonly ReadingRecord[],
): Promise<{ dropped: number[] }> {
  return writeLatestRows(db, columnsOf([...latest].sort((x, y) => x.device_id - y.device_id)));
}

/**
 * Writes latest-state rows (sorted by device id, one per device): rows are locked in device order
 * so concurrent writers (other replicas) wait on each other instead of deadlocking. Rows of devices
 * deleted meanwhile (their site was deleted, perhaps by another replica) are dropped, not retried
 * forever; their device ids are returned.
 */
export async function writeLatestRows(
  db: Kysely<Database>,
  rows: ReadingColumns,
): Promise<{ dropped: number[] }> {
  if (rows.length === 0) return { dropped: [] };
  const write = (part: ReadingColumns) =>
    inTransaction(db, async (trx) => {
      // Site rows first, as writeReadings and the purge take them: the upsert locks device_latest
      // rows and key-shares devices rows, the purge's cascade the other way round, so without this
      // common first lock the two could deadlock. Rows of a site purged meanwhile are dropped.
      const gone = await lockSiteIds(trx, part.siteId);
      if (gone.size === 0) {
        await upsertDeviceLatest(trx, part);
        return [];
      }
      const keep: number[] = [];
      const dropped: number[] = [];
      for (let i = 0; i < part.length; i++) (gone.has(part.siteId[i]!) ? dropped : keep).push(i);
      await upsertDeviceLatest(trx, pickRows(part, keep));
      return dropped.map((i) => part.deviceId[i]!);
    });
  try {
    return { dropped: await write(rows) };
  } catch (error) {
    // Devices deleted some other way than with their site: keep the rows whose device still exists.
    if (!isForeignKeyViolation(error)) throw error;
    const { rows: found } = await sql<{ id: number }>`
      SELECT id FROM devices WHERE id = ANY(${int4Array(rows.deviceId)}::int[])`.execute(db);
    const live = new Set(found.map((r) => r.id));
    const keep: number[] = [];
    const dropped: number[] = [];
    for (let i = 0; i < rows.length; i++) (live.has(rows.deviceId[i]!) ? keep : dropped).push(i);
    const more = await write(pickRows(rows, keep));
    return { dropped: [...dropped.map((i) => rows.deviceId[i]!), ...more] };
  }
}

async function upsertDeviceLatest(db: Kysely<Database>, rows: ReadingColumns): Promise<void> {
  if (rows.length === 0) return;
  const columns = CORE_TABLE.columns;
  const metricArrays = NUMERIC_METRICS.map(
    (_, m) =>
      sql`${floatColumn(rows.metrics[m]!, columns[m]!.type === 'real' ? 'float4' : 'float8')}::${sql.raw(columns[m]!.type)}[]`,
  );
  const kinds = new Array<string>(rows.length);
  const statuses = new Array<string | undefined>(rows.length);
  const receivedUs = new Float64Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    kinds[i] = DEVICE_KINDS[rows.kind[i]!]!;
    statuses[i] = rows.status[i]! > 0 ? DEVICE_STATUSES[rows.status[i]! - 1] : undefined;
    receivedUs[i] = rows.receivedMs[i]! * 1000;
  }
  const names = columns.map((c) => c.name);
  const values = names.map((_, i) => `c${i}`).join(', ');
  // The same instant fills in what is missing; a newer one replaces the row (src/ingest/latest-state.ts).
  const set = names
    .map(
      (n) =>
        `${n} = CASE WHEN excluded.ts = device_latest.ts THEN COALESCE(device_latest.${n}, excluded.${n}) ELSE excluded.${n} END`,
    )
    .join(',\n');
  await sql`
    INSERT INTO device_latest (device_id, site_id, kind, ts, received_at, ${sql.raw(names.join(', '))})
    SELECT d, s, k, t, rt, ${sql.raw(values)}
    FROM unnest(${int4Array(rows.siteId)}::int[], ${int4Array(rows.deviceId)}::int[],
      ${arrayLiteral(kinds)}::device_kind[], ${timestamptzArray(rows.tsUs)}::timestamptz[],
      ${timestamptzArray(receivedUs)}::timestamptz[], ${sql.join(metricArrays)},
      ${arrayLiteral(statuses)}::device_status[])
      AS u(s, d, k, t, rt, ${sql.raw(values)})
    ON CONFLICT (device_id) DO UPDATE SET
      site_id = excluded.site_id, kind = excluded.kind, ts = excluded.ts,
      received_at = GREATEST(excluded.received_at, device_latest.received_at),
      ${sql.raw(set)}
    -- >= so a retried reading still refreshes received_at; an older (backfilled) one never wins.
    WHERE excluded.ts >= device_latest.ts`.execute(db);
}

export interface GuardedWriteResult extends WriteResult {
  /**
   * Sites of the batch that no longer exist (deleted, perhaps by another replica): their records
   * were not stored, and their entries in `duplicateSamples` are 0 and mean nothing.
   */
  goneSites: ReadonlySet<number>;
}

const NO_SITES: ReadonlySet<number> = new Set();

/**
 * Takes a key-share lock on the rows of the sites the batch writes for and returns the ids that
 * no longer exist. readings has no foreign key, so this lock is what stops a purge from running
 * between "site exists" and commit: a purge (deleteSite) locks its site row FOR UPDATE first, so
 * it waits for every write transaction holding the lock, and a transaction that starts after the
 * purge finds no row. Writers' key-share locks do not conflict with each other, nor with the
 * row's ordinary updates (FOR NO KEY UPDATE), so the cost is one indexed lookup per transaction.
 */
async function lockSiteIds(trx: Kysely<Database>, siteIds: ArrayLike<number>): Promise<ReadonlySet<number>> {
  const wanted = new Set<number>();
  for (let i = 0; i < siteIds.length; i++) wanted.add(siteIds[i]!);
  const { rows } = await sql<{ id: number }>`
    SELECT id FROM sites WHERE id = ANY(${int4Array([...wanted])}::int[])
    ORDER BY id FOR KEY SHARE`.execute(trx);
  if (rows.length === wanted.size) return NO_SITES;
  for (const row of rows) wanted.delete(row.id);
  return wanted;
}

/** Runs `work` in the caller's transaction when `db` is one (a benchmark's), else in a new one. */
function inTransaction<T>(db: Kysely<Database>, work: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
  return db.isTransaction ? work(db) : db.transaction().execute(work);
}

/**
 * Stores a batch of readings in one transaction (see insertReadings), guarded against the
 * concurrent purge of any of its sites (see lockSites): readings of a site that is gone are
 * dropped and the site reported in `goneSites`; every other site's readings commit as usual.
 */
export async function writeReadings(
  db: Kysely<Database>,
  records: readonly ReadingRecord[],
): Promise<GuardedWriteResult> {
  return writeColumns(db, columnsOf(records));
}

/** writeReadings for readings in columns (the service's own path). */
export async function writeColumns(db: Kysely<Database>, cols: ReadingColumns): Promise<GuardedWriteResult> {
  if (cols.length === 0) return { duplicateSamples: new Uint32Array(0), goneSites: NO_SITES };
  return inTransaction(db, async (trx) => {
    const goneSites = await lockSiteIds(trx, cols.siteId);
    if (goneSites.size === 0) return { ...(await insertColumns(trx, cols)), goneSites };
    const live: number[] = [];
    for (let i = 0; i < cols.length; i++) if (!goneSites.has(cols.siteId[i]!)) live.push(i);
    const stored = await insertColumns(trx, pickRows(cols, live));
    const duplicateSamples = new Uint32Array(cols.length);
    for (let k = 0; k < live.length; k++) duplicateSamples[live[k]!] = stored.duplicateSamples[k]!;
    return { duplicateSamples, goneSites };
  });
}

/** Extra-metric rows of one device in [fromMs, toMs), oldest first, with only the columns it holds. */
export async function readDeviceExtras(
  db: Kysely<Database>,
  siteId: number,
  deviceId: number,
  fromMs: number,
  toMs: number,
): Promise<{ ts_us: number; extras: ExtraValues }[]> {
  const { rows } = await sql<Record<string, number | null>>`
    SELECT (extract(epoch FROM ts) * 1000000)::float8 AS ts_us, ${sql.raw(EXTRA_COLUMN_NAMES.join(', '))}
    FROM readings_extra
    WHERE site_id = ${siteId} AND device_id = ${deviceId}
      AND ts >= ${new Date(fromMs)} AND ts < ${new Date(toMs)}
    ORDER BY ts`.execute(db);
  return rows.map((row) => {
    const extras: ExtraValues = {};
    for (const name of EXTRA_COLUMN_NAMES)
      if (row[name] !== null && row[name] !== undefined) extras[name] = row[name];
    return { ts_us: row.ts_us!, extras };
  });
}

/** Readings of one device in [fromMs, toMs), oldest first. */
export async function readDeviceReadings(
  db: Kysely<Database>,
  siteId: number,
  deviceId: number,
  fromMs: number,
  toMs: number,
) {
  return db
    .selectFrom('readings')
    .selectAll()
    .where('site_id', '=', siteId)
    .where('device_id', '=', deviceId)
    .where('ts', '>=', new Date(fromMs))
    .where('ts', '<', new Date(toMs))
    .orderBy('ts')
    .execute();
}

/** Number of stored readings of a site (all of them when `siteId` is undefined). */
export async function countReadings(db: Kysely<Database>, siteId?: number): Promise<number> {
  let query = db.selectFrom('readings').select(sql<number>`count(*)::int`.as('n'));
  if (siteId !== undefined) query = query.where('site_id', '=', siteId);
  const row = await query.executeTakeFirstOrThrow();
  return row.n;
}
