import type { DeviceGroup, FleetSite } from '../storage/fleet.ts';
import type { DeviceKind } from '../storage/schema.ts';
import { COMPUTE_KINDS } from './device-state.ts';

/** Per-site sums over the latest state of its devices: what summariseSite turns into a SiteState. */
export interface SiteAggregate extends FleetSite {
  /** Latest contact from any device of the site (epoch ms), null when none ever reported. */
  last_received_ms: number | null;
  devices_up: number;
  devices_down: number;
  devices_stale: number;
  devices_curtailed: number;
  meters_total: number;
  meters_fresh: number;
  /** Sums over fresh meters; null when no meter is fresh. */
  meter_power_w: number | null;
  meter_available_w: number | null;
  meters_with_available: number;
  /** Power of fresh devices by kind. */
  asic_power_w: number;
  gpu_power_w: number;
  other_power_w: number;
  /** Over fresh, not curtailed ASICs. */
  hashrate_ths: number;
  expected_hashrate_ths: number;
  hashing_power_w: number;
  gpus_fresh: number;
  gpus_with_util: number;
  gpu_util_ratio_sum: number;
  gpus_idle: number;
  /** Up devices of the two workload kinds and their power: the site's typical device. */
  asics_up: number;
  asics_up_power_w: number;
  gpus_up: number;
  gpus_up_power_w: number;
}

function emptyAggregate(site: FleetSite): SiteAggregate {
  return {
    ...site,
    last_received_ms: null,
    devices_up: 0,
    devices_down: 0,
    devices_stale: 0,
    devices_curtailed: 0,
    meters_total: 0,
    meters_fresh: 0,
    meter_power_w: null,
    meter_available_w: null,
    meters_with_available: 0,
    asic_power_w: 0,
    gpu_power_w: 0,
    other_power_w: 0,
    hashrate_ths: 0,
    expected_hashrate_ths: 0,
    hashing_power_w: 0,
    gpus_fresh: 0,
    gpus_with_util: 0,
    gpu_util_ratio_sum: 0,
    gpus_idle: 0,
    asics_up: 0,
    asics_up_power_w: 0,
    gpus_up: 0,
    gpus_up_power_w: 0,
  };
}

const POWER_FIELD: Partial<Record<DeviceKind, 'asic_power_w' | 'gpu_power_w' | 'other_power_w'>> = {
  asic: 'asic_power_w',
  gpu: 'gpu_power_w',
  other: 'other_power_w',
};

/** Folds the (site, kind, state, fresh) groups into one aggregate per site; sites without devices included. */
export function foldDeviceGroups(
  sites: readonly FleetSite[],
  groups: readonly DeviceGroup[],
): SiteAggregate[] {
  const bySite = new Map(sites.map((s) => [s.site_id, emptyAggregate(s)]));
  for (const g of groups) {
    const a = bySite.get(g.site_id);
    if (!a) continue; // a site deleted between the two reads
    a.last_received_ms = Math.max(a.last_received_ms ?? g.last_received_ms, g.last_received_ms);
    if (COMPUTE_KINDS.includes(g.kind)) {
      const counter = `devices_${g.state}` as const;
      a[counter] += g.devices;
    }
    if (g.kind === 'meter') {
      a.meters_total += g.devices;
      if (g.fresh) {
        a.meters_fresh += g.devices;
        a.meter_power_w = (a.meter_power_w ?? 0) + g.power_w;
        if (g.with_available > 0)
          a.meter_available_w = (a.meter_available_w ?? 0) + (g.available_power_w ?? 0);
        a.meters_with_available += g.with_available;
      }
      continue;
    }
    if (!g.fresh) continue;
    const power = POWER_FIELD[g.kind];
    if (power) a[power] += g.power_w;
    if (g.state === 'up' && g.kind === 'asic') {
      a.asics_up += g.devices;
      a.asics_up_power_w += g.power_w;
    }
    if (g.state === 'up' && g.kind === 'gpu') {
      a.gpus_up += g.devices;
      a.gpus_up_power_w += g.power_w;
    }
    if (g.kind === 'asic' && g.state !== 'curtailed') {
      a.hashrate_ths += g.hashrate_ths;
      a.expected_hashrate_ths += g.expected_hashrate_ths;
      a.hashing_power_w += g.hashing_power_w;
    }
    if (g.kind === 'gpu') {
      a.gpus_fresh += g.devices;
      a.gpus_with_util += g.with_util;
      a.gpu_util_ratio_sum += g.util_ratio_sum;
      a.gpus_idle += g.util_idle;
    }
  }
  return [...bySite.values()];
}
