import { describe, expect, it } from 'vitest';
import { FairQueue } from './fair-queue.ts';

describe('FairQueue', () => {
  it('serves keys in turn, each key in its own arrival order', () => {
    const q = new FairQueue<string, string>();
    for (let i = 1; i <= 4; i++) q.push('flood', `f${i}`);
    q.push('small', 's1');
    q.push('other', 'o1');
    q.push('small', 's2');
    const served: string[] = [];
    while (q.size > 0) served.push(q.shift()!);
    expect(served).toEqual(['f1', 's1', 'o1', 'f2', 's2', 'f3', 'f4']);
  });

  it('puts a key that arrives late behind at most one item of each queued key', () => {
    const q = new FairQueue<number, number>();
    for (let i = 0; i < 1000; i++) q.push(1, i);
    q.shift();
    q.push(2, -1);
    expect(q.shift()).toBe(1);
    expect(q.shift()).toBe(-1);
  });

  it('peeks at what shift returns and counts what it holds', () => {
    const q = new FairQueue<string, number>();
    expect(q.peek()).toBeUndefined();
    expect(q.shift()).toBeUndefined();
    q.push('a', 1);
    q.push('b', 2);
    expect(q.size).toBe(2);
    expect(q.peek()).toBe(1);
    expect(q.shift()).toBe(1);
    expect(q.peek()).toBe(2);
    expect(q.size).toBe(1);
    q.shift();
    expect(q.size).toBe(0);
    q.push('a', 3);
    expect(q.shift()).toBe(3);
  });
});
