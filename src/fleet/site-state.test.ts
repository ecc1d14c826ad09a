import { describe, expect, it } from 'vitest';
import type { SiteAggregate } from './aggregate.ts';
import { summariseSite } from './site-state.ts';
import { DEFAULT_THRESHOLDS } from './thresholds.ts';

const NOW = 1_800_000_000_000;
const base: SiteAggregate = {
  site_id: 1,
  name: 'alpha',
  kind: 'mixed',
  capacity_w: 10e6,
  thresholds: {},
  last_received_ms: NOW - 5_000,
  devices_up: 90,
  devices_down: 4,
  devices_stale: 2,
  devices_curtailed: 4,
  meters_total: 1,
  meters_fresh: 1,
  meter_power_w: 6e6,
  meter_available_w: 8e6,
  meters_with_available: 1,
  asic_power_w: 4e6,
  gpu_power_w: 1e6,
  other_power_w: 0,
  hashrate_ths: 180_000,
  expected_hashrate_ths: 200_000,
  hashing_power_w: 3.6e6,
  gpus_fresh: 16,
  gpus_with_util: 16,
  gpu_util_ratio_sum: 8,
  gpus_idle: 6,
  asics_up: 80,
  asics_up_power_w: 2.8e6,
  gpus_up: 10,
  gpus_up_power_w: 7e5,
};

describe('summariseSite', () => {
  it('takes power and available power from a fresh meter', () => {
    const s = summariseSite(base, DEFAULT_THRESHOLDS, NOW);
    expect(s).toMatchObject({ drawnW: 6e6, drawnSource: 'meter', availableW: 8e6, availableSource: 'meter' });
    expect(s.surplusW).toBe(2e6);
    expect(s.surplusRatio).toBe(0.25);
  });

  it('falls back to device sums and capacity when the meter is stale', () => {
    const s = summariseSite(
      { ...base, meters_fresh: 0, meter_power_w: null, meter_available_w: null, meters_with_available: 0 },
      DEFAULT_THRESHOLDS,
      NOW,
    );
    expect(s).toMatchObject({
      drawnW: 5e6,
      drawnSource: 'devices',
      availableW: 10e6,
      availableSource: 'capacity',
      surplusW: 5e6,
    });
  });

  it('does not trust a partial sum when one of two meters is stale', () => {
    const s = summariseSite({ ...base, meters_total: 2, meters_fresh: 1 }, DEFAULT_THRESHOLDS, NOW);
    expect(s.drawnSource).toBe('devices');
    expect(s.availableSource).toBe('capacity');
  });

  it('reports a negative surplus when drawing over available', () => {
    const s = summariseSite({ ...base, meter_power_w: 9e6 }, DEFAULT_THRESHOLDS, NOW);
    expect(s.surplusW).toBe(-1e6);
    expect(s.surplusRatio).toBeCloseTo(-0.125);
  });

  it('computes hashing ratio, efficiency, GPU use, device ratios and the AI share', () => {
    const s = summariseSite(base, DEFAULT_THRESHOLDS, NOW);
    expect(s.hashingRatio).toBe(0.9);
    expect(s.efficiencyJPerTh).toBe(20);
    expect(s.gpus).toEqual({ count: 16, utilisationRatio: 0.5, busy: 10, idle: 6 });
    expect(s.devices.total).toBe(100);
    expect(s.devicesDownRatio).toBe(0.06);
    expect(s.aiShareRatio).toBe(0.2);
  });

  it('is down once silent past site_down_after_s, using the site’s own override', () => {
    expect(summariseSite({ ...base, last_received_ms: NOW - 60_000 }, DEFAULT_THRESHOLDS, NOW).up).toBe(true);
    expect(summariseSite({ ...base, last_received_ms: NOW - 60_001 }, DEFAULT_THRESHOLDS, NOW).up).toBe(
      false,
    );
    expect(
      summariseSite({ ...base, thresholds: { site_down_after_s: 10 } }, DEFAULT_THRESHOLDS, NOW).up,
    ).toBe(true);
    expect(summariseSite({ ...base, last_received_ms: null }, DEFAULT_THRESHOLDS, NOW).up).toBe(false);
  });

  it('has no ratios to report for an empty site', () => {
    const empty = summariseSite(
      {
        ...base,
        devices_up: 0,
        devices_down: 0,
        devices_stale: 0,
        devices_curtailed: 0,
        expected_hashrate_ths: 0,
        hashrate_ths: 0,
        gpus_with_util: 0,
        gpu_power_w: 0,
        asic_power_w: 0,
        meters_total: 0,
      },
      DEFAULT_THRESHOLDS,
      NOW,
    );
    expect(empty).toMatchObject({
      hashingRatio: null,
      efficiencyJPerTh: null,
      aiShareRatio: null,
      devicesDownRatio: 0,
    });
    expect(empty.gpus.utilisationRatio).toBeNull();
  });
});
