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
    expect(minuteMarks(records)).toEqual([
      { siteId: 2, fromMs: T + 5 * MINUTE_MS, toMs: T + 6 * MINUTE_MS },
      { siteId: 1, fromMs: T, toMs: T + 2 * MINUTE_MS },
      { siteId: 1, fromMs: T + 3 * MINUTE_MS, toMs: T + 4 * MINUTE_MS },
    ]);
  });

  it('puts a microsecond before a minute in the minute before', () => {
    expect(minuteMarks([{ site_id: 1, ts_us: us(T) - 1 }])).toEqual([
      { siteId: 1, fromMs: T - MINUTE_MS, toMs: T },
    ]);
  });
});

describe('planMinutes', () => {
  it('merges claimed marks, builds closed minutes oldest first within the budget, keeps the rest', () => {
    const claimed = [
      { siteId: 1, fromMs: T, toMs: T + 3 * MINUTE_MS },
      { siteId: 1, fromMs: T + 2 * MINUTE_MS, toMs: T + 6 * MINUTE_MS },
      { siteId: 2, fromMs: T - 10 * MINUTE_MS, toMs: T - 9 * MINUTE_MS },
    ];
    const plan = planMinutes(claimed, T + 5 * MINUTE_MS, 4);
    expect(plan.build).toEqual([
      { siteId: 1, fromMs: T, toMs: T + 3 * MINUTE_MS },
      { siteId: 2, fromMs: T - 10 * MINUTE_MS, toMs: T - 9 * MINUTE_MS },
    ]);
    // Minute 3–4 is past the budget, 5 not closed yet: both go back on the log.
    expect(plan.keep).toEqual([{ siteId: 1, fromMs: T + 3 * MINUTE_MS, toMs: T + 6 * MINUTE_MS }]);
  });

  it('cuts a long backlog into ranges a statement sorts in memory', () => {
    const plan = planMinutes([{ siteId: 1, fromMs: T, toMs: T + HOUR_MS }], T + HOUR_MS, 1000, 10);
    expect(plan.build).toEqual([{ siteId: 1, fromMs: T, toMs: T + HOUR_MS }]);
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
      { siteId: 1, fromMs: 10, toMs: 25 },
      { siteId: 2, fromMs: 20, toMs: 30 },
    ]);
  });
});
