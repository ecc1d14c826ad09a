import { type Kysely, sql } from 'kysely';
import { type Database, EXTRA_COLUMN_NAMES, NUMERIC_METRICS } from '../../../src/storage/schema.ts';

/**
 * What a hashwatt holds after an external client wrote to it, read the way an operator's SQL would:
 * every stored (device, instant) of a site with its metric values from `readings` and
 * `readings_extra` together, and hashwatt's own counters from `/metrics`.
 */

/** One stored (device, instant): the non-null metric values of both tables, by column name. */
export interface StoredInstant {
  readonly device: string;
  /** Epoch microseconds, exactly as stored. */
  readonly tsUs: number;
  readonly values: Record<string, number>;
  /** Rows found for this key in `readings` and in `readings_extra` (each must be 0 or 1). */
  readonly rows: { readings: number; extra: number };
}

export const instantKey = (device: string, tsUs: number) => `${device}@${tsUs}`;

/** Every stored instant of a site, keyed by instantKey(device, tsUs). */
export async function readSiteInstants(
  db: Kysely<Database>,
  siteId: number,
): Promise<Map<string, StoredInstant>> {
  const out = new Map<
    string,
    {
      device: string;
      tsUs: number;
      values: Record<string, number>;
      rows: { readings: number; extra: number };
    }
  >();
  const tables = [
    { table: 'readings', columns: NUMERIC_METRICS, rowKind: 'readings' },
    { table: 'readings_extra', columns: EXTRA_COLUMN_NAMES, rowKind: 'extra' },
  ] as const;
  for (const { table, columns, rowKind } of tables) {
    const { rows } = await sql<Record<string, number | string | null>>`
      SELECT d.external_id AS device, (extract(epoch FROM r.ts) * 1000000)::float8 AS ts_us,
             ${sql.join(columns.map((c) => sql.ref(`r.${c}`)))}
      FROM ${sql.table(table)} r JOIN devices d ON d.id = r.device_id
      WHERE r.site_id = ${siteId}`.execute(db);
    for (const row of rows) {
      const device = String(row.device);
      const tsUs = Number(row.ts_us);
      const key = instantKey(device, tsUs);
      let instant = out.get(key);
      if (!instant) {
        instant = { device, tsUs, values: {}, rows: { readings: 0, extra: 0 } };
        out.set(key, instant);
      }
      instant.rows[rowKind]++;
      for (const column of columns) {
        const value = row[column];
        if (value !== null && value !== undefined) instant.values[column] = Number(value);
      }
    }
  }
  return out;
}

/** The devices a site has registered: external id → kind and model. */
export async function readSiteDevices(
  db: Kysely<Database>,
  siteId: number,
): Promise<Map<string, { kind: string; model: string | null }>> {
  const rows = await db
    .selectFrom('devices')
    .select(['external_id', 'kind', 'model'])
    .where('site_id', '=', siteId)
    .execute();
  return new Map(rows.map((r) => [r.external_id, { kind: r.kind, model: r.model }]));
}

const SERIES_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The sum of every series of `name` on hashwatt's `/metrics` whose labels include `labels`; 0 when none. */
export async function readCounter(
  baseUrl: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const response = await fetch(`${baseUrl}/metrics`);
  if (!response.ok) throw new Error(`GET /metrics: ${response.status}`);
  let sum = 0;
  for (const line of (await response.text()).split('\n')) {
    const match = SERIES_LINE.exec(line);
    if (!match || match[1] !== name) continue;
    const have = new Map([...(match[2] ?? '').matchAll(LABEL)].map((m) => [m[1]!, m[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum += Number(match[3]);
  }
  return sum;
}
