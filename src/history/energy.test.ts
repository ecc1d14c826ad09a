import { describe, expect, it } from 'vitest';
import { bucketStarts, energyBuckets, hasPowerData, localMidnight, minuteEnergy } from './energy.ts';
import { parseInstantMs } from './query.ts';

describe('localMidnight', () => {
  it('finds the local midnight in UTC, across DST changes', () => {
    expect(localMidnight(Date.UTC(2026, 11, 1, 15), 'UTC')).toBe(Date.UTC(2026, 11, 1));
    // Berlin is UTC+1 in winter: its midnight is 23:00 UTC the day before.
    expect(localMidnight(Date.UTC(2026, 11, 1, 15), 'Europe/Berlin')).toBe(Date.UTC(2026, 10, 30, 23));
    // The day DST starts (29 March 2026) still begins at 23:00 UTC (UTC+1); the next at 22:00 UTC.
    expect(localMidnight(Date.UTC(2026, 2, 29, 12), 'Europe/Berlin')).toBe(Date.UTC(2026, 2, 28, 23));
    expect(localMidnight(Date.UTC(2026, 2, 30, 12), 'Europe/Berlin')).toBe(Date.UTC(2026, 2, 29, 22));
    expect(localMidnight(Date.UTC(2026, 11, 1, 3), 'America/Chicago')).toBe(Date.UTC(2026, 10, 30, 6));
  });

  it('starts a day where DST begins at midnight at its first instant, 01:00', () => {
    // Chile: on 2026-09-06 clocks jump from 00:00 (UTC−4) to 01:00 (UTC−3): the day starts 04:00Z.
    expect(localMidnight(Date.UTC(2026, 8, 6, 12), 'America/Santiago')).toBe(Date.UTC(2026, 8, 6, 4));
    expect(localMidnight(Date.UTC(2026, 8, 7, 12), 'America/Santiago')).toBe(Date.UTC(2026, 8, 7, 3));
  });

  it('starts hours on the local hour, also in zones offset by half an hour', () => {
    const t = Date.UTC(2026, 11, 1, 10, 10);
    expect(bucketStarts(t, t + 2 * 3_600_000, 'hour', 'UTC')).toEqual([
      Date.UTC(2026, 11, 1, 10),
      Date.UTC(2026, 11, 1, 11),
      Date.UTC(2026, 11, 1, 12),
    ]);
    // Kolkata is UTC+5:30: its hours start at hh:30 UTC.
    expect(bucketStarts(t, t + 2 * 3_600_000, 'hour', 'Asia/Kolkata')).toEqual([
      Date.UTC(2026, 11, 1, 9, 30),
      Date.UTC(2026, 11, 1, 10, 30),
      Date.UTC(2026, 11, 1, 11, 30),
    ]);
  });

  it('gives the day DST starts its 23 hours', () => {
    const starts = bucketStarts(Date.UTC(2026, 2, 28, 12), Date.UTC(2026, 2, 31), 'day', 'Europe/Berlin');
    expect(starts.slice(1).map((s, i) => (s - starts[i]!) / 3_600_000)).toEqual([24, 23, 24]);
  });
});

describe('energy', () => {
  const row = (b: number, meter: number | null, asic: number, gpu: number) => ({
    b,
    meter_w: meter,
    meters: meter === null ? 0 : 1,
    meter_available_w: null,
    meters_available: 0,
    device_w: asic + gpu,
    devices: 2,
    asic_w: asic,
    gpu_w: gpu,
  });

  it('integrates a known load minute by minute; a gap lowers coverage, not the rate', () => {
    const h0 = Date.UTC(2026, 11, 1, 10);
    // 36 kW for 50 minutes of the hour (a 10-minute gap), from the meter: 30 kWh, coverage 5/6.
    const minutes = Array.from({ length: 50 }, (_, m) =>
      minuteEnergy(row(h0 + m * 60_000, 36_000, 20_000, 10_000), 1, 1e6),
    );
    const [bucket] = energyBuckets([h0], h0 + 3_600_000, minutes, () => 50);
    expect(bucket!.kwh).toBeCloseTo(30, 9);
    expect(bucket!.mining_kwh).toBeCloseTo((20_000 * 3000) / 3_600_000, 9);
    expect(bucket!.ai_kwh).toBeCloseTo((10_000 * 3000) / 3_600_000, 9);
    expect(bucket!.other_kwh).toBeCloseTo((6_000 * 3000) / 3_600_000, 9);
    expect(bucket!.coverage_ratio).toBeCloseTo(50 / 60, 12);
    expect(bucket!.cost).toBeCloseTo((30 / 1000) * 50, 9);
  });

  it('without a meter the devices are the draw, and nothing is "other"', () => {
    const e = minuteEnergy(row(0, null, 3000, 1000), 1, 1e6);
    expect(e).toEqual({ startMs: 0, joules: 4000 * 60, miningJ: 3000 * 60, aiJ: 1000 * 60, otherJ: 0 });
  });
});

describe('what counts as data', () => {
  const step = {
    b: 0,
    meter_w: 50_000,
    meters: 1,
    meter_available_w: null,
    meters_available: 0,
    device_w: null,
    devices: 0,
    asic_w: null,
    gpu_w: null,
  };
  it('a step with one of two meters and no device power has no figure, not 0 W', () => {
    expect(hasPowerData(step, 2)).toBe(false);
    expect(hasPowerData(step, 1)).toBe(true);
    expect(hasPowerData({ ...step, meters: 0, meter_w: null, devices: 3, device_w: 9000 }, 2)).toBe(true);
  });

  it('reads instants only with their offset, within what a Date holds', () => {
    expect(parseInstantMs('2026-12-01T00:00:00Z')).toBe(Date.UTC(2026, 11, 1));
    expect(parseInstantMs('2026-12-01T01:00:00+01:00')).toBe(Date.UTC(2026, 11, 1));
    expect(parseInstantMs('2026-12-01T00:00:00')).toBeUndefined();
    expect(parseInstantMs('9999999999999999')).toBeUndefined();
    expect(parseInstantMs('1764547200000')).toBe(1764547200000);
  });
});
