import { describe, expect, it } from 'vitest';
import type { ReadingRecord } from '../storage/readings.ts';
import { foldLatest } from './latest-state.ts';

const reading = (device_id: number, ts_ms: number, power_w: number, received_ms: number): ReadingRecord => ({
  site_id: 1,
  device_id,
  kind: 'asic',
  ts_us: ts_ms * 1000,
  received_ms,
  power_w,
});

describe('foldLatest', () => {
  it('keeps one record per device, the newest reading', () => {
    const pending = new Map<number, ReadingRecord>();
    foldLatest(pending, [reading(1, 2_000, 20, 100), reading(2, 1_000, 5, 100), reading(1, 1_000, 10, 100)]);
    foldLatest(pending, [reading(1, 3_000, 30, 200)]);
    expect(pending.get(1)).toMatchObject({ ts_us: 3_000_000, power_w: 30, received_ms: 200 });
    expect(pending.get(2)).toMatchObject({ ts_us: 1_000_000, power_w: 5, received_ms: 100 });
    expect(pending.size).toBe(2);
  });

  it('never moves back to an older reading that arrives later (a backfill)', () => {
    const pending = new Map<number, ReadingRecord>();
    foldLatest(pending, [reading(1, 5_000, 50, 100)]);
    foldLatest(pending, [reading(1, 1_000, 10, 200)]);
    expect(pending.get(1)).toMatchObject({ ts_us: 5_000_000, power_w: 50, received_ms: 100 });
  });

  it('keeps the first values for a repeated time, as the readings table does, and moves the receipt forward', () => {
    const pending = new Map<number, ReadingRecord>();
    foldLatest(pending, [reading(1, 5_000, 50, 100)]);
    foldLatest(pending, [reading(1, 5_000, 51, 300)]);
    expect(pending.get(1)).toMatchObject({ power_w: 50, received_ms: 300 });
    // A repeat committed out of order never moves the receipt back.
    foldLatest(pending, [reading(1, 5_000, 52, 200)]);
    expect(pending.get(1)).toMatchObject({ power_w: 50, received_ms: 300 });
  });

  it('merges one instant that arrives metric by metric; a newer instant replaces it whole', () => {
    const pending = new Map<number, ReadingRecord>();
    foldLatest(pending, [
      { site_id: 1, device_id: 1, kind: 'gpu', ts_us: 5_000_000, received_ms: 1, power_w: 300 },
    ]);
    foldLatest(pending, [
      { site_id: 1, device_id: 1, kind: 'gpu', ts_us: 5_000_000, received_ms: 2, gpu_util_pct: 90 },
    ]);
    expect(pending.get(1)).toMatchObject({ power_w: 300, gpu_util_pct: 90, received_ms: 2 });
    foldLatest(pending, [
      { site_id: 1, device_id: 1, kind: 'gpu', ts_us: 20_000_000, received_ms: 3, power_w: 310 },
    ]);
    expect(pending.get(1)).toEqual({
      site_id: 1,
      device_id: 1,
      kind: 'gpu',
      ts_us: 20_000_000,
      received_ms: 3,
      power_w: 310,
    });
  });
});
