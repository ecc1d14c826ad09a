import { HashwattError } from '../errors.ts';
import type { IngestResult } from './pipeline.ts';

/** Most readings one request or frame may carry. */
export const MAX_READINGS_PER_BATCH = 10_000;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The readings of a decoded batch `{ readings: [...] }` (plus the keys a transport allows). */
export function batchReadings(value: unknown, allowedKeys: readonly string[] = []): unknown[] {
  if (!isObject(value)) throw new HashwattError('invalid_body', 'expected an object { "readings": [...] }');
  for (const key of Object.keys(value)) {
    if (key !== 'readings' && !allowedKeys.includes(key)) {
      throw new HashwattError('invalid_body', `unknown field "${key}"`, { field: key });
    }
  }
  const readings = value.readings;
  if (!Array.isArray(readings)) {
    throw new HashwattError('invalid_body', '"readings" must be an array', { field: 'readings' });
  }
  if (readings.length > MAX_READINGS_PER_BATCH) {
    throw new HashwattError('too_many_readings', `at most ${MAX_READINGS_PER_BATCH} readings per batch`, {
      field: 'readings',
    });
  }
  return readings;
}

/** The sequence number of a WebSocket frame, if it has a usable one. */
export function frameSeq(value: unknown): number | undefined {
  if (!isObject(value)) return undefined;
  const seq = value.seq;
  return typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0 ? seq : undefined;
}

/** The JSON contract's answer to a batch (HTTP body, WebSocket ack), in the wire's snake_case. */
export function wireResult(result: IngestResult) {
  return {
    accepted: result.accepted,
    duplicates: result.duplicates,
    accepted_samples: result.acceptedSamples,
    duplicate_samples: result.duplicateSamples,
    rejected: result.rejected,
  };
}
