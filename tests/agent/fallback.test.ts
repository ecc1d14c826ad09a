import { afterEach, describe, expect, it } from 'vitest';
import { pushReadings, SITE, TOKEN } from '../../simulators/testing/agent-harness.ts';
import { type FakeService, startFakeService } from '../../simulators/testing/fake-service.ts';
import { createTransport, Delivery, resolveDeliveryOptions } from '../../src/agent/delivery/delivery.ts';
import { FallbackTransport } from '../../src/agent/delivery/fallback-transport.ts';
import { waitFor } from './support.ts';

let fake: FakeService | null = null;
let delivery: Delivery | null = null;
afterEach(async () => {
  await delivery?.close();
  await fake?.close();
  delivery = null;
  fake = null;
});

const options = (over = {}) =>
  resolveDeliveryOptions(
    {
      trackAcks: true,
      backoff: { baseMs: 20, maxMs: 100, factor: 2 },
      limits: { maxBatchReadings: 10 },
      ackTimeoutMs: 2000,
      requestTimeoutMs: 2000,
    },
    over,
  );

describe('WebSocket with HTTP as fallback', () => {
  it('carries readings over HTTP while the stream is refused, and goes back to the stream later', async () => {
    // A proxy in front of the service that refuses every upgrade.
    fake = await startFakeService({ tokens: { [TOKEN]: SITE }, onUpgrade: () => ({ status: 426 }) });
    const o = options();
    const transport = createTransport('ws-fallback', fake.url, TOKEN, o);
    expect(transport).toBeInstanceOf(FallbackTransport);
    delivery = new Delivery(SITE, transport, o);
    const keys = pushReadings(delivery, 60);
    expect(await delivery.drain(5000)).toBe(true);
    expect(fake.stored(SITE)).toEqual(new Set(keys));
    expect(fake.stats.requests).toBeGreaterThanOrEqual(6); // HTTP carried them
    expect(fake.stats.frames).toBe(0);
    expect((transport as FallbackTransport).mode).toBe('http');
    expect((transport as FallbackTransport).fallbacks).toBe(1);
    // A connection refused is not the batch's fault: nothing was refused or lost.
    expect(delivery.counters()).toMatchObject({ acknowledged: 60, rejected: 0, buffered: 0 });
  });

  it('stays on the stream when it opens', async () => {
    fake = await startFakeService({ tokens: { [TOKEN]: SITE } });
    const o = options();
    const transport = createTransport('ws-fallback', fake.url, TOKEN, o) as FallbackTransport;
    delivery = new Delivery(SITE, transport, o);
    pushReadings(delivery, 30);
    expect(await delivery.drain(5000)).toBe(true);
    expect(transport.mode).toBe('ws');
    expect(fake.stats.requests).toBe(0);
    expect(fake.stats.frames).toBeGreaterThanOrEqual(3);
  });

  it('goes back to the stream after the hold time', async () => {
    let refuse = true;
    fake = await startFakeService({
      tokens: { [TOKEN]: SITE },
      onUpgrade: () => (refuse ? { status: 404 } : null),
    });
    const o = options();
    const ws = createTransport('ws', fake.url, TOKEN, o);
    const http = createTransport('http', fake.url, TOKEN, o);
    const transport = new FallbackTransport(ws, http, { holdMs: 50 });
    delivery = new Delivery(SITE, transport, o);
    pushReadings(delivery, 10);
    expect(await delivery.drain(5000)).toBe(true);
    expect(transport.mode).toBe('http');
    refuse = false;
    // Once the hold is over, the next send asks the stream first again.
    let next = 10;
    const d = delivery;
    const back = await waitFor(async () => {
      pushReadings(d, 1, next++);
      await d.drain(2000);
      return transport.mode === 'ws';
    });
    expect(back).toBe(true);
    expect(fake.stats.frames).toBeGreaterThan(0);
  });
});

describe('a refused site token', () => {
  it('keeps the readings (the spool holds them for the fixed token) and says unauthorized', async () => {
    fake = await startFakeService({ tokens: { 'another-token': SITE } });
    const o = options({ keepOnUnauthorized: true, unauthorizedRetryMs: 50 });
    delivery = new Delivery(SITE, createTransport('ws-fallback', fake.url, TOKEN, o), o);
    pushReadings(delivery, 20);
    expect(await delivery.drain(400)).toBe(false);
    expect(delivery.unauthorized).toBe(true);
    expect(delivery.counters()).toMatchObject({ rejected: 0, buffered: 20, acknowledged: 0 });
    expect(delivery.lastError).toContain('the site token was refused');
  });

  it('the simulators, as the contract says, refuse them', async () => {
    fake = await startFakeService({ tokens: { 'another-token': SITE } });
    const o = options();
    delivery = new Delivery(SITE, createTransport('http', fake.url, TOKEN, o), o);
    pushReadings(delivery, 20);
    expect(await delivery.drain(2000)).toBe(true);
    expect(delivery.counters()).toMatchObject({ rejected: 20, buffered: 0 });
  });
});
