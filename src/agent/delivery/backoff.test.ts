import { describe, expect, it } from 'vitest';
import { computeBackoffMs, computeRetryDelayMs, DEFAULT_BACKOFF, parseRetryAfterMs } from './backoff.ts';

const policy = { baseMs: 100, maxMs: 10_000, factor: 2 };

describe('computeBackoffMs', () => {
  it('grows exponentially up to the ceiling', () => {
    const upper = (a: number) => computeBackoffMs(a, policy, () => 1);
    expect([1, 2, 3, 4, 5].map(upper)).toEqual([100, 200, 400, 800, 1600]);
    expect(upper(20)).toBe(10_000);
  });

  it('jitters within the upper half of the bound', () => {
    expect(computeBackoffMs(3, policy, () => 0)).toBe(200);
    const draws = Array.from({ length: 200 }, () => computeBackoffMs(3, policy));
    for (const d of draws) {
      expect(d).toBeGreaterThanOrEqual(200);
      expect(d).toBeLessThanOrEqual(400);
    }
    expect(new Set(draws).size).toBeGreaterThan(100);
  });

  it('defaults to 0.5 s doubling up to 30 s', () => {
    expect(DEFAULT_BACKOFF).toEqual({ baseMs: 500, maxMs: 30_000, factor: 2 });
  });
});

describe('computeRetryDelayMs', () => {
  it('honours the server hint: never sooner, at most 10 % later', () => {
    for (let i = 0; i < 100; i++) {
      const d = computeRetryDelayMs(1, 5000, policy);
      expect(d).toBeGreaterThanOrEqual(5000);
      expect(d).toBeLessThanOrEqual(5500);
    }
    // Even when our own backoff would be longer, the server knows best.
    expect(computeRetryDelayMs(10, 1000, policy, () => 0)).toBe(1000);
  });

  it('falls back to exponential backoff without a hint', () => {
    expect(computeRetryDelayMs(4, undefined, policy, () => 1)).toBe(800);
  });
});

describe('parseRetryAfterMs', () => {
  it('reads delay-seconds and HTTP dates', () => {
    expect(parseRetryAfterMs('3')).toBe(3000);
    expect(parseRetryAfterMs('0.5')).toBe(500);
    const now = Date.parse('2026-03-01T00:00:00Z');
    expect(parseRetryAfterMs('Sun, 01 Mar 2026 00:00:07 GMT', now)).toBe(7000);
    expect(parseRetryAfterMs('Sun, 01 Mar 2020 00:00:07 GMT', now)).toBe(0);
  });

  it('ignores absent or unreadable values', () => {
    expect(parseRetryAfterMs(undefined)).toBeUndefined();
    expect(parseRetryAfterMs('soon')).toBeUndefined();
  });
});
