import { describe, expect, it } from 'vitest';
import { mergeRows, missingValues, type ReadingRecord } from './readings.ts';

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
