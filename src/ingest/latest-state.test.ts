import { describe, expect, it } from 'vitest';
import { columnsOf, type ReadingRecord } from '../storage/reading-columns.ts';
import { LatestTable } from './latest-state.ts';

const reading = (device_id: number, ts_ms: number, power_w: number, received_ms: number): ReadingRecord => ({
  site_id: 1,
  device_id,
  kind: 'asic',
  ts_us: ts_ms * 1000,
  received_ms,
  power_w,
});

const fold = (table: LatestTable, records: ReadingRecord[]) => table.fold(columnsOf(records));

describe('LatestTable', () => {
  it('keeps one row per device, the newest reading', () => {
    const table = new LatestTable();
    fold(table, [reading(1, 2_000, 20, 100), reading(2, 1_000, 5, 100), reading(1, 1_000, 10, 100)]);
    fold(table, [reading(1, 3_000, 30, 200)]);
    expect(table.get(1)).toMatchObject({ ts_us: 3_000_000, power_w: 30, received_ms: 200 });
    expect(table.get(2)).toMatchObject({ ts_us: 1_000_000, power_w: 5, received_ms: 100 });
    expect(table.pending).toBe(2);
  });

  it('never moves back to an older reading that arrives later (a backfill)', () => {
    const table = new LatestTable();
    fold(table, [reading(1, 5_000, 50, 100)]);
    table.take();
    expect(fold(table, [reading(1, 1_000, 10, 200)])).toBe(0);
    expect(table.get(1)).toMatchObject({ ts_us: 5_000_000, power_w: 50, received_ms: 100 });
    expect(table.pending).toBe(0);
  });

  it('keeps the first values for a repeated time, as the readings table does, and moves the receipt forward', () => {
    const table = new LatestTable();
    fold(table, [reading(1, 5_000, 50, 100)]);
    fold(table, [reading(1, 5_000, 51, 300)]);
    expect(table.get(1)).toMatchObject({ power_w: 50, received_ms: 300 });
    // A repeat committed out of order never moves the receipt back.
    fold(table, [reading(1, 5_000, 52, 200)]);
    expect(table.get(1)).toMatchObject({ power_w: 50, received_ms: 300 });
  });

  it('never moves the receipt back, even when a newer reading wins', () => {
    const table = new LatestTable();
    fold(table, [reading(1, 1_000, 10, 5_000)]);
    fold(table, [reading(1, 120_000, 11, 1_000)]);
    expect(table.get(1)).toMatchObject({ ts_us: 120_000_000, power_w: 11, received_ms: 5_000 });
  });

  it('merges one instant that arrives metric by metric; a newer instant replaces it whole', () => {
    const table = new LatestTable();
    fold(table, [{ site_id: 1, device_id: 1, kind: 'gpu', ts_us: 5_000_000, received_ms: 1, power_w: 300 }]);
    fold(table, [
      {
        site_id: 1,
        device_id: 1,
        kind: 'gpu',
        ts_us: 5_000_000,
        received_ms: 2,
        gpu_util_pct: 90,
        status: 'ok',
      },
    ]);
    expect(table.get(1)).toMatchObject({ power_w: 300, gpu_util_pct: 90, status: 'ok', received_ms: 2 });
    fold(table, [{ site_id: 1, device_id: 1, kind: 'gpu', ts_us: 20_000_000, received_ms: 3, power_w: 310 }]);
    expect(table.get(1)).toEqual({
      site_id: 1,
      device_id: 1,
      kind: 'gpu',
      ts_us: 20_000_000,
      received_ms: 3,
      power_w: 310,
    });
  });

  it('takes the pending rows in device order, and a failed write puts them back with what arrived since', () => {
    const table = new LatestTable();
    fold(table, [reading(9, 1_000, 90, 1), reading(3, 1_000, 30, 1), reading(5, 1_000, 50, 1)]);
    const slots = table.take();
    const rows = table.rowsOf(slots);
    expect([...rows.deviceId]).toEqual([3, 5, 9]);
    expect([...rows.metrics[0]!]).toEqual([30, 50, 90]);
    expect(table.pending).toBe(0);
    fold(table, [reading(5, 2_000, 51, 2)]);
    table.restore(slots);
    expect(table.pending).toBe(3);
    const again = table.rowsOf(table.take());
    expect([...again.deviceId]).toEqual([3, 5, 9]);
    expect(again.tsUs[1]).toBe(2_000_000);
  });

  it('grows past its first allocation and reuses the slots of forgotten devices', () => {
    const table = new LatestTable();
    const many = Array.from({ length: 5_000 }, (_, i) => reading(i + 1, 1_000, i, 1));
    expect(fold(table, many)).toBe(5_000);
    expect(table.get(4_321)).toMatchObject({ power_w: 4_320 });
    table.forget([1, 2]);
    expect(table.pending).toBe(4_998);
    expect(table.get(1)).toBeUndefined();
    fold(table, [{ ...reading(7_777, 1_000, 7, 1), site_id: 2 }]);
    expect(table.get(7_777)).toMatchObject({ site_id: 2, power_w: 7 });
    table.forgetSite(2);
    expect(table.get(7_777)).toBeUndefined();
    expect(table.rowsOf(table.take()).length).toBe(4_998);
  });
});
