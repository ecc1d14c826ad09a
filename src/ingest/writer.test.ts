import { describe, expect, it } from 'vitest';
import { queueBound, retryAfterMs } from './writer.ts';

describe('queueBound', () => {
  it('holds the queue to the target delay at the measured rate', () => {
    expect(queueBound(80_000, 500, 20_000, 100_000)).toBe(40_000);
  });

  it('never goes under the floor, so a cold writer (rate 0) still admits full batches', () => {
    expect(queueBound(0, 500, 20_000, 100_000)).toBe(20_000);
    expect(queueBound(10_000, 500, 20_000, 100_000)).toBe(20_000);
  });

  it('never goes over the hard bound, which also wins over the floor', () => {
    expect(queueBound(1_000_000, 500, 20_000, 100_000)).toBe(100_000);
    expect(queueBound(80_000, 500, 20_000, 10)).toBe(10);
  });
});

describe('retryAfterMs', () => {
  it('is the time the writer needs to commit what is queued', () => {
    expect(retryAfterMs(10_000, 50_000)).toBe(200);
  });

  it('stays within 100 ms … 5 s', () => {
    expect(retryAfterMs(1, 100_000)).toBe(100);
    expect(retryAfterMs(1_000_000, 1_000)).toBe(5_000);
  });

  it('falls back to a second before the first commit has given a rate', () => {
    expect(retryAfterMs(5_000, 0)).toBe(1_000);
  });
});

describe('GroupCommitWriter.resize', () => {
  it('charges a reservation what its request holds now, down or up, and gives back exactly that', async () => {
    const { GroupCommitWriter } = await import('./writer.ts');
    const { silentLogger } = await import('../log.ts');
    const writer = new GroupCommitWriter({
      storage: { writeConcurrency: 2 } as never,
      logger: silentLogger,
      maxBatchReadings: 5_000,
      flushDelayMs: 5,
      queueDelayTargetMs: 1_000,
      maxQueuedReadings: 100_000,
      maxQueuedBytes: 1_000_000,
      ensurePartitions: async () => {},
    });
    const reservation = writer.reserve(100, 800_000);
    writer.resize(reservation, 9_600);
    expect(writer.depth.bytes).toBe(9_600);
    // The room freed admits what the first charge refused.
    const other = writer.reserve(100, 900_000);
    // Columns that came out bigger than their estimate are charged as they are, without a refusal.
    writer.resize(reservation, 151_200);
    expect(writer.depth.bytes).toBe(1_051_200);
    expect(() => writer.reserve(1, 1)).toThrow(/write queue is full/);
    writer.release(reservation);
    expect(writer.depth.bytes).toBe(900_000);
    // A released reservation is not charged again.
    writer.resize(reservation, 1);
    expect(writer.depth.bytes).toBe(900_000);
    writer.release(other);
    expect(writer.depth.bytes).toBe(0);
  });
});
