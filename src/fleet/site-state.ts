import type { SiteKind } from '../storage/schema.ts';
import type { SiteAggregate } from './aggregate.ts';
import { resolveThresholds, type Thresholds } from './thresholds.ts';

/** Where a power figure comes from: operators trust a meter over a sum of device estimates. */
export type DrawnSource = 'meter' | 'devices';
export type AvailableSource = 'meter' | 'capacity';

/** What one site is doing now: the input of every fleet metric and alert rule. */
export interface SiteState {
  siteId: number;
  name: string;
  kind: SiteKind;
  thresholds: Thresholds;
  capacityW: number;
  drawnW: number;
  drawnSource: DrawnSource;
  availableW: number;
  availableSource: AvailableSource;
  /** available − drawn; negative when the site draws more than it may. */
  surplusW: number;
  /** surplus as a share of available; 0 when nothing is available. */
  surplusRatio: number;
  hashrateThs: number;
  expectedHashrateThs: number;
  /** actual / expected over hashing-eligible ASICs; null when none is expected to hash. */
  hashingRatio: number | null;
  /** joules per terahash of the ASICs that hash; null when none does. */
  efficiencyJPerTh: number | null;
  gpus: { count: number; utilisationRatio: number | null; busy: number; idle: number };
  devices: { up: number; down: number; stale: number; curtailed: number; total: number };
  /** Up ASICs and GPUs with their power: what a typical device of each kind draws. */
  upDevices: { asic: { count: number; powerW: number }; gpu: { count: number; powerW: number } };
  /** (down + stale) / all compute devices, curtailed excused. 0 when the site has none. */
  devicesDownRatio: number;
  /** Power of GPUs (AI work) and ASICs (mining), fresh devices only. */
  aiPowerW: number;
  miningPowerW: number;
  /** Share of AI in AI + mining power; null when both are 0. */
  aiShareRatio: number | null;
  lastReadingMs: number | null;
  up: boolean;
}

/** Applies the site rules to one site's aggregate: power source, surplus, ratios, up/down. */
export function summariseSite(a: SiteAggregate, defaults: Thresholds, nowMs: number): SiteState {
  const thresholds = resolveThresholds(defaults, a.thresholds);
  // A meter is believed only while every meter of the site is fresh; a partial sum would under-report.
  const meterTrusted = a.meters_total > 0 && a.meters_fresh === a.meters_total && a.meter_power_w !== null;
  const devicePowerW = a.asic_power_w + a.gpu_power_w + a.other_power_w;
  const drawnW = meterTrusted ? a.meter_power_w! : devicePowerW;
  const availableFromMeter =
    meterTrusted && a.meters_with_available === a.meters_total && a.meter_available_w !== null;
  const availableW = availableFromMeter ? a.meter_available_w! : a.capacity_w;
  const surplusW = availableW - drawnW;
  const total = a.devices_up + a.devices_down + a.devices_stale + a.devices_curtailed;
  const aiAndMining = a.gpu_power_w + a.asic_power_w;
  return {
    siteId: a.site_id,
    name: a.name,
    kind: a.kind,
    thresholds,
    capacityW: a.capacity_w,
    drawnW,
    drawnSource: meterTrusted ? 'meter' : 'devices',
    availableW,
    availableSource: availableFromMeter ? 'meter' : 'capacity',
    surplusW,
    surplusRatio: availableW > 0 ? surplusW / availableW : 0,
    hashrateThs: a.hashrate_ths,
    expectedHashrateThs: a.expected_hashrate_ths,
    hashingRatio: a.expected_hashrate_ths > 0 ? a.hashrate_ths / a.expected_hashrate_ths : null,
    efficiencyJPerTh: a.hashrate_ths > 0 ? a.hashing_power_w / a.hashrate_ths : null,
    gpus: {
      count: a.gpus_fresh,
      utilisationRatio: a.gpus_with_util > 0 ? a.gpu_util_ratio_sum / a.gpus_with_util : null,
      busy: a.gpus_with_util - a.gpus_idle,
      idle: a.gpus_idle,
    },
    devices: {
      up: a.devices_up,
      down: a.devices_down,
      stale: a.devices_stale,
      curtailed: a.devices_curtailed,
      total,
    },
    upDevices: {
      asic: { count: a.asics_up, powerW: a.asics_up_power_w },
      gpu: { count: a.gpus_up, powerW: a.gpus_up_power_w },
    },
    devicesDownRatio: total > 0 ? (a.devices_down + a.devices_stale) / total : 0,
    aiPowerW: a.gpu_power_w,
    miningPowerW: a.asic_power_w,
    aiShareRatio: aiAndMining > 0 ? a.gpu_power_w / aiAndMining : null,
    lastReadingMs: a.last_received_ms,
    up: a.last_received_ms !== null && nowMs - a.last_received_ms <= thresholds.site_down_after_s * 1000,
  };
}
