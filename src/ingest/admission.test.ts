import { describe, expect, it } from 'vitest';
import type { HashwattError } from '../errors.ts';
import { type QueueLoad, SiteAdmission, shareRetryAfterMs, siteShare, withinShare } from './admission.ts';

function refusal(fn: () => void): HashwattError | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    return error as HashwattError;
  }
}

describe('siteShare', () => {
  it('splits the queue bound less the headroom among the active sites', () => {
    expect(siteShare(20_000, 1, 0, 0.25)).toBe(15_000);
    expect(siteShare(20_000, 3, 0, 0.25)).toBe(5_000);
    expect(siteShare(20_000, 0, 0, 0.25)).toBe(15_000);
  });

  it('never goes under the floor', () => {
    expect(siteShare(20_000, 100, 2_000, 0.25)).toBe(2_000);
  });
});

describe('shareRetryAfterMs', () => {
  it('scales with what the site holds and stays in range', () => {
    expect(shareRetryAfterMs(10_000, 20_000, 500)).toBe(250);
    expect(shareRetryAfterMs(1, 20_000, 500)).toBe(100);
    expect(shareRetryAfterMs(1e9, 20_000, 500)).toBe(5_000);
  });
});

/** A load of readings that weigh nothing in bytes, for the readings rule alone. */
const readings = (n: number): QueueLoad => ({ readings: n, bytes: 0 });
/** A load of bytes in one reading, for the bytes rule alone. */
const bytes = (n: number): QueueLoad => ({ readings: 1, bytes: n });
const MIB = 1024 * 1024;
const LIMIT: QueueLoad = { readings: 20_000, bytes: 48 * MIB };

describe('withinShare', () => {
  const ask = { limit: 100, activeSites: 2, floor: 0, headroomRatio: 0.25 };

  it('lets in a holder of nothing, a site within its share, and a site past it while room is spare', () => {
    expect(withinShare({ ...ask, held: 0, request: 1_000, used: 100 })).toBe(true);
    expect(withinShare({ ...ask, held: 30, request: 7, used: 99 })).toBe(true);
    expect(withinShare({ ...ask, held: 60, request: 10, used: 65 })).toBe(true);
  });

  it('refuses a site past its share once only the headroom is left', () => {
    expect(withinShare({ ...ask, held: 60, request: 10, used: 70 })).toBe(false);
  });
});

describe('SiteAdmission', () => {
  it('always admits a site that holds nothing, whatever the size', () => {
    const admission = new SiteAdmission({ floorReadings: 0 });
    expect(
      refusal(() => admission.assertShare(1, readings(50_000), LIMIT, readings(LIMIT.readings))),
    ).toBeUndefined();
  });

  it('lets a lone site use the queue less the headroom', () => {
    const admission = new SiteAdmission({ floorReadings: 1_000, headroomRatio: 0.25 });
    admission.hold(1, readings(10_000));
    expect(refusal(() => admission.assertShare(1, readings(5_000), LIMIT, readings(10_000)))).toBeUndefined();
    admission.hold(1, readings(5_000));
    expect(refusal(() => admission.assertShare(1, readings(1), LIMIT, readings(15_000)))?.code).toBe(
      'overloaded',
    );
  });

  it('refuses a flooding site past its share while a site within its share is admitted', () => {
    const admission = new SiteAdmission({ floorReadings: 1_000, headroomRatio: 0.25 });
    admission.hold(1, readings(15_000));
    admission.hold(2, readings(500));
    // The newcomer is within its share of 7,500, so it does not depend on the queue's spare room.
    expect(refusal(() => admission.assertShare(2, readings(500), LIMIT, readings(15_500)))).toBeUndefined();
    const refused = refusal(() => admission.assertShare(1, readings(1), LIMIT, readings(15_500)));
    expect(refused?.code).toBe('overloaded');
    expect(refused?.details.retryAfterMs).toBeGreaterThan(0);
  });

  it('lets a site past its share use spare room beyond the headroom', () => {
    const admission = new SiteAdmission({ floorReadings: 1_000, headroomRatio: 0.25 });
    admission.hold(1, readings(8_000));
    admission.hold(2, readings(100));
    admission.hold(3, readings(100));
    // Past its share of 5,000, but the queue holds 8,200 of the 15,000 usable.
    expect(refusal(() => admission.assertShare(1, readings(5_000), LIMIT, readings(8_200)))).toBeUndefined();
    expect(refusal(() => admission.assertShare(1, readings(7_000), LIMIT, readings(8_200)))?.code).toBe(
      'overloaded',
    );
  });

  it('never refuses a site within the floor', () => {
    const admission = new SiteAdmission({ floorReadings: 2_000, headroomRatio: 0.25 });
    for (let site = 1; site <= 50; site++) admission.hold(site, readings(100));
    expect(
      refusal(() => admission.assertShare(7, readings(1_900), LIMIT, readings(LIMIT.readings))),
    ).toBeUndefined();
  });

  it('forgets a site once everything it held is released, and release is idempotent', () => {
    const admission = new SiteAdmission();
    const a = admission.hold(7, readings(100));
    const b = admission.hold(7, readings(50));
    a();
    a();
    expect(admission.held(7)).toEqual(readings(50));
    b();
    expect(admission.held(7)).toEqual(readings(0));
    expect(admission.activeSites).toBe(0);
  });

  it('refuses a byte-heavy site past its byte share while a light site is admitted', () => {
    const admission = new SiteAdmission({ floorBytes: MIB, headroomRatio: 0.25 });
    // Few readings, many bytes: the readings rule alone would never see this flooder.
    admission.hold(1, bytes(36 * MIB));
    admission.hold(2, bytes(MIB / 2));
    const queued: QueueLoad = { readings: 2, bytes: 36 * MIB + MIB / 2 };
    const refused = refusal(() => admission.assertShare(1, bytes(4 * MIB), LIMIT, queued));
    expect(refused?.code).toBe('overloaded');
    expect(refused?.details.retryAfterMs).toBeGreaterThan(0);
    // Within its byte share of 18 MiB, the light site goes on to the writer's own check.
    expect(refusal(() => admission.assertShare(2, bytes(MIB), LIMIT, queued))).toBeUndefined();
  });

  it('lets a lone byte-heavy site use the byte bound less the headroom', () => {
    const admission = new SiteAdmission({ floorBytes: MIB, headroomRatio: 0.25 });
    admission.hold(1, bytes(30 * MIB));
    expect(refusal(() => admission.assertShare(1, bytes(6 * MIB), LIMIT, bytes(30 * MIB)))).toBeUndefined();
    expect(refusal(() => admission.assertShare(1, bytes(7 * MIB), LIMIT, bytes(30 * MIB)))?.code).toBe(
      'overloaded',
    );
  });

  it('keeps a site holding only bytes until they are released', () => {
    const admission = new SiteAdmission();
    const release = admission.hold(3, { readings: 0, bytes: 100 });
    expect(admission.activeSites).toBe(1);
    release();
    expect(admission.activeSites).toBe(0);
  });
});
