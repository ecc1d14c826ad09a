/** The wire shape of one reading, exactly as the ingest API accepts it (unknown fields are rejected). */
export type DeviceKind = 'asic' | 'gpu' | 'meter' | 'pdu' | 'other';
export type DeviceStatus = 'ok' | 'curtailed' | 'idle' | 'error' | 'offline';

export interface Reading {
  device: string;
  kind: DeviceKind;
  /** RFC3339 string or epoch milliseconds; the service accepts both. */
  ts: string | number;
  model?: string;
  power_w?: number;
  hashrate_ths?: number;
  expected_hashrate_ths?: number;
  temp_c?: number;
  fan_rpm?: number;
  gpu_util_pct?: number;
  gpu_mem_used_bytes?: number;
  available_power_w?: number;
  status?: DeviceStatus;
}

/**
 * Identity of a reading as the service sees it within one site: (device, ts in epoch ms).
 * Tests compare sets of these keys between what the agent saw acknowledged and what was stored.
 */
export function readingKey(device: string, tsMs: number): string {
  return `${device}@${tsMs}`;
}

/** Rounds to a fixed number of decimals so readings stay short on the wire and compare exactly. */
export function roundTo(value: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}
