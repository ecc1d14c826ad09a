import { describe, expect, it } from 'vitest';
import { coarsen, combinedRowOf, mergeDeviceHours, powerRowOf, sourceForStep } from './tiers.ts';

describe('sourceForStep', () => {
  it('reads whole hours from the hourly tier, whole minutes of a site from the minute tier', () => {
    expect(sourceForStep(7200, 'site')).toBe('1h');
    expect(sourceForStep(300, 'site')).toBe('1m');
    expect(sourceForStep(90, 'site')).toBe('raw');
    expect(sourceForStep(10, 'site')).toBe('raw');
    // A device has no minute tier: its minutes come from raw while raw is kept.
    expect(sourceForStep(300, 'device')).toBe('raw');
    expect(sourceForStep(3600, 'device')).toBe('1h');
  });
});

describe('coarsen', () => {
  const minutes = new Map([
    [0, { v: 10, src: 'meter' }],
    [60_000, { v: 30, src: 'meter' }],
    [120_000, { v: 20, src: 'devices' }],
    [300_000, { v: 5, src: 'meter' }],
  ]);
  it('combines the buckets of each step by agg; a step without buckets is absent', () => {
    expect(coarsen(minutes, 180_000, 'avg')).toEqual(
      new Map([
        [0, { v: 20, src: 'mixed' }],
        [180_000, { v: 5, src: 'meter' }],
      ]),
    );
    expect(coarsen(minutes, 180_000, 'min').get(0)!.v).toBe(10);
    expect(coarsen(minutes, 180_000, 'max').get(0)!.v).toBe(30);
    expect(coarsen(minutes, 180_000, 'last').get(0)!.v).toBe(20);
    expect(coarsen(minutes, 60_000, 'avg').has(240_000)).toBe(false);
  });
});

describe('tier rows as the rule’s inputs', () => {
  const row = {
    b: 0,
    meter_power_w_avg: 9000,
    meter_power_w_n: 2,
    asic_power_w_avg: 6000,
    asic_power_w_n: 2,
    gpu_power_w_avg: null,
    gpu_power_w_n: null,
    other_power_w_avg: 500,
    other_power_w_n: 1,
    available_power_w_avg: 12_000,
    available_power_w_n: 2,
    temp_c_avg: 130,
    temp_c_n: 2,
  };
  it('sums the device groups, never a missing one, and counts their devices', () => {
    expect(powerRowOf(row, 'avg')).toEqual({
      b: 0,
      meter_w: 9000,
      meters: 2,
      meter_available_w: 12_000,
      meters_available: 2,
      device_w: 6500,
      devices: 3,
      asic_w: 6000,
      gpu_w: null,
    });
    expect(combinedRowOf(row, 'temp_c', 'avg')).toEqual({ b: 0, sum: 130, devices: 2 });
    expect(combinedRowOf(row, 'gpu_util_pct', 'avg')).toBeUndefined();
  });
});

describe('mergeDeviceHours', () => {
  it('merges hours exactly: min of mins, Σ sum / Σ n, the latest hour’s last', () => {
    const h = 3_600_000;
    const rows = [
      { b: 0, min: 5, max: 9, sum: 70, n: 10, last: 8 },
      { b: h, min: 3, max: 7, sum: 10, n: 2, last: 4 },
    ];
    expect(mergeDeviceHours(rows, 2 * h, 'avg').get(0)).toBe(80 / 12);
    expect(mergeDeviceHours(rows, 2 * h, 'min').get(0)).toBe(3);
    expect(mergeDeviceHours(rows, 2 * h, 'max').get(0)).toBe(9);
    expect(mergeDeviceHours(rows, 2 * h, 'last').get(0)).toBe(4);
  });
});
