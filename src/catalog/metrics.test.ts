import { describe, expect, it } from 'vitest';
import {
  aggregateAcrossDevices,
  CORE_METRICS,
  DEVICE_KINDS,
  findMetric,
  isInRange,
  toStoredPrecision,
} from './metrics.ts';

describe('the metric catalog', () => {
  it('names every metric with its unit as the suffix, once', () => {
    const names = CORE_METRICS.map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    const suffix: Record<string, RegExp> = {
      W: /_w$/,
      'TH/s': /_ths$/,
      '°C': /_c$/,
      rpm: /_rpm$/,
      '%': /_pct$/,
      bytes: /_bytes$/,
    };
    for (const m of CORE_METRICS) expect(m.name, m.name).toMatch(suffix[m.unit]!);
  });

  it('gives every metric a sane range and known device kinds', () => {
    for (const m of CORE_METRICS) {
      expect(m.min, m.name).toBeLessThan(m.max);
      expect(Number.isFinite(m.max), m.name).toBe(true);
      for (const k of m.kinds) expect(DEVICE_KINDS).toContain(k);
      // A float4 column cannot hold a bound past float4's range: the bound would not round-trip.
      if (m.precision === 'float4') expect(Math.fround(m.max)).toBe(m.max);
    }
  });

  it('finds metrics by wire name and knows nothing else', () => {
    expect(findMetric('power_w')?.unit).toBe('W');
    expect(findMetric('POWER_W')).toBeUndefined();
    expect(findMetric('__proto__')).toBeUndefined();
  });

  it('keeps NaN and infinities out of every range', () => {
    for (const m of CORE_METRICS) {
      expect(isInRange(m, Number.NaN)).toBe(false);
      expect(isInRange(m, Number.POSITIVE_INFINITY)).toBe(false);
      expect(isInRange(m, m.min)).toBe(true);
      expect(isInRange(m, m.max)).toBe(true);
    }
  });

  it('stores float4 metrics at float4 precision and float8 ones exactly', () => {
    expect(toStoredPrecision(findMetric('temp_c')!, 65.3)).toBe(Math.fround(65.3));
    expect(toStoredPrecision(findMetric('temp_c')!, 65.3)).not.toBe(65.3);
    expect(toStoredPrecision(findMetric('power_w')!, 3520.123456789)).toBe(3520.123456789);
  });

  it('sums power and hashrate across devices and averages utilisation and temperature', () => {
    expect(aggregateAcrossDevices(findMetric('power_w')!, [100, 200, 300])).toBe(600);
    expect(aggregateAcrossDevices(findMetric('hashrate_ths')!, [200, 100])).toBe(300);
    expect(aggregateAcrossDevices(findMetric('gpu_util_pct')!, [20, 80])).toBe(50);
    expect(aggregateAcrossDevices(findMetric('temp_c')!, [60, 70, 80])).toBe(70);
    expect(aggregateAcrossDevices(findMetric('power_w')!, [])).toBeNull();
  });
});
