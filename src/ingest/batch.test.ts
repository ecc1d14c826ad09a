import { describe, expect, it } from 'vitest';
import type { DecodedSample } from '../protocols/index.ts';
import { jsonBatch, sampleBatch } from './batch.ts';

const NOW = Date.UTC(2026, 11, 1, 12);
const window = { nowMs: NOW, oldestMs: NOW - 30 * 86_400_000 };
const TS_US = (NOW - 10_000) * 1000 + 5;

const sample = (metric: string, value: number, extra: Partial<DecodedSample> = {}): DecodedSample => ({
  device: 'node-1/gpu0',
  kind: 'gpu',
  metric,
  tsMs: Math.floor(TS_US / 1000),
  tsUs: TS_US,
  value,
  ...extra,
});

describe('sampleBatch', () => {
  it('groups samples into one reading per device and instant, core and extra metrics apart', () => {
    const batch = sampleBatch([
      sample('power_w', 300),
      sample('gpu_util_pct', 97),
      sample('gpu_ecc_errors_total', 2, { index: 'dbe_volatile' }),
      sample('power_w', 120, { device: 'node-1/gpu1' }),
    ]);
    expect(batch.size).toBe(2);
    const { valid, rejected } = batch.check(window);
    expect(rejected).toEqual([]);
    expect(valid).toEqual([
      {
        index: 0,
        device: 'node-1/gpu0',
        kind: 'gpu',
        model: undefined,
        tsUs: TS_US,
        power_w: 300,
        gpu_util_pct: 97,
        extras: { gpu_ecc_errors_total_dbe_volatile: 2 },
      },
      { index: 3, device: 'node-1/gpu1', kind: 'gpu', model: undefined, tsUs: TS_US, power_w: 120 },
    ]);
  });

  it('rejects a bad sample by its index and metric, keeping the device’s other samples', () => {
    const { valid, rejected } = sampleBatch([
      sample('power_w', 300),
      sample('gpu_util_pct', 250),
      sample('chip_temp_c', 70, { index: '9' }),
      sample('chip_temp_c', 70),
      sample('temp_c', 60, { index: '0' }),
      sample('power_w', -1, { device: 'asic-1', kind: 'asic' }),
    ]).check(window);
    expect(valid.map((r) => [r.device, r.power_w])).toEqual([['node-1/gpu0', 300]]);
    expect(rejected.map((r) => [r.index, r.field, r.code])).toEqual([
      [1, 'gpu_util_pct', 'out_of_range'],
      [2, 'chip_temp_c.9', 'unknown_index'],
      [3, 'chip_temp_c', 'index_required'],
      [4, 'temp_c.0', 'unknown_index'],
      [5, 'power_w', 'sentinel_value'],
    ]);
    expect(rejected[0]!.message).toMatch(/node-1\/gpu0 gpu_util_pct at 2026-12-01T11:59:50/);
  });

  it('rejects every sample of an instant outside the window', () => {
    const old = (NOW - 31 * 86_400_000) * 1000;
    const { valid, rejected } = sampleBatch([
      sample('power_w', 1, { tsUs: old }),
      sample('temp_c', 1, { tsUs: old }),
    ]).check(window);
    expect(valid).toEqual([]);
    expect(rejected.map((r) => r.code)).toEqual(['timestamp_too_old', 'timestamp_too_old']);
  });
});

describe('jsonBatch', () => {
  it('validates hashwatt’s own readings with their extras', () => {
    const { valid, rejected } = jsonBatch([
      {
        device: 'a',
        kind: 'asic',
        ts: NOW,
        power_w: 1,
        extras: { chip_temp_c: { '0': 70.5 }, hardware_errors_total: 3 },
      },
      { device: 'b', kind: 'asic', ts: NOW, extras: { chip_temp_c: 70 } },
      { device: 'c', kind: 'asic', ts: NOW, extras: { fan_speed_rpm: { '8': 5000 } } },
      { device: 'd', kind: 'asic', ts: NOW, extras: { no_such_metric: 1 } },
      { device: 'e', kind: 'asic', ts: NOW, extras: { shares_accepted_total: '12' } },
      { device: 'f', kind: 'asic', ts: NOW, extras: [] },
    ]).check(window);
    expect(valid).toHaveLength(1);
    expect(valid[0]!.extras).toEqual({ chip_temp_c_0: 70.5, hardware_errors_total: 3 });
    expect(rejected.map((r) => [r.index, r.field, r.code])).toEqual([
      [1, 'extras.chip_temp_c', 'index_required'],
      [2, 'extras.fan_speed_rpm.8', 'unknown_index'],
      [3, 'extras.no_such_metric', 'unknown_metric'],
      [4, 'extras.shares_accepted_total', 'invalid_type'],
      [5, 'extras', 'invalid_type'],
    ]);
  });
});

describe('a batch is checked once', () => {
  // The check lets go of the decoded body, so the request holds only its readings until the commit.
  it.each([
    ['sampleBatch', () => sampleBatch([sample('power_w', 300)])],
    ['jsonBatch', () => jsonBatch([{ device: 'm1', ts: new Date(NOW - 1000).toISOString(), power_w: 1 }])],
  ])('%s refuses a second check', (_, make) => {
    const batch = make();
    expect(batch.check(window).valid).toHaveLength(1);
    expect(() => batch.check(window)).toThrow(/checked once/);
  });
});
