import { describe, expect, it } from 'vitest';
import { ConcurrencyLimit } from './concurrency.ts';

function deferred() {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('ConcurrencyLimit', () => {
  it('runs at most limit tasks at once and the rest in arrival order', async () => {
    const limit = new ConcurrencyLimit(2);
    const gates = [deferred(), deferred(), deferred(), deferred()];
    const started: number[] = [];
    const runs = gates.map((g, i) =>
      limit.run(async () => {
        started.push(i);
        await g.promise;
        return i;
      }),
    );
    await Promise.resolve();
    expect(started).toEqual([0, 1]);
    expect(limit.depth).toEqual({ running: 2, waiting: 2 });
    gates[1]!.resolve();
    await runs[1];
    await Promise.resolve();
    expect(started).toEqual([0, 1, 2]);
    expect(limit.depth).toEqual({ running: 2, waiting: 1 });
    for (const g of gates) g.resolve();
    expect(await Promise.all(runs)).toEqual([0, 1, 2, 3]);
    expect(limit.depth).toEqual({ running: 0, waiting: 0 });
  });

  it('gives the turn back when a task fails', async () => {
    const limit = new ConcurrencyLimit(1);
    await expect(limit.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await limit.run(async () => 'next')).toBe('next');
    expect(limit.depth).toEqual({ running: 0, waiting: 0 });
  });

  it('refuses a limit that would admit nothing', () => {
    expect(() => new ConcurrencyLimit(0)).toThrow(RangeError);
  });
});
