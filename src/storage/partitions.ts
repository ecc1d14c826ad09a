import { type Kysely, sql } from 'kysely';
import type { Database } from './schema.ts';

const DAY_MS = 86_400_000;

/**
 * The tables partitioned by day, each with its own partitions of the same days: the core readings
 * and the extra metrics (migrations/2026-12-01T00-00-extra-metrics.ts). Retention drops both alike.
 */
export const PARTITIONED_TABLES = ['readings', 'readings_extra'] as const;
export type PartitionedTable = (typeof PARTITIONED_TABLES)[number];
const PARTITION_NAME = /^(readings|readings_extra)_p(\d{4})(\d{2})(\d{2})$/;

/** The UTC midnight at or before `ms`. */
export function startOfUtcDay(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/** `readings_p20261124` (or `readings_extra_p20261124`) for the UTC day containing `ms`. */
export function partitionName(ms: number, table: PartitionedTable = 'readings'): string {
  return `${table}_p${new Date(startOfUtcDay(ms)).toISOString().slice(0, 10).replaceAll('-', '')}`;
}

/** The UTC day a partition name covers, or undefined for a name that is not one of ours. */
export function partitionDay(name: string): number | undefined {
  const m = PARTITION_NAME.exec(name);
  return m ? Date.UTC(Number(m[2]), Number(m[3]) - 1, Number(m[4])) : undefined;
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

/** Partitions whose whole day lies before the retention cutoff. */
export function expiredPartitions(names: readonly string[], nowMs: number, retentionDays: number): string[] {
  const cutoff = retentionCutoff(nowMs, retentionDays);
  return names.filter((name) => {
    const day = partitionDay(name);
    return day !== undefined && day + DAY_MS <= cutoff;
  });
}

export interface PartitionPolicy {
  retentionDays: number;
  aheadDays: number;
}

// Replicas of the service run the same maintenance; one lock keeps their DDL from colliding.
const MAINTENANCE_LOCK = sql`pg_advisory_xact_lock(7215001)`;

/** Names of the existing partitions of `readings` (or of another partitioned table). */
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
 * Creates the missing daily partitions of every partitioned table for the retention window and the
 * days ahead; returns the names of the `readings` partitions created (the others follow them).
 */
export async function ensurePartitions(
  db: Kysely<Database>,
  nowMs: number,
  policy: PartitionPolicy,
): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    await sql`SELECT ${MAINTENANCE_LOCK}`.execute(trx);
    const created: string[] = [];
    for (const table of PARTITIONED_TABLES) {
      const existing = new Set(await listPartitions(trx, table));
      for (const day of daysToCover(nowMs, policy.retentionDays, policy.aheadDays)) {
        const name = partitionName(day, table);
        if (existing.has(name)) continue;
        const from = new Date(day).toISOString();
        const to = new Date(day + DAY_MS).toISOString();
        await sql`CREATE TABLE ${sql.table(name)} PARTITION OF ${sql.table(table)}
          FOR VALUES FROM (${sql.lit(from)}) TO (${sql.lit(to)})`.execute(trx);
        if (table === 'readings') created.push(name);
      }
    }
    return created;
  });
}

/** Drops whole partitions older than the retention window (never deletes rows); returns their names. */
export async function dropExpiredPartitions(
  db: Kysely<Database>,
  nowMs: number,
  retentionDays: number,
): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    await sql`SELECT ${MAINTENANCE_LOCK}`.execute(trx);
    const dropped: string[] = [];
    for (const table of PARTITIONED_TABLES) {
      const expired = expiredPartitions(await listPartitions(trx, table), nowMs, retentionDays);
      for (const name of expired) await sql`DROP TABLE ${sql.table(name)}`.execute(trx);
      if (table === 'readings') dropped.push(...expired);
    }
    return dropped;
  });
}
