import { describe, expect, it } from 'vitest';
import { finalizeReading, hasMetric, isSentinel } from './reading.ts';

describe('finalizeReading', () => {
  it('keeps what the service accepts and says what it left out, and why', () => {
    const { reading, dropped } = finalizeReading({
      device: 'd',
      kind: 'gpu',
      ts: 1,
      model: '  H100 80GB HBM3 ',
      power_w: -1,
      temp_c: 61,
      gpu_util_pct: 140,
      status: 'ok',
      extras: {
        gpu_mem_temp_c: 2 ** 63,
        energy_j_total: Number.NaN,
        chip_temp_c: { 0: 70, 9: 71 },
        gpu_sm_clock_mhz: 1980,
      },
    });
    expect(reading).toEqual({
      device: 'd',
      kind: 'gpu',
      ts: 1,
      model: 'H100 80GB HBM3',
      temp_c: 61,
      status: 'ok',
      extras: { chip_temp_c: { 0: 70 }, gpu_sm_clock_mhz: 1980 },
    });
    expect(dropped).toEqual(
      expect.arrayContaining([
        { field: 'power_w', reason: 'out_of_range' },
        { field: 'gpu_util_pct', reason: 'out_of_range' },
        { field: 'extras.gpu_mem_temp_c', reason: 'sentinel' },
        { field: 'extras.energy_j_total', reason: 'not_finite' },
        { field: 'extras.chip_temp_c.9', reason: 'unknown_index' },
      ]),
    );
    expect(dropped).toHaveLength(5);
  });

  it("keeps the whole miner's hardware errors ('' index) beside each hashboard's", () => {
    const { reading, dropped } = finalizeReading({
      device: 'm',
      kind: 'asic',
      ts: 1,
      extras: { hardware_errors_total: { '': 12, 0: 4 }, shares_accepted_total: 5 },
    });
    expect(dropped).toEqual([]);
    expect(reading.extras).toEqual({ hardware_errors_total: { '': 12, 0: 4 }, shares_accepted_total: 5 });
  });

  it('knows the exporters placeholders and what counts as a metric', () => {
    expect([2147483632, 2147483647, 2 ** 47, 2 ** 63].every(isSentinel)).toBe(true);
    expect([0, 700, 2 ** 32, 1e15].some(isSentinel)).toBe(false);
    expect(hasMetric({ device: 'd', kind: 'asic', ts: 1 })).toBe(false);
    expect(hasMetric({ device: 'd', kind: 'asic', ts: 1, status: 'offline' })).toBe(true);
  });
});
