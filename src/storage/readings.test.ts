import { describe, expect, it } from 'vitest';
import { mergeLatest, mergeRows, missingValues, type ReadingRecord } from './readings.ts';

const record = (ts_us: number, metrics: Partial<ReadingRecord>): ReadingRecord => ({
  site_id: 1,
  device_id: 7,
  kind: 'gpu',
  ts_us,
  received_ms: 1,
  ...metrics,
});

const core = {
  valuesOf: (r: ReadingRecord) =>
    r.power_w === undefined && r.temp_c === undefined ? undefined : [r.power_w, r.temp_c],
};

describe('mergeRows', () => {
  it('merges records of one key into one row, first value winning, repeats counted per record', () => {
    const duplicates = new Uint32Array(3);
    const rows = mergeRows(
      core,
      [record(2, { power_w: 10 }), record(1, { temp_c: 5 }), record(2, { power_w: 11, temp_c: 60 })],
      duplicates,
    );
    expect(rows.map((r) => [r.ts_us, r.values])).toEqual([
      [1, [undefined, 5]],
      [2, [10, 60]],
    ]);
    expect([...duplicates]).toEqual([0, 0, 1]);
    // Each value is owned by the record that brought it, so the database's answer is charged to it.
    expect(rows[1]!.owner).toEqual(Int32Array.from([0, 2]));
  });

  it('skips records with nothing for the table', () => {
    expect(mergeRows(core, [record(1, { status: 'ok' })], new Uint32Array(1))).toEqual([]);
  });
});

describe('missingValues', () => {
  it('keeps only the values the stored row lacks', () => {
    expect(missingValues([1, undefined, 3], '100')).toEqual([undefined, undefined, 3]);
    expect(missingValues([1, undefined, 3], '101')).toBeUndefined();
  });
});

describe('mergeLatest', () => {
  it('keeps stored values of the same instant and fills what they lack', () => {
    const held = record(1, { power_w: 10 });
    expect(mergeLatest(held, record(1, { power_w: 99, temp_c: 5 }))).toMatchObject({
      power_w: 10,
      temp_c: 5,
    });
  });

  it('takes a newer reading whole: a metric the device stopped sending is gone at once', () => {
    const held = record(1, { power_w: 10, temp_c: 5, status: 'error' });
    const next = record(2, { power_w: 11 });
    expect(mergeLatest(held, next)).toBe(next);
    expect(mergeLatest(next, held)).toBe(next);
  });

  it('never moves the receipt back, whichever reading wins', () => {
    const held = { ...record(1, { power_w: 10 }), received_ms: 5000 };
    expect(
      mergeLatest(held, { ...record(120_000_000, { power_w: 11 }), received_ms: 1000 }).received_ms,
    ).toBe(5000);
  });
});
