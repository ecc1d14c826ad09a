import { type Kysely, sql } from 'kysely';
import { isForeignKeyViolation } from './errors.ts';
import { type Database, type DeviceKind, NUMERIC_METRICS, type ReadingMetrics } from './schema.ts';

/** A validated reading resolved to its site and device ids, ready to store. */
export interface ReadingRecord extends Partial<ReadingMetrics> {
  site_id: number;
  device_id: number;
  /** The registered kind of the device (not stored per reading; carried into the latest state). */
  kind: DeviceKind;
  /** Reading time, epoch milliseconds. */
  ts_ms: number;
  /** When hashwatt received it, epoch milliseconds (kept in the latest state, not per reading). */
  received_ms: number;
}

export interface WriteResult {
  /** Readings newly stored. */
  inserted: number;
  /** For each input reading, true when the same (site, device, ts) was already stored (or came earlier in the batch). */
  duplicate: boolean[];
}

/**
 * Postgres array literal built by hand: pg's generic array serialiser costs about as much Node CPU
 * as everything else on the write path together (docs/storage.md). Values are numbers we validated
 * or enum labels, so nothing needs quoting. A column with no value at all (GPU metrics in a batch of
 * ASICs) is sent as SQL NULL: a multi-argument unnest() pads it with NULLs, so neither side spends
 * time on a literal of thousands of NULLs.
 */
function numberArrayLiteral(values: ArrayLike<number | null | undefined>): string | null {
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
  return numberArrayLiteral(values) ?? '{}';
}

/** For enum labels (status, kind): plain identifiers, so no quoting either; all-NULL as above. */
function labelArrayLiteral(values: ArrayLike<string | null | undefined>): string | null {
  let out = '{';
  let present = false;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ',';
    if (v === null || v === undefined) out += 'NULL';
    else {
      out += v;
      present = true;
    }
  }
  return present ? `${out}}` : null;
}

function column<K extends keyof ReadingRecord>(
  records: readonly ReadingRecord[],
  key: K,
): ReadingRecord[K][] {
  const values = new Array<ReadingRecord[K]>(records.length);
  for (let i = 0; i < records.length; i++) values[i] = records[i]![key];
  return values;
}

/**
 * The unnest() arguments for a set of records, in the column order the insert statements use.
 * Timestamps travel as epoch milliseconds and are converted in SQL; to_timestamp() rounds to the
 * microsecond, so milliseconds round-trip exactly.
 */
function unnestArguments(records: readonly ReadingRecord[]) {
  return {
    siteId: keyArrayLiteral(column(records, 'site_id')),
    deviceId: keyArrayLiteral(column(records, 'device_id')),
    tsMs: keyArrayLiteral(column(records, 'ts_ms')),
    metrics: NUMERIC_METRICS.map((name) => numberArrayLiteral(column(records, name))),
    status: labelArrayLiteral(column(records, 'status')),
    kind: labelArrayLiteral(column(records, 'kind')),
  };
}

/**
 * Stores a batch of readings in the caller's transaction. Rows whose (site, device, ts) already
 * exists are skipped and reported as duplicates, which makes a retried batch idempotent.
 *
 * The insert reports only a count: RETURNING every row cost ~30 % of the write rate
 * (docs/performance.md). Only when the count falls short (a retry) does a second statement find
 * which of the batch's rows this transaction inserted, by their xmin.
 */
export async function insertReadings(
  trx: Kysely<Database>,
  records: readonly ReadingRecord[],
): Promise<WriteResult> {
  if (records.length === 0) return { inserted: 0, duplicate: [] };
  const a = unnestArguments(inKeyOrder(records));
  const [power, hashrate, expected, temp, fan, util, mem, available] = a.metrics;
  const result = await sql`
    INSERT INTO readings (site_id, device_id, ts, power_w, hashrate_ths, expected_hashrate_ths, temp_c,
      fan_rpm, gpu_util_pct, gpu_mem_used_bytes, available_power_w, status)
    SELECT s, d, to_timestamp(t / 1000.0), p, h, e, tc, f, u, m, av, st
    FROM unnest(${a.siteId}::int[], ${a.deviceId}::int[], ${a.tsMs}::float8[], ${power}::float8[],
      ${hashrate}::float8[], ${expected}::float8[], ${temp}::real[], ${fan}::real[], ${util}::real[],
      ${mem}::float8[], ${available}::float8[], ${a.status}::device_status[])
      AS u(s, d, t, p, h, e, tc, f, u, m, av, st)
    ON CONFLICT DO NOTHING`.execute(trx);
  const inserted = Number(result.numAffectedRows ?? 0n);
  if (inserted === records.length)
    return { inserted, duplicate: new Array<boolean>(records.length).fill(false) };
  const { rows } = await sql<{ device_id: number; ts_ms: number }>`
    SELECT r.device_id, (extract(epoch FROM r.ts) * 1000)::float8 AS ts_ms
    FROM readings r
    JOIN unnest(${a.siteId}::int[], ${a.deviceId}::int[], ${a.tsMs}::float8[]) AS u(s, d, t)
      ON r.site_id = u.s AND r.ts = to_timestamp(u.t / 1000.0) AND r.device_id = u.d
    WHERE r.xmin = pg_current_xact_id()::xid`.execute(trx);
  return { inserted, duplicate: markDuplicates(records, rows) };
}

/**
 * The records in primary-key order (site, ts, device). Concurrent transactions inserting overlapping
 * keys then wait on each other in the same order instead of deadlocking, and index pages are
 * touched in sequence, which is also faster (docs/storage.md).
 */
function inKeyOrder(records: readonly ReadingRecord[]): ReadingRecord[] {
  return [...records].sort((x, y) => x.site_id - y.site_id || x.ts_ms - y.ts_ms || x.device_id - y.device_id);
}

/**
 * Which input rows were not inserted. The first occurrence of a key inside the batch is the one
 * Postgres stores, so later repeats in the same batch count as duplicates too.
 */
export function markDuplicates(
  records: readonly ReadingRecord[],
  inserted: readonly { device_id: number; ts_ms: number }[],
): boolean[] {
  const fresh = new Set<string>();
  for (const row of inserted) fresh.add(`${row.device_id}:${row.ts_ms}`);
  return records.map((r) => {
    const key = `${r.device_id}:${r.ts_ms}`;
    if (fresh.has(key)) {
      fresh.delete(key);
      return false;
    }
    return true;
  });
}

/**
 * Moves devices' latest state forward, one row per device, never back to an older reading. Callers
 * pass at most one record per device (the newest); rows are locked in device order so concurrent
 * writers (other replicas) wait on each other instead of deadlocking. Rows of devices deleted
 * meanwhile (their site was deleted, perhaps by another replica) are dropped, not retried forever.
 */
export async function updateDeviceLatest(
  db: Kysely<Database>,
  latest: readonly ReadingRecord[],
): Promise<void> {
  if (latest.length === 0) return;
  const sorted = [...latest].sort((x, y) => x.device_id - y.device_id);
  const write = (rows: readonly ReadingRecord[]) =>
    inTransaction(db, async (trx) => {
      // Site rows first, as writeReadings and the purge take them: the upsert locks device_latest
      // rows and key-shares devices rows, the purge's cascade the other way round, so without this
      // common first lock the two could deadlock. Rows of a site purged meanwhile are dropped.
      const gone = await lockSites(trx, rows);
      await upsertDeviceLatest(trx, gone.size === 0 ? rows : rows.filter((r) => !gone.has(r.site_id)));
    });
  try {
    await write(sorted);
  } catch (error) {
    // Devices deleted some other way than with their site: keep the rows whose device still exists.
    if (!isForeignKeyViolation(error)) throw error;
    const { rows } = await sql<{ id: number }>`
      SELECT id FROM devices WHERE id = ANY(${keyArrayLiteral(column(sorted, 'device_id'))}::int[])`.execute(
      db,
    );
    const live = new Set(rows.map((r) => r.id));
    await write(sorted.filter((r) => live.has(r.device_id)));
  }
}

async function upsertDeviceLatest(db: Kysely<Database>, sorted: readonly ReadingRecord[]): Promise<void> {
  if (sorted.length === 0) return;
  const a = unnestArguments(sorted);
  const receivedMs = keyArrayLiteral(column(sorted, 'received_ms'));
  const [power, hashrate, expected, temp, fan, util, mem, available] = a.metrics;
  await sql`
    INSERT INTO device_latest (device_id, site_id, kind, ts, received_at, power_w, hashrate_ths,
      expected_hashrate_ths, temp_c, fan_rpm, gpu_util_pct, gpu_mem_used_bytes, available_power_w, status)
    SELECT d, s, k, to_timestamp(t / 1000.0), to_timestamp(rt / 1000.0), p, h, e, tc, f, u, m, av, st
    FROM unnest(${a.siteId}::int[], ${a.deviceId}::int[], ${a.kind}::device_kind[], ${a.tsMs}::float8[],
      ${receivedMs}::float8[], ${power}::float8[], ${hashrate}::float8[], ${expected}::float8[],
      ${temp}::real[], ${fan}::real[], ${util}::real[], ${mem}::float8[], ${available}::float8[],
      ${a.status}::device_status[])
      AS u(s, d, k, t, rt, p, h, e, tc, f, u, m, av, st)
    ON CONFLICT (device_id) DO UPDATE SET
      site_id = excluded.site_id, kind = excluded.kind, ts = excluded.ts,
      received_at = GREATEST(excluded.received_at, device_latest.received_at),
      power_w = excluded.power_w, hashrate_ths = excluded.hashrate_ths,
      expected_hashrate_ths = excluded.expected_hashrate_ths, temp_c = excluded.temp_c,
      fan_rpm = excluded.fan_rpm, gpu_util_pct = excluded.gpu_util_pct,
      gpu_mem_used_bytes = excluded.gpu_mem_used_bytes, available_power_w = excluded.available_power_w,
      status = excluded.status
    -- >= so a retried reading still refreshes received_at; an older (backfilled) one never wins.
    WHERE excluded.ts >= device_latest.ts`.execute(db);
}

export interface GuardedWriteResult extends WriteResult {
  /**
   * Sites of the batch that no longer exist (deleted, perhaps by another replica): their records
   * were not stored, and their entries in `duplicate` are false and mean nothing.
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
async function lockSites(
  trx: Kysely<Database>,
  records: readonly ReadingRecord[],
): Promise<ReadonlySet<number>> {
  const wanted = new Set<number>();
  for (let i = 0; i < records.length; i++) wanted.add(records[i]!.site_id);
  const { rows } = await sql<{ id: number }>`
    SELECT id FROM sites WHERE id = ANY(${keyArrayLiteral([...wanted])}::int[])
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
  if (records.length === 0) return { inserted: 0, duplicate: [], goneSites: NO_SITES };
  return inTransaction(db, async (trx) => {
    const goneSites = await lockSites(trx, records);
    if (goneSites.size === 0) return { ...(await insertReadings(trx, records)), goneSites };
    const live = records.filter((r) => !goneSites.has(r.site_id));
    const stored = await insertReadings(trx, live);
    const duplicate = new Array<boolean>(records.length).fill(false);
    for (let i = 0, k = 0; i < records.length; i++) {
      if (!goneSites.has(records[i]!.site_id)) duplicate[i] = stored.duplicate[k++]!;
    }
    return { inserted: stored.inserted, duplicate, goneSites };
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
