// The shapes of the API answers the console reads (docs/read-api.md, docs/alerting.md), for the
// type checker only: the browser never loads this file.

export type SiteKind = 'mining' | 'ai' | 'mixed';
export type SiteStatus = 'up' | 'down' | 'unknown';
export type DeviceState = 'up' | 'down' | 'stale' | 'curtailed';
export type DeviceKind = 'asic' | 'gpu' | 'meter' | 'pdu' | 'other';

export interface Session {
  role: 'admin' | 'operator' | 'viewer' | 'site';
  token_name: string | null;
  site_ids: number[] | null;
}

export interface Alert {
  id: number;
  alertname: string;
  severity: string;
  state: 'pending' | 'firing' | 'resolved';
  site: { id: number; name: string; kind: SiteKind };
  value: number | null;
  threshold: number | null;
  started_at: string;
  fired_at: string | null;
  resolved_at: string | null;
  last_notified_at: string | null;
  summary: string | null;
  description: string | null;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Null until someone acknowledges the firing episode; kept once it resolves. */
  acknowledgement: Acknowledgement | null;
  /** Ids of the silences holding it now; always empty for a resolved episode. */
  silenced_by: number[];
}

export interface Acknowledgement {
  /** The named token's name, or "admin". */
  by: string;
  at: string;
  comment: string | null;
}

export interface Silence {
  id: number;
  state: 'active' | 'expired';
  /** Null: every site. */
  site: { id: number; name: string } | null;
  /** Null: every alert. */
  alertname: string | null;
  starts_at: string;
  ends_at: string;
  expired_at: string | null;
  expired_by: string | null;
  /** The earlier of `ends_at` and `expired_at`. */
  effective_ends_at: string;
  comment: string;
  created_by: string;
  created_at: string;
}

export interface SilenceList {
  silences: Silence[];
}

export interface SiteView {
  id: number;
  name: string;
  kind: SiteKind;
  status: SiteStatus;
  last_reading_at: string | null;
  drawn_power_w: number;
  drawn_power_source: string;
  available_power_w: number;
  available_power_source: string;
  capacity_w: number;
  surplus_w: number;
  surplus_ratio: number;
  hashrate_ths: number;
  expected_hashrate_ths: number;
  hashing_ratio: number | null;
  efficiency_j_per_th: number | null;
  gpu_utilisation_ratio: number | null;
  gpus: { fresh: number; busy: number; idle: number };
  ai_power_w: number;
  mining_power_w: number;
  ai_power_ratio: number | null;
  devices: { up: number; down: number; stale: number; curtailed: number; total: number };
  devices_down_ratio: number;
  firing_alerts: Alert[];
}

export interface Fleet {
  as_of: string;
  sites: SiteView[];
}

export interface SiteStatusAnswer {
  as_of: string;
  site: SiteView;
}

export interface Device {
  id: number;
  name: string;
  kind: DeviceKind;
  model: string | null;
  state: DeviceState;
  status: string | null;
  last_reading_at: string;
  measured_at: string;
  metrics: Record<string, number | null>;
}

export interface DevicePage {
  as_of: string;
  site: { id: number; name: string };
  devices: Device[];
  next_cursor: string | null;
}

export interface Series {
  metric: string;
  unit: string;
  step_s: number;
  agg: string;
  source: 'raw' | '1m' | '1h';
  points: [number, number | null][];
  power_source?: (string | null)[];
}

export interface EnergyBucket {
  start: string;
  kwh: number;
  mining_kwh: number;
  ai_kwh: number;
  other_kwh: number;
  coverage_ratio: number;
  cost: number | null;
}

export interface Energy {
  bucket: 'hour' | 'day';
  timezone: string;
  buckets: EnergyBucket[];
}

export interface AlertList {
  alerts: Alert[];
}

/** What one chart holds: the non-null points it was given, per metric. */
export interface ChartRecord {
  title: string;
  source: string | null;
  step_s: number | null;
  from_ms: number;
  to_ms: number;
  series: Record<string, [number, number][]>;
}

/** `window.__console`: what the page shows, for its end-to-end test and devtools (never the token). */
export interface ConsoleHook {
  charts: Record<string, ChartRecord>;
  /** The fleet answer the fleet page last drew. */
  fleet: Fleet | null;
  /** How many times the fleet table was drawn: a refresh that happened can be waited for. */
  fleetRenders: number;
  /** How long the last drawing of the fleet table took (the script's share, not layout). */
  fleetRenderMs: number;
}

declare global {
  interface Window {
    __console?: ConsoleHook;
  }
}
