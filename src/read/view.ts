import type { AlertView } from '../alerting/view.ts';
import { CORE_METRICS, type CoreMetricName } from '../catalog/index.ts';
import { classifyDevice, type DeviceState } from '../fleet/device-state.ts';
import type { AvailableSource, DrawnSource, SiteState } from '../fleet/site-state.ts';
import type { LatestDeviceRow } from '../storage/fleet.ts';
import type { DeviceKind, DeviceStatus, SiteKind } from '../storage/schema.ts';

/** `unknown`: the site never reported (not commissioned yet), so it is neither up nor down. */
export type SiteStatus = 'up' | 'down' | 'unknown';

/**
 * What one site is doing now, as `GET /api/v1/fleet` and `GET /api/v1/sites/:id/status` show it:
 * a SiteState (src/fleet/site-state.ts), the very values the /metrics fleet gauges report, renamed
 * for JSON with the unit in each name.
 */
export interface SiteStatusView {
  id: number;
  name: string;
  kind: SiteKind;
  status: SiteStatus;
  /** When hashwatt last received a reading from any device of the site; null when never. */
  last_reading_at: string | null;
  drawn_power_w: number;
  drawn_power_source: DrawnSource;
  available_power_w: number;
  available_power_source: AvailableSource;
  capacity_w: number;
  /** available − drawn; negative when the site draws more than it may. */
  surplus_w: number;
  surplus_ratio: number;
  hashrate_ths: number;
  expected_hashrate_ths: number;
  /** hashrate / expected; null when no ASIC is expected to hash. */
  hashing_ratio: number | null;
  /** Joules per terahash of the hashing ASICs; null when none hashes. */
  efficiency_j_per_th: number | null;
  /** Mean utilisation of the fresh GPUs that report it; null when none does. */
  gpu_utilisation_ratio: number | null;
  gpus: { fresh: number; busy: number; idle: number };
  ai_power_w: number;
  mining_power_w: number;
  /** AI share of AI + mining power; null when both are 0. */
  ai_power_ratio: number | null;
  /** Compute devices (ASIC, GPU, other) by state; meters and PDUs are not counted. */
  devices: { up: number; down: number; stale: number; curtailed: number; total: number };
  devices_down_ratio: number;
  firing_alerts: AlertView[];
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function siteStatus(state: SiteState): SiteStatus {
  if (state.lastReadingMs === null) return 'unknown';
  return state.up ? 'up' : 'down';
}

/** A site's state and its firing alerts as the read API shows them. */
export function viewSiteState(state: SiteState, firingAlerts: AlertView[]): SiteStatusView {
  return {
    id: state.siteId,
    name: state.name,
    kind: state.kind,
    status: siteStatus(state),
    last_reading_at: iso(state.lastReadingMs),
    drawn_power_w: state.drawnW,
    drawn_power_source: state.drawnSource,
    available_power_w: state.availableW,
    available_power_source: state.availableSource,
    capacity_w: state.capacityW,
    surplus_w: state.surplusW,
    surplus_ratio: state.surplusRatio,
    hashrate_ths: state.hashrateThs,
    expected_hashrate_ths: state.expectedHashrateThs,
    hashing_ratio: state.hashingRatio,
    efficiency_j_per_th: state.efficiencyJPerTh,
    gpu_utilisation_ratio: state.gpus.utilisationRatio,
    gpus: { fresh: state.gpus.count, busy: state.gpus.busy, idle: state.gpus.idle },
    ai_power_w: state.aiPowerW,
    mining_power_w: state.miningPowerW,
    ai_power_ratio: state.aiShareRatio,
    devices: { ...state.devices },
    devices_down_ratio: state.devicesDownRatio,
    firing_alerts: firingAlerts,
  };
}

/** Firing alerts by site id, each site's in the order given. */
export function groupAlertsBySite(alerts: readonly AlertView[]): Map<number, AlertView[]> {
  const bySite = new Map<number, AlertView[]>();
  for (const alert of alerts) {
    const list = bySite.get(alert.site.id);
    if (list) list.push(alert);
    else bySite.set(alert.site.id, [alert]);
  }
  return bySite;
}

/** The latest value of every core catalog metric: null when the device's latest reading lacked it. */
export type DeviceMetrics = Record<CoreMetricName, number | null>;

/** One device in `GET /api/v1/sites/:id/devices`. */
export interface DeviceView {
  id: number;
  /** The agent's name for it (external id), unique within the site. */
  name: string;
  kind: DeviceKind;
  model: string | null;
  state: DeviceState;
  status: DeviceStatus | null;
  /** When hashwatt received its latest reading (server clock): what staleness is judged by. */
  last_reading_at: string;
  /** The latest reading's own timestamp (the device's clock). */
  measured_at: string;
  metrics: DeviceMetrics;
}

/** A device row as the listing shows it, its state by classifyDevice at `nowMs`. */
export function viewLatestDevice(row: LatestDeviceRow, nowMs: number, staleAfterS: number): DeviceView {
  const receivedAtMs = row.received_at.getTime();
  return {
    id: row.device_id,
    name: row.external_id,
    kind: row.kind,
    model: row.model,
    state: classifyDevice(
      { kind: row.kind, status: row.status, hashrate_ths: row.hashrate_ths, receivedAtMs },
      nowMs,
      staleAfterS,
    ),
    status: row.status,
    last_reading_at: row.received_at.toISOString(),
    measured_at: row.ts.toISOString(),
    metrics: Object.fromEntries(CORE_METRICS.map((m) => [m.name, row[m.name]])) as DeviceMetrics,
  };
}
