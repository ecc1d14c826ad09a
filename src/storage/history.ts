import { type Kysely, sql } from 'kysely';
import type { Database, DeviceKind } from './schema.ts';

/** How a device's samples within one step are reduced. */
export type StepAggregation = 'avg' | 'min' | 'max' | 'last';

export interface StepWindow {
  /** First bucket start (a multiple of stepMs), inclusive. */
  fromMs: number;
  /** End, exclusive. */
  toMs: number;
  stepMs: number;
}

/** The SQL reduction of one column over a step. `last` is the value of the latest sample. */
function reduce(agg: StepAggregation, column: string) {
  const c = sql.ref(`r.${column}`);
  switch (agg) {
    case 'avg':
      return sql`avg(${c})::float8`;
    case 'min':
      return sql`min(${c})::float8`;
    case 'max':
      return sql`max(${c})::float8`;
    case 'last':
      return sql`((array_agg(${c} ORDER BY r.ts DESC) FILTER (WHERE ${c} IS NOT NULL))[1])::float8`;
  }
}

/** The bucket of a row: its step's start in epoch ms, steps aligned to multiples of stepMs. */
function bucket(stepMs: number) {
  return sql`(floor(extract(epoch FROM r.ts) * 1000 / ${stepMs}) * ${stepMs})::float8`;
}

/** One device's metric per step, oldest first; steps without a value are absent. */
export async function deviceStepSeries(
  db: Kysely<Database>,
  q: StepWindow & {
    siteId: number;
    deviceId: number;
    table: 'readings' | 'readings_extra';
    column: string;
    agg: StepAggregation;
  },
): Promise<{ b: number; v: number }[]> {
  const { rows } = await sql<{ b: number; v: number }>`
    SELECT ${bucket(q.stepMs)} AS b, ${reduce(q.agg, q.column)} AS v
    FROM ${sql.table(q.table)} r
    WHERE r.site_id = ${q.siteId} AND r.device_id = ${q.deviceId}
      AND r.ts >= ${new Date(q.fromMs)} AND r.ts < ${new Date(q.toMs)} AND ${sql.ref(`r.${q.column}`)} IS NOT NULL
    GROUP BY 1 ORDER BY 1`.execute(db);
  return rows;
}

/**
 * A site's metric per step: each device's samples reduced by `agg`, then the devices of `kinds`
 * combined (their sum, and how many had a value, so the caller can take the mean).
 */
export async function siteStepSeries(
  db: Kysely<Database>,
  q: StepWindow & { siteId: number; column: string; kinds: readonly DeviceKind[]; agg: StepAggregation },
): Promise<{ b: number; sum: number; devices: number }[]> {
  const { rows } = await sql<{ b: number; sum: number; devices: number }>`
    SELECT b, sum(v)::float8 AS sum, count(*)::int AS devices FROM (
      SELECT ${bucket(q.stepMs)} AS b, r.device_id, ${reduce(q.agg, q.column)} AS v
      FROM readings r JOIN devices d ON d.id = r.device_id
      WHERE r.site_id = ${q.siteId} AND r.ts >= ${new Date(q.fromMs)} AND r.ts < ${new Date(q.toMs)}
        AND d.kind = ANY(${`{${q.kinds.join(',')}}`}::device_kind[]) AND ${sql.ref(`r.${q.column}`)} IS NOT NULL
      GROUP BY 1, 2) per_device
    GROUP BY b ORDER BY b`.execute(db);
  return rows;
}

/** Per step, what the site's power rule needs (src/fleet/power-source.ts). */
export interface PowerStepRow {
  b: number;
  meter_w: number | null;
  meters: number;
  meter_available_w: number | null;
  meters_available: number;
  device_w: number | null;
  devices: number;
  /** ASICs' (mining) and GPUs' (AI) own power, for the energy split by workload. */
  asic_w: number | null;
  gpu_w: number | null;
}

/** A site's power inputs per step: meters' and devices' power, each device reduced by `agg` first. */
export async function sitePowerSteps(
  db: Kysely<Database>,
  q: StepWindow & { siteId: number; agg: StepAggregation },
): Promise<PowerStepRow[]> {
  const { rows } = await sql<PowerStepRow>`
    SELECT b,
      sum(p) FILTER (WHERE kind = 'meter')::float8 AS meter_w,
      count(p) FILTER (WHERE kind = 'meter')::int AS meters,
      sum(av) FILTER (WHERE kind = 'meter')::float8 AS meter_available_w,
      count(av) FILTER (WHERE kind = 'meter')::int AS meters_available,
      sum(p) FILTER (WHERE kind IN ('asic', 'gpu', 'other'))::float8 AS device_w,
      count(p) FILTER (WHERE kind IN ('asic', 'gpu', 'other'))::int AS devices,
      sum(p) FILTER (WHERE kind = 'asic')::float8 AS asic_w,
      sum(p) FILTER (WHERE kind = 'gpu')::float8 AS gpu_w
    FROM (
      SELECT ${bucket(q.stepMs)} AS b, r.device_id, d.kind,
        ${reduce(q.agg, 'power_w')} AS p, ${reduce(q.agg, 'available_power_w')} AS av
      FROM readings r JOIN devices d ON d.id = r.device_id
      WHERE r.site_id = ${q.siteId} AND r.ts >= ${new Date(q.fromMs)} AND r.ts < ${new Date(q.toMs)}
        AND (r.power_w IS NOT NULL OR r.available_power_w IS NOT NULL)
      GROUP BY 1, 2, 3) per_device
    GROUP BY b ORDER BY b`.execute(db);
  return rows;
}

/** How many meters a site has (registered devices of kind meter). */
export async function countSiteMeters(db: Kysely<Database>, siteId: number): Promise<number> {
  const row = await db
    .selectFrom('devices')
    .select(sql<number>`count(*)::int`.as('n'))
    .where('site_id', '=', siteId)
    .where('kind', '=', 'meter')
    .executeTakeFirstOrThrow();
  return row.n;
}

/** A device of a site by id or by its name (external id). */
export async function findSiteDevice(
  db: Kysely<Database>,
  siteId: number,
  ref: { id: number } | { name: string },
): Promise<{ id: number; external_id: string; kind: DeviceKind } | undefined> {
  let query = db.selectFrom('devices').select(['id', 'external_id', 'kind']).where('site_id', '=', siteId);
  query = 'id' in ref ? query.where('id', '=', ref.id) : query.where('external_id', '=', ref.name);
  return query.executeTakeFirst();
}

/** The mean power price a site's meters pushed per step (`power_price_per_mwh`), where they did. */
export async function sitePriceSteps(
  db: Kysely<Database>,
  q: StepWindow & { siteId: number },
): Promise<{ b: number; price: number }[]> {
  const { rows } = await sql<{ b: number; price: number }>`
    SELECT ${bucket(q.stepMs)} AS b, avg(r.power_price_per_mwh)::float8 AS price
    FROM readings_extra r
    WHERE r.site_id = ${q.siteId} AND r.ts >= ${new Date(q.fromMs)} AND r.ts < ${new Date(q.toMs)}
      AND r.power_price_per_mwh IS NOT NULL
    GROUP BY 1 ORDER BY 1`.execute(db);
  return rows;
}
