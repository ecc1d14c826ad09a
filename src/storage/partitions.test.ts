import { describe, expect, it } from 'vitest';
import { daysToCover, expiredPartitions, partitionDay, partitionName, startOfUtcDay } from './partitions.ts';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 24, 13, 30);

describe('partition arithmetic', () => {
  it('names a partition by the UTC day of a time and reads the day back', () => {
    expect(partitionName(NOW)).toBe('readings_p20261124');
    expect(partitionDay('readings_p20261124')).toBe(startOfUtcDay(NOW));
    expect(partitionDay('readings_default')).toBeUndefined();
  });

  it('covers from the retention cutoff’s day to the days ahead', () => {
    const days = daysToCover(NOW, 2, 1);
    expect(days.map((d) => partitionName(d))).toEqual([
      'readings_p20261122',
      'readings_p20261123',
      'readings_p20261124',
      'readings_p20261125',
    ]);
  });

  it('expires only days wholly older than the cutoff', () => {
    const names = ['readings_p20261121', 'readings_p20261122', 'readings_p20261123', 'other_table'];
    // Cutoff 2026-11-22 13:30: the 21st is wholly older, the 22nd still holds kept readings.
    expect(expiredPartitions(names, NOW, 2)).toEqual(['readings_p20261121']);
    expect(expiredPartitions(names, startOfUtcDay(NOW) + 2 * DAY, 3)).toEqual([
      'readings_p20261121',
      'readings_p20261122',
    ]);
  });
});
