import type { DeviceKind, DeviceStatus } from '../storage/schema.ts';

export const DEVICE_STATES = ['up', 'down', 'stale', 'curtailed'] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

/** Kinds that do the site's work; meters and PDUs measure it and are not counted as devices up or down. */
export const COMPUTE_KINDS: readonly DeviceKind[] = ['asic', 'gpu', 'other'];

export interface DeviceObservation {
  kind: DeviceKind;
  status: DeviceStatus | null;
  hashrate_ths: number | null;
  /** When hashwatt last heard from the device (server clock, epoch ms). */
  receivedAtMs: number;
}

/**
 * The state of one device. Curtailment is planned and excused, even if the device then goes quiet
 * (many are powered off); silence past the threshold is stale; an error, offline status, or an ASIC
 * reporting zero hashrate ("online but not hashing") is down.
 *
 * src/storage/fleet.ts evaluates the same rule in SQL for whole fleets; tests/fleet.test.ts holds the two to agreement.
 */
export function classifyDevice(d: DeviceObservation, nowMs: number, staleAfterS: number): DeviceState {
  if (d.status === 'curtailed') return 'curtailed';
  if (nowMs - d.receivedAtMs > staleAfterS * 1000) return 'stale';
  if (d.status === 'error' || d.status === 'offline') return 'down';
  if (d.kind === 'asic' && d.hashrate_ths === 0) return 'down';
  return 'up';
}
