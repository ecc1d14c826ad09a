import { describe, expect, it } from 'vitest';
import { classifyDevice, type DeviceObservation } from './device-state.ts';

const NOW = 1_800_000_000_000;
const fresh = NOW - 10_000;
const silent = NOW - 121_000;
const asic = (o: Partial<DeviceObservation>): DeviceObservation => ({
  kind: 'asic',
  status: 'ok',
  hashrate_ths: 200,
  receivedAtMs: fresh,
  ...o,
});

describe('classifyDevice', () => {
  it.each([
    ['a hashing ASIC', asic({}), 'up'],
    ['a curtailed ASIC', asic({ status: 'curtailed', hashrate_ths: 0 }), 'curtailed'],
    [
      'a curtailed ASIC that went quiet (powered off)',
      asic({ status: 'curtailed', receivedAtMs: silent }),
      'curtailed',
    ],
    ['a silent ASIC', asic({ receivedAtMs: silent }), 'stale'],
    ['an ASIC exactly at the threshold', asic({ receivedAtMs: NOW - 120_000 }), 'up'],
    ['online but not hashing', asic({ hashrate_ths: 0 }), 'down'],
    ['idle and not hashing', asic({ status: 'idle', hashrate_ths: 0 }), 'down'],
    ['in error', asic({ status: 'error' }), 'down'],
    ['offline', asic({ status: 'offline', hashrate_ths: null }), 'down'],
    ['an ASIC with no hashrate field', asic({ hashrate_ths: null, status: null }), 'up'],
    ['an idle GPU', { kind: 'gpu', status: 'idle', hashrate_ths: null, receivedAtMs: fresh } as const, 'up'],
    [
      'a GPU with hashrate 0 (not its metric)',
      { kind: 'gpu', status: 'ok', hashrate_ths: 0, receivedAtMs: fresh } as const,
      'up',
    ],
  ])('%s is %s', (_what, observation, state) => {
    expect(classifyDevice(observation, NOW, 120)).toBe(state);
  });
});
