import { describe, expect, it } from 'vitest';
import type { DeviceGroup, FleetSite } from '../storage/fleet.ts';
import { foldDeviceGroups } from './aggregate.ts';

const site: FleetSite = { site_id: 1, name: 'a', kind: 'mixed', capacity_w: 1e6, thresholds: {} };
const group = (g: Partial<DeviceGroup>): DeviceGroup => ({
  site_id: 1,
  kind: 'asic',
  state: 'up',
  fresh: true,
  devices: 1,
  last_received_ms: 1000,
  power_w: 0,
  hashrate_ths: 0,
  expected_hashrate_ths: 0,
  hashing_power_w: 0,
  with_util: 0,
  util_ratio_sum: 0,
  util_idle: 0,
  available_power_w: null,
  with_available: 0,
  ...g,
});

describe('foldDeviceGroups', () => {
  it('keeps a site without devices, with nothing reported', () => {
    const [a] = foldDeviceGroups([site], []);
    expect(a).toMatchObject({ site_id: 1, last_received_ms: null, devices_up: 0, meter_power_w: null });
  });

  it('counts compute devices by state, leaving meters out of the device counts', () => {
    const [a] = foldDeviceGroups(
      [site],
      [
        group({ devices: 5 }),
        group({ kind: 'gpu', state: 'down', devices: 2 }),
        group({ state: 'curtailed', fresh: false, devices: 3 }),
        group({ kind: 'meter', devices: 1 }),
      ],
    );
    expect(a).toMatchObject({
      devices_up: 5,
      devices_down: 2,
      devices_curtailed: 3,
      devices_stale: 0,
      meters_total: 1,
    });
  });

  it('sums power and hashrate of fresh devices only; curtailed ASICs draw power but are not expected to hash', () => {
    const [a] = foldDeviceGroups(
      [site],
      [
        group({
          power_w: 7000,
          hashrate_ths: 400,
          expected_hashrate_ths: 400,
          hashing_power_w: 7000,
          devices: 2,
        }),
        group({ state: 'curtailed', power_w: 100, expected_hashrate_ths: 200 }),
        group({ state: 'stale', fresh: false, power_w: 3500, hashrate_ths: 200, expected_hashrate_ths: 200 }),
      ],
    );
    expect(a).toMatchObject({
      asic_power_w: 7100,
      hashrate_ths: 400,
      expected_hashrate_ths: 400,
      hashing_power_w: 7000,
    });
  });

  it('counts up ASICs and GPUs with their power, for the typical device of each kind', () => {
    const [a] = foldDeviceGroups(
      [site],
      [
        group({ devices: 10, power_w: 35_000 }),
        group({ state: 'down', devices: 2, power_w: 300 }),
        group({ kind: 'gpu', devices: 8, power_w: 5_600 }),
      ],
    );
    expect(a).toMatchObject({ asics_up: 10, asics_up_power_w: 35_000, gpus_up: 8, gpus_up_power_w: 5_600 });
  });

  it('takes meter power and available power from fresh meters only', () => {
    const [a] = foldDeviceGroups(
      [site],
      [
        group({ kind: 'meter', power_w: 5e5, available_power_w: 8e5, with_available: 1 }),
        group({
          kind: 'meter',
          state: 'stale',
          fresh: false,
          power_w: 9e9,
          available_power_w: 9e9,
          with_available: 1,
        }),
      ],
    );
    expect(a).toMatchObject({
      meters_total: 2,
      meters_fresh: 1,
      meter_power_w: 5e5,
      meter_available_w: 8e5,
      meters_with_available: 1,
    });
  });

  it('keeps the latest contact over all groups and ignores groups of unknown sites', () => {
    const [a] = foldDeviceGroups(
      [site],
      [group({ last_received_ms: 5 }), group({ last_received_ms: 9 }), group({ site_id: 2 })],
    );
    expect(a?.last_received_ms).toBe(9);
  });
});
