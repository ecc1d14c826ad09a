import { describe, expect, it } from 'vitest';
import { HOUR_MS, MINUTE_MS, mergeRanges, minuteMarks, planHours, planMinutes } from './ranges.ts';

const T = Date.UTC(2026, 11, 1, 10);
const us = (ms: number) => ms * 1000;

describe('minuteMarks', () => {
  it('marks each site’s touched minutes as runs, whatever the order', () => {
    const records = [
      { site_id: 2, ts_us: us(T + 5 * MINUTE_MS + 1) },
      { site_id: 1, ts_us: us(T + 59_999) },
      { site_id: 1, ts_us: us(T) },
      { site_id: 1, ts_us: us(T + MINUTE_MS) },
      { site_id: 1, ts_us: us(T + 3 * MINUTE_MS) },
      { site_id: 2, ts_us: us(T + 5 * MINUTE_MS + 2) },
    ];
    const marks = minuteMarks(
      records.map((r) => r.site_id),
      records.map((r) => r.ts_us),
    );
    expect(marks).toEqual([
      { siteId: 2, fromMs: T + 5 * MINUTE_MS, toMs: T + 6 * MINUTE_MS, readings: 2 },
      { siteId: 1, fromMs: T, toMs: T + 2 * MINUTE_MS, readings: 3 },
      { siteId: 1, fromMs: T + 3 * MINUTE_MS, toMs: T + 4 * MINUTE_MS, readings: 1 },
    ]);
  });

  it('puts a microsecond before a minute in the minute before', () => {
    expect(minuteMarks([1], [us(T) - 1])).toEqual([
      { siteId: 1, fromMs: T - MINUTE_MS, toMs: T, readings: 1 },
    ]);
  });
});

describe('planMinutes', () => {
  it('merges claimed marks, builds closed minutes oldest first within the readings budget, keeps the rest', () => {
    const claimed = [
      { siteId: 1, fromMs: T, toMs: T + 3 * MINUTE_MS, readings: 300 },
      { siteId: 1, fromMs: T + 2 * MINUTE_MS, toMs: T + 6 * MINUTE_MS, readings: 400 },
      { siteId: 2, fromMs: T - 10 * MINUTE_MS, toMs: T - 9 * MINUTE_MS, readings: 50 },
    ];
    // Site 1 merges to 6 minutes of 700 readings; 5 are closed (583 readings, shared by time).
    const plan = planMinutes(claimed, T + 5 * MINUTE_MS, 400);
    expect(plan.build).toEqual([
      { siteId: 1, fromMs: T, toMs: T + 3 * MINUTE_MS, readings: 350 },
      { siteId: 2, fromMs: T - 10 * MINUTE_MS, toMs: T - 9 * MINUTE_MS, readings: 50 },
    ]);
    // Minutes 3–4 are past the budget, 5 is not closed yet: all go back on the log, with their readings.
    expect(plan.keep).toEqual([
      { siteId: 1, fromMs: T + 3 * MINUTE_MS, toMs: T + 6 * MINUTE_MS, readings: 350 },
    ]);
  });

  it('always builds one minute, however big, and cuts a long backlog into short ranges', () => {
    const huge = planMinutes(
      [{ siteId: 1, fromMs: T, toMs: T + 2 * MINUTE_MS, readings: 4e6 }],
      T + HOUR_MS,
      1000,
    );
    expect(huge.build).toEqual([{ siteId: 1, fromMs: T, toMs: T + MINUTE_MS, readings: 2e6 }]);
    expect(huge.keep).toEqual([{ siteId: 1, fromMs: T + MINUTE_MS, toMs: T + 2 * MINUTE_MS, readings: 2e6 }]);
    const plan = planMinutes(
      [{ siteId: 1, fromMs: T, toMs: T + HOUR_MS, readings: 600 }],
      T + HOUR_MS,
      1e6,
      10,
    );
    expect(plan.build).toEqual([{ siteId: 1, fromMs: T, toMs: T + HOUR_MS, readings: 600 }]);
    expect(plan.keep).toEqual([]);
  });
});

describe('planHours', () => {
  it('builds closed hours whose minutes are all built; the others wait', () => {
    const hours = [
      { siteId: 1, fromMs: T, toMs: T + 1 },
      { siteId: 1, fromMs: T + HOUR_MS, toMs: T + HOUR_MS + 1 },
      { siteId: 2, fromMs: T, toMs: T + 1 },
    ];
    const plan = planHours(hours, T + HOUR_MS + 30 * MINUTE_MS, [
      { siteId: 2, fromMs: T + 59 * MINUTE_MS, toMs: T + HOUR_MS },
    ]);
    expect(plan.build).toEqual([{ siteId: 1, fromMs: T, toMs: T + HOUR_MS }]);
    expect(plan.wait).toEqual([
      { siteId: 1, fromMs: T + HOUR_MS, toMs: T + 2 * HOUR_MS },
      { siteId: 2, fromMs: T, toMs: T + HOUR_MS },
    ]);
  });
});

describe('mergeRanges', () => {
  it('joins touching ranges of a site and never across sites', () => {
    expect(
      mergeRanges([
        { siteId: 1, fromMs: 10, toMs: 20 },
        { siteId: 2, fromMs: 20, toMs: 30 },
        { siteId: 1, fromMs: 20, toMs: 25 },
      ]),
    ).toEqual([
      { siteId: 1, fromMs: 10, toMs: 25, readings: 0 },
      { siteId: 2, fromMs: 20, toMs: 30, readings: 0 },
    ]);
  });
});
