import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';
import {
  CORE_METRICS,
  type CoreMetricName,
  DEVICE_KINDS,
  DEVICE_STATUSES,
  type DeviceKind,
  type DeviceStatus,
  EXTRA_COLUMNS,
  SITE_KINDS,
  type SiteKind,
} from '../catalog/index.ts';

// The vocabulary is the domain's (src/catalog/); storage maps it to tables and columns.
export { DEVICE_KINDS, DEVICE_STATUSES, type DeviceKind, type DeviceStatus, SITE_KINDS, type SiteKind };

type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** A timestamp the database fills in by default. */
type DefaultedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
/** jsonb: objects out, JSON text in (both drivers pass text through to the jsonb input function). */
type Json = ColumnType<Record<string, unknown>, string | undefined, string>;

export interface SitesTable {
  id: Generated<number>;
  name: string;
  kind: SiteKind;
  capacity_w: number;
  region: string | null;
  timezone: string | null;
  metadata: Json;
  thresholds: Json;
  token_hash: Buffer | Uint8Array;
  created_at: DefaultedTimestamp;
  updated_at: DefaultedTimestamp;
}

export interface DevicesTable {
  id: Generated<number>;
  site_id: number;
  external_id: string;
  kind: DeviceKind;
  model: string | null;
  first_seen: DefaultedTimestamp;
}

/** The metric columns a reading may carry: one per core catalog metric, and the status. */
export type ReadingMetrics = { [K in CoreMetricName]: number | null } & { status: DeviceStatus | null };

/** The numeric metric columns, in the order the write statements list them: the catalog's order. */
export const NUMERIC_METRICS: readonly CoreMetricName[] = CORE_METRICS.map((m) => m.name);

/** Every metric a reading may carry: the numeric ones and the device status. */
export const READING_METRICS: readonly (keyof ReadingMetrics)[] = [...NUMERIC_METRICS, 'status'];

export interface ReadingsTable extends ReadingMetrics {
  site_id: number;
  device_id: number;
  ts: Timestamp;
}

/**
 * Values of extra metrics by `readings_extra` column (`chip_temp_c_0`, `gpu_xid_last`): only the
 * columns a reading carries are present.
 */
export type ExtraValues = Record<string, number>;

/** The `readings_extra` columns, in the order the write statements list them: the catalog's order. */
export const EXTRA_COLUMN_NAMES: readonly string[] = EXTRA_COLUMNS.map((c) => c.column);

/** `readings_extra`: the key of `readings`, then one float8 column per extra catalog column. */
export interface ReadingsExtraTable {
  site_id: number;
  device_id: number;
  ts: Timestamp;
  [column: string]: number | null | Timestamp;
}

export interface DeviceLatestTable extends ReadingMetrics {
  device_id: number;
  site_id: number;
  kind: DeviceKind;
  ts: Timestamp;
  received_at: Timestamp;
}

/** `operator` came with migrations/2026-12-02T01-00-alert-ack-silence.ts: reads, acknowledges, silences. */
export const API_TOKEN_ROLES = ['viewer', 'operator'] as const;
export type ApiTokenRole = (typeof API_TOKEN_ROLES)[number];

export interface ApiTokensTable {
  id: Generated<number>;
  name: string;
  role: ApiTokenRole;
  /** The sites it may read; null = every site. */
  site_ids: number[] | null;
  token_hash: Buffer | Uint8Array;
  created_at: DefaultedTimestamp;
  last_used_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  revoked_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

/** The one database interface; only files under src/storage import Kysely. */
export interface Database {
  sites: SitesTable;
  devices: DevicesTable;
  readings: ReadingsTable;
  readings_extra: ReadingsExtraTable;
  device_latest: DeviceLatestTable;
  api_tokens: ApiTokensTable;
}

export type SiteRow = Selectable<SitesTable>;
export type NewSite = Insertable<SitesTable>;
export type DeviceRow = Selectable<DevicesTable>;
export type ReadingRow = Selectable<ReadingsTable>;
export type DeviceLatestRow = Selectable<DeviceLatestTable>;
export type ApiTokenRow = Selectable<ApiTokensTable>;
