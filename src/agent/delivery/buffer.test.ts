import { describe, expect, it } from 'vitest';
import { type BufferLimits, ReadingBuffer } from './buffer.ts';

/** A small seeded PRNG (mulberry32), so the random walk below replays identically. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const limits = (over: Partial<BufferLimits> = {}): BufferLimits => ({
  maxReadings: 10,
  maxBytes: 1_000_000,
  maxBatchReadings: 4,
  maxBatchBytes: 1_000_000,
  ...over,
});

const reading = (i: number) => `{"device":"d","ts":${i},"power_w":1}`;

function fill(buffer: ReadingBuffer, from: number, to: number): void {
  for (let i = from; i < to; i++) buffer.add(reading(i), `d@${i}`);
}

describe('ReadingBuffer', () => {
  it('groups readings into batches bounded by count and bytes', () => {
    const b = new ReadingBuffer(limits({ maxBatchBytes: 3 * (reading(0).length + 1) }));
    fill(b, 0, 7);
    const first = b.takeNext()!;
    expect(first.readings).toHaveLength(3);
    const second = b.takeNext()!;
    expect(second.readings).toHaveLength(3);
    expect(b.takeNext()!.readings).toHaveLength(1);
    expect(b.takeNext()).toBeUndefined();
    expect(first.id).toBeLessThan(second.id);
  });

  it('drops the oldest readings when full, and counts them', () => {
    const b = new ReadingBuffer(limits(), true);
    fill(b, 0, 15);
    expect(b.size).toBe(10);
    expect(b.dropped).toBe(5);
    const kept: string[] = [];
    for (let batch = b.takeNext(); batch; batch = b.takeNext()) kept.push(...batch.keys!);
    expect(kept).toEqual(Array.from({ length: 10 }, (_, i) => `d@${i + 5}`));
  });

  it('drops by bytes too', () => {
    const size = reading(0).length + 1;
    const b = new ReadingBuffer(limits({ maxReadings: 1000, maxBytes: 5 * size }));
    fill(b, 0, 8);
    expect(b.size).toBe(5);
    expect(b.bytes).toBe(5 * size);
    expect(b.dropped).toBe(3);
  });

  it('never drops readings in flight: they may already be stored', () => {
    const b = new ReadingBuffer(limits({ maxReadings: 6 }), true);
    fill(b, 0, 4);
    const inFlight = b.takeNext()!; // readings 0–3
    fill(b, 4, 10);
    expect(inFlight.readings).toHaveLength(4);
    expect(b.size).toBe(6);
    expect(b.dropped).toBe(4); // readings 4–7: the oldest not in flight
    b.complete(inFlight);
    const rest = b.takeNext()!;
    expect(rest.keys).toEqual(['d@8', 'd@9']);
  });

  it('resends a failed batch before newer ones, unchanged', () => {
    const b = new ReadingBuffer(limits({ maxReadings: 100 }));
    fill(b, 0, 8);
    const first = b.takeNext()!;
    const copy = [...first.readings];
    b.requeue(first);
    fill(b, 8, 9);
    const again = b.takeNext()!;
    expect(again).toBe(first);
    expect(again.readings).toEqual(copy);
    expect(again.attempts).toBe(2);
  });

  it('keeps its count consistent: added = held + dropped + completed', () => {
    const draw = seeded(99);
    const b = new ReadingBuffer(limits({ maxReadings: 50, maxBatchReadings: 7 }));
    let added = 0;
    let completed = 0;
    const inFlight = new Set<ReturnType<ReadingBuffer['takeNext']>>();
    for (let step = 0; step < 5000; step++) {
      const r = draw();
      if (r < 0.6) {
        b.add(reading(step));
        added++;
      } else if (r < 0.8) {
        const batch = b.takeNext();
        if (batch) inFlight.add(batch);
      } else if (inFlight.size > 0) {
        const batch = [...inFlight][0]!;
        inFlight.delete(batch);
        if (r < 0.9) {
          completed += batch.readings.length;
          b.complete(batch);
        } else b.requeue(batch);
      }
      expect(b.size).toBe(added - b.dropped - completed);
      if (b.inFlight === 0) expect(b.size).toBeLessThanOrEqual(50);
    }
    expect(b.dropped).toBeGreaterThan(0);
  });

  it('splits batches that are too big for the service, keeping order and content', () => {
    const b = new ReadingBuffer(limits({ maxReadings: 100, maxBatchReadings: 8 }), true);
    fill(b, 0, 8);
    const batch = b.takeNext()!;
    b.requeue(batch);
    expect(b.splitLargerThan(batch.bytes / 3)).toBe(3);
    const keys: string[] = [];
    for (let x = b.takeNext(); x; x = b.takeNext()) {
      expect(x.bytes).toBeLessThanOrEqual(Math.ceil(batch.bytes));
      keys.push(...x.keys!);
    }
    expect(keys).toEqual(Array.from({ length: 8 }, (_, i) => `d@${i}`));
    expect(b.size).toBe(8);
  });
});
