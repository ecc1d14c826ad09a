import { describe, expect, it } from 'vitest';
import type { ScheduledTarget } from './config.ts';
import { nextDueMs, Poller, phaseMs } from './poller.ts';

const target = (i: number, intervalMs = 200, timeoutMs = 100): ScheduledTarget => ({
  type: 'miner',
  id: `miner:m${i}`,
  api: 'cgminer',
  host: '127.0.0.1',
  device: `m${i}`,
  intervalMs,
  timeoutMs,
});

describe('poll schedule', () => {
  it('spreads targets over their interval by a stable hash', () => {
    const phases = Array.from({ length: 1000 }, (_, i) => phaseMs(`miner:m${i}`, 10_000));
    expect(phaseMs('miner:m1', 10_000)).toBe(phases[1]);
    for (const p of phases) expect(p).toBeGreaterThanOrEqual(0);
    // Roughly uniform: every second of the interval gets some.
    const perSecond = new Array(10).fill(0);
    for (const p of phases) perSecond[Math.floor(p / 1000)]++;
    for (const n of perSecond) expect(n).toBeGreaterThan(60);
  });

  it('finds the next instant on the grid', () => {
    expect(nextDueMs(10_000, 300, 1000)).toBe(10_300);
    expect(nextDueMs(10_300, 300, 1000)).toBe(10_300);
    expect(nextDueMs(10_301, 300, 1000)).toBe(11_300);
  });
});

describe('Poller', () => {
  it('bounds concurrency, never overlaps a target, and counts what it had to skip', async () => {
    const running = new Set<string>();
    let overlap = 0;
    let polls = 0;
    const skipped: string[] = [];
    const poller = new Poller({
      targets: Array.from({ length: 20 }, (_, i) => target(i, 100)),
      concurrency: 3,
      onSkipped: (t) => skipped.push(t.id),
      poll: async (t) => {
        if (running.has(t.id)) overlap++;
        running.add(t.id);
        polls++;
        // Slower than the interval allows for 20 targets at 3 at a time: some rounds must be skipped.
        await new Promise((r) => setTimeout(r, 40));
        running.delete(t.id);
      },
    });
    poller.start();
    const deadline = Date.now() + 10_000;
    while ((polls < 40 || skipped.length === 0) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    await poller.stop();
    expect(poller.maxActive).toBe(3);
    expect(overlap).toBe(0);
    expect(polls).toBeGreaterThanOrEqual(40);
    expect(skipped.length).toBeGreaterThan(0);
    expect(poller.active).toBe(0);
  });

  it('frees the slot of a poll that never settles after its timeout', async () => {
    let started = 0;
    const poller = new Poller({
      targets: [target(1, 50, 10)],
      concurrency: 1,
      poll: () => {
        started++;
        return new Promise<void>(() => {});
      },
    });
    poller.start();
    // The safety net is the timeout plus 2 s: a second poll starts once it fires.
    const deadline = Date.now() + 5000;
    while (started < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await poller.stop();
    expect(started).toBeGreaterThanOrEqual(2);
  });
});
