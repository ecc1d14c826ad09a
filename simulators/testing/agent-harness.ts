/** Helpers for tests that run one Delivery against the fake service. */

import {
  createTransport,
  Delivery,
  type DeliveryOverrides,
  resolveDeliveryOptions,
} from '../../src/agent/delivery/delivery.ts';
import { readingKey } from '../physics/reading.ts';

export const SITE = 'site-a';
export const TOKEN = 'token-a';

/** An agent for SITE with small batches and fast backoff, so tests run in milliseconds. */
export function createTestAgent(
  kind: 'http' | 'ws',
  url: string,
  overrides: DeliveryOverrides = {},
  token = TOKEN,
): Delivery {
  const options = resolveDeliveryOptions(
    {
      trackAcks: true,
      backoff: { baseMs: 20, maxMs: 200, factor: 2 },
      limits: { maxBatchReadings: 10 },
      ackTimeoutMs: 2000,
      requestTimeoutMs: 2000,
    },
    overrides,
  );
  return new Delivery(SITE, createTransport(kind, url, token, options), options);
}

/** Pushes n valid readings (device d-<i % 7>, ts from a fixed epoch) and returns their keys. */
export function pushReadings(agent: Delivery, n: number, from = 0): string[] {
  const keys: string[] = [];
  for (let i = from; i < from + n; i++) {
    const device = `hall-a/r01/s21-${String(i % 7).padStart(3, '0')}`;
    const ts = 1_767_225_600_000 + i * 1000;
    const key = readingKey(device, ts);
    agent.push(JSON.stringify({ device, kind: 'asic', ts, power_w: 3500, hashrate_ths: 200 }), key);
    keys.push(key);
  }
  agent.pump();
  return keys;
}
