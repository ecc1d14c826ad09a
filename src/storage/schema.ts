import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

export const SITE_KINDS = ['mining', 'ai', 'mixed'] as const;
export type SiteKind = (typeof SITE_KINDS)[number];

export const DEVICE_KINDS = ['asic', 'gpu', 'meter', 'pdu', 'other'] as const;
export type DeviceKind = (typeof DEVICE_KINDS)[number];

export const DEVICE_STATUSES = ['ok', 'curtailed', 'idle', 'error', 'offline'] as const;
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];

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

/** The metric columns a reading may carry; shared by `readings` and `device_latest`. */
export interface ReadingMetrics {
  power_w: number | null;
  hashrate_ths: number | null;
  expected_hashrate_ths: number | null;
  temp_c: number | null;
  fan_rpm: number | null;
  gpu_util_pct: number | null;
  gpu_mem_used_bytes: number | null;
  available_power_w: number | null;
  status: DeviceStatus | null;
}

/** The numeric metric columns, in the order the write statements list them. */
export const NUMERIC_METRICS = [
  'power_w',
  'hashrate_ths',
  'expected_hashrate_ths',
  'temp_c',
  'fan_rpm',
  'gpu_util_pct',
  'gpu_mem_used_bytes',
  'available_power_w',
] as const satisfies readonly (keyof ReadingMetrics)[];

/** Every metric a reading may carry: the numeric ones and the device status. */
export const READING_METRICS = [
  ...NUMERIC_METRICS,
  'status',
] as const satisfies readonly (keyof ReadingMetrics)[];

export interface ReadingsTable extends ReadingMetrics {
  site_id: number;
  device_id: number;
  ts: Timestamp;
}

export interface DeviceLatestTable extends ReadingMetrics {
  device_id: number;
  site_id: number;
  kind: DeviceKind;
  ts: Timestamp;
  received_at: Timestamp;
}

/** The one database interface; only files under src/storage import Kysely. */
export interface Database {
  sites: SitesTable;
  devices: DevicesTable;
  readings: ReadingsTable;
  device_latest: DeviceLatestTable;
}

export type SiteRow = Selectable<SitesTable>;
export type NewSite = Insertable<SitesTable>;
export type DeviceRow = Selectable<DevicesTable>;
export type ReadingRow = Selectable<ReadingsTable>;
export type DeviceLatestRow = Selectable<DeviceLatestTable>;
