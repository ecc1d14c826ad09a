import { type Kysely, sql } from 'kysely';
import { oldestPendingMs } from './rollups.ts';
import type { Database } from './schema.ts';

const DAY_MS = 86_400_000;

/** Which retention a table follows (docs/rollups.md): raw readings, site minutes, or the hourly tiers. */
export type RetentionTier = 'raw' | 'site1m' | 'hourly';

/** Days each tier is kept. */
export interface RetentionDays {
  raw: number;
  site1m: number;
  hourly: number;
}

export const DEFAULT_RETENTION: RetentionDays = { raw: 14, site1m: 90, hourly: 730 };

interface PartitionedTableSpec {
  table: string;
  per: 'day' | 'month';
  tier: RetentionTier;
}

/**
 * The partitioned tables: raw readings and their extra metrics by day; the site-minute rollup by
 * day; the hourly rollups by month (a day of them is a few thousand rows). Retention drops whole
 * partitions, each table by its tier.
 */
const TABLES: readonly PartitionedTableSpec[] = [
  { table: 'readings', per: 'day', tier: 'raw' },
  { table: 'readings_extra', per: 'day', tier: 'raw' },
  { table: 'rollup_site_1m', per: 'day', tier: 'site1m' },
  { table: 'rollup_site_1h', per: 'month', tier: 'hourly' },
  { table: 'rollup_device_1h', per: 'month', tier: 'hourly' },
];
export const PARTITIONED_TABLES = TABLES.map((t) => t.table);
/** A partitioned table's name (one of PARTITIONED_TABLES). */
type PartitionedTable = string;

/** The UTC midnight at or before `ms`. */
export function startOfUtcDay(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

function startOfUtcMonth(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

function nextPeriod(start: number, per: 'day' | 'month'): number {
  return per === 'day' ? start + DAY_MS : startOfUtcMonth(start + 32 * DAY_MS);
}

function specOf(table: string): PartitionedTableSpec {
  return TABLES.find((t) => t.table === table) ?? { table, per: 'day', tier: 'raw' };
}

/** `readings_p20261124` for the UTC day containing `ms`; a monthly table's name carries day 01. */
export function partitionName(ms: number, table: PartitionedTable = 'readings'): string {
  const per = specOf(table).per;
  const start = per === 'day' ? startOfUtcDay(ms) : startOfUtcMonth(ms);
  return `${table}_p${new Date(start).toISOString().slice(0, 10).replaceAll('-', '')}`;
}

/** The first UTC day a partition name covers, or undefined for a name that is not one of ours. */
export function partitionDay(name: string): number | undefined {
  const m = /^(.+)_p(\d{4})(\d{2})(\d{2})$/.exec(name);
  if (!m || !TABLES.some((t) => t.table === m[1])) return undefined;
  return Date.UTC(Number(m[2]), Number(m[3]) - 1, Number(m[4]));
}

/** The oldest reading time still kept: readings before it are rejected and their days dropped. */
export function retentionCutoff(nowMs: number, retentionDays: number): number {
  return nowMs - retentionDays * DAY_MS;
}

/** Every day that must have a partition: from the retention cutoff's day to `aheadDays` after today. */
export function daysToCover(nowMs: number, retentionDays: number, aheadDays: number): number[] {
  const first = startOfUtcDay(retentionCutoff(nowMs, retentionDays));
  const last = startOfUtcDay(nowMs) + aheadDays * DAY_MS;
  const days: number[] = [];
  for (let day = first; day <= last; day += DAY_MS) days.push(day);
  return days;
}

/**
 * Partitions whose whole period lies before the cutoff of `retentionDays`, and before
 * `keepFromMs` (the oldest bucket the rollup job has still to build from them, if any).
 */
export function expiredPartitions(
  names: readonly string[],
  nowMs: number,
  retentionDays: number,
  keepFromMs: number | null = null,
): string[] {
  const cutoff = Math.min(retentionCutoff(nowMs, retentionDays), keepFromMs ?? Number.POSITIVE_INFINITY);
  return names.filter((name) => {
    const start = partitionDay(name);
    if (start === undefined) return false;
    const per = specOf(name.slice(0, name.lastIndexOf('_p'))).per;
    return nextPeriod(start, per) <= cutoff;
  });
}

export interface PartitionPolicy {
  /** Raw readings' retention: nothing older is accepted, so no rollup bucket older is written. */
  retentionDays: number;
  aheadDays: number;
}

// Replicas of the service run the same maintenance; one lock keeps their DDL from colliding.
const MAINTENANCE_LOCK = sql`pg_advisory_xact_lock(7215001)`;

/** Names of the existing partitions of a partitioned table. */
export async function listPartitions(
  db: Kysely<Database>,
  table: PartitionedTable = 'readings',
): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    SELECT c.relname AS name FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = ${table}::regclass
    ORDER BY c.relname`.execute(db);
  return rows.map((r) => r.name);
}

/**
 * Creates the missing partitions of every partitioned table from the raw retention cutoff (or
 * the oldest bucket still to roll up, after an upgrade) to the days ahead; returns the names of
 * the `readings` partitions created (the others follow them).
 */
export async function ensurePartitions(
  db: Kysely<Database>,
  nowMs: number,
  policy: PartitionPolicy,
): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    await sql`SELECT ${MAINTENANCE_LOCK}`.execute(trx);
    const created: string[] = [];
    const days = daysToCover(nowMs, policy.retentionDays, policy.aheadDays);
    const pending = await oldestPendingMs(trx);
    const rollupFrom = Math.min(
      days[0]!,
      pending === null ? Number.POSITIVE_INFINITY : startOfUtcDay(pending),
    );
    const last = days.at(-1)!;
    for (const { table, per, tier } of TABLES) {
      const existing = new Set(await listPartitions(trx, table));
      const first = tier === 'raw' ? days[0]! : rollupFrom;
      for (
        let start = per === 'day' ? first : startOfUtcMonth(first);
        start <= last;
        start = nextPeriod(start, per)
      ) {
        const name = partitionName(start, table);
        if (existing.has(name)) continue;
        const from = new Date(start).toISOString();
        const to = new Date(nextPeriod(start, per)).toISOString();
        await sql`CREATE TABLE ${sql.table(name)} PARTITION OF ${sql.table(table)}
          FOR VALUES FROM (${sql.lit(from)}) TO (${sql.lit(to)})`.execute(trx);
        if (table === 'readings') created.push(name);
      }
    }
    return created;
  });
}

/**
 * Drops whole partitions past their tier's retention (never deletes rows); returns the names of
 * the `readings` partitions dropped. No partition is dropped while the rollup job still has
 * buckets to build before its end: raw data is always rolled up first (also after an upgrade).
 */
export async function dropExpiredPartitions(
  db: Kysely<Database>,
  nowMs: number,
  retention: number | Partial<RetentionDays>,
): Promise<string[]> {
  const days: RetentionDays =
    typeof retention === 'number'
      ? { ...DEFAULT_RETENTION, raw: retention }
      : { ...DEFAULT_RETENTION, ...retention };
  return db.transaction().execute(async (trx) => {
    await sql`SELECT ${MAINTENANCE_LOCK}`.execute(trx);
    const pending = await oldestPendingMs(trx);
    const dropped: string[] = [];
    for (const { table, tier } of TABLES) {
      const expired = expiredPartitions(await listPartitions(trx, table), nowMs, days[tier], pending);
      for (const name of expired) await sql`DROP TABLE ${sql.table(name)}`.execute(trx);
      if (table === 'readings') dropped.push(...expired);
    }
    return dropped;
  });
}

/** Partitions each table would drop, kept only because the rollup job has not built them yet. */
export async function partitionsAwaitingRollup(
  db: Kysely<Database>,
  nowMs: number,
  rawDays: number,
): Promise<string[]> {
  const pending = await oldestPendingMs(db);
  if (pending === null) return [];
  const names = await listPartitions(db, 'readings');
  const expired = new Set(expiredPartitions(names, nowMs, rawDays, pending));
  return expiredPartitions(names, nowMs, rawDays).filter((n) => !expired.has(n));
}
