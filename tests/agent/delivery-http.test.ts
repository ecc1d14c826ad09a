import { afterEach, describe, expect, it } from 'vitest';
import { createTestAgent, pushReadings, SITE, TOKEN } from '../../simulators/testing/agent-harness.ts';
import {
  type FakeService,
  type IngestPlan,
  startFakeService,
} from '../../simulators/testing/fake-service.ts';
import type { Delivery } from '../../src/agent/delivery/delivery.ts';
import { classifyHttpStatus } from '../../src/agent/delivery/http-transport.ts';

let fake: FakeService | null = null;
let agent: Delivery | null = null;

afterEach(async () => {
  await agent?.close();
  await fake?.close();
  agent = null;
  fake = null;
});

async function setup(onIngest?: (n: number) => IngestPlan, answerDelayMs = 0) {
  fake = await startFakeService({ tokens: { [TOKEN]: SITE }, onIngest, answerDelayMs });
  agent = createTestAgent('http', fake.url);
  return { fake, agent };
}

describe('classifyHttpStatus', () => {
  it('retries 429, 408 and 5xx; never other 4xx', () => {
    expect([200, 201, 204].map(classifyHttpStatus)).toEqual(['ack', 'ack', 'ack']);
    expect([429, 408, 500, 502, 503, 504].map(classifyHttpStatus)).toEqual(Array(6).fill('retry'));
    expect([400, 401, 403, 404, 413, 415, 422].map(classifyHttpStatus)).toEqual(Array(7).fill('reject'));
  });
});

describe('HTTP delivery against a real server', () => {
  it('delivers gzip batches with several requests in flight', async () => {
    const { fake, agent } = await setup(undefined, 30);
    const keys = pushReadings(agent, 200);
    expect(await agent.drain(5000)).toBe(true);
    expect(fake.stored(SITE)).toEqual(new Set(keys));
    expect(fake.stats.requests).toBe(20);
    expect(fake.stats.maxInFlight).toBeGreaterThan(1);
    expect(fake.stats.maxInFlight).toBeLessThanOrEqual(4);
    expect(agent.counters()).toMatchObject({
      generated: 200,
      sent: 200,
      acknowledged: 200,
      accepted: 200,
      buffered: 0,
      retried: 0,
    });
  });

  it('gets every reading stored exactly once through 429, 503 and a lost answer', async () => {
    const plans: Record<number, IngestPlan> = {
      2: { kind: 'status', status: 429, retryAfter: '0.3' },
      4: { kind: 'status', status: 503 },
      6: { kind: 'commit_then_drop' },
      9: { kind: 'status', status: 503, retryAfter: '0' },
    };
    const { fake, agent } = await setup((n) => plans[n] ?? { kind: 'ok' });
    const keys = pushReadings(agent, 100);
    expect(await agent.drain(5000)).toBe(true);
    expect(fake.stored(SITE)).toEqual(new Set(keys));
    expect(agent.acknowledged).toEqual(new Set(keys));
    // The batch whose answer was lost was stored, then resent: the service saw it twice, stored it once.
    const twice = [...fake.receipts(SITE).values()].filter((n) => n === 2).length;
    expect(twice).toBe(10);
    const c = agent.counters();
    expect(c).toMatchObject({
      generated: 100,
      acknowledged: 100,
      accepted: 90,
      duplicates: 10,
      rejected: 0,
      buffered: 0,
      dropped: 0,
    });
    expect(c.retried).toBeGreaterThanOrEqual(30);
    expect(c.sent).toBe(100 + c.retried);
  });

  it('waits at least Retry-After before trying again', async () => {
    const { fake, agent } = await setup((n) =>
      n === 1 ? { kind: 'status', status: 429, retryAfter: '1' } : { kind: 'ok' },
    );
    pushReadings(agent, 5);
    expect(await agent.drain(5000)).toBe(true);
    expect(fake.arrivals).toHaveLength(2);
    const gap = fake.arrivals[1]! - fake.arrivals[0]!;
    expect(gap).toBeGreaterThanOrEqual(990);
    expect(gap).toBeLessThan(1300);
  });

  it('backs off longer after each consecutive failure', async () => {
    const { fake, agent } = await setup((n) => (n <= 4 ? { kind: 'status', status: 503 } : { kind: 'ok' }));
    pushReadings(agent, 5);
    expect(await agent.drain(5000)).toBe(true);
    const gaps = fake.arrivals.slice(1).map((t, i) => t - fake.arrivals[i]!);
    expect(gaps).toHaveLength(4);
    // Base 20 ms with equal jitter: [10,20], [20,40], [40,80], [80,160].
    expect(gaps[0]!).toBeGreaterThanOrEqual(9);
    expect(gaps[2]!).toBeGreaterThan(gaps[0]!);
    expect(gaps[3]!).toBeGreaterThanOrEqual(79);
  });

  it('does not retry a 400: the batch is counted rejected and leaves the buffer', async () => {
    const { fake, agent } = await setup((n) =>
      n === 1 ? { kind: 'status', status: 400, code: 'invalid_body' } : { kind: 'ok' },
    );
    pushReadings(agent, 30);
    expect(await agent.drain(5000)).toBe(true);
    expect(fake.stats.requests).toBe(3);
    expect(fake.stored(SITE).size).toBe(20);
    expect(agent.counters()).toMatchObject({
      generated: 30,
      acknowledged: 20,
      rejected: 10,
      retried: 0,
      buffered: 0,
    });
    expect(agent.lastError).toBeNull(); // later batches went through
  });

  it('does not retry a 413 either, and makes later batches smaller', async () => {
    const { agent } = await setup((n) =>
      n === 1 ? { kind: 'status', status: 413, code: 'payload_too_large' } : { kind: 'ok' },
    );
    pushReadings(agent, 10);
    const bytes = agent.buffer.bytes;
    expect(await agent.drain(2000)).toBe(true);
    expect(agent.counters()).toMatchObject({ rejected: 10, retried: 0 });
    expect(agent.buffer.limits.maxBatchBytes).toBeLessThanOrEqual(Math.max(16 * 1024, bytes / 2));
  });

  it('counts readings the service rejects one by one, and keeps them out of the acknowledged set', async () => {
    const { fake, agent } = await setup();
    agent.push(JSON.stringify({ device: 'm', kind: 'meter', ts: 1, power_w: 5 }), 'm@1');
    agent.push(JSON.stringify({ device: 'm', kind: 'meter', ts: 2, power_w: 5, bogus: 1 }), 'm@2');
    agent.pump();
    expect(await agent.drain(2000)).toBe(true);
    expect(fake.stats.rejectedReadings).toBe(1);
    expect(agent.counters()).toMatchObject({ acknowledged: 1, rejected: 1 });
    expect([...agent.acknowledged!]).toEqual(['m@1']);
  });

  it('rejects everything with a wrong token (401), without retrying', async () => {
    fake = await startFakeService({ tokens: { [TOKEN]: SITE } });
    agent = createTestAgent('http', fake.url, {}, 'wrong');
    pushReadings(agent, 20);
    expect(await agent.drain(2000)).toBe(true);
    expect(agent.counters()).toMatchObject({ rejected: 20, acknowledged: 0, retried: 0 });
    expect(agent.lastError).toMatch(/401 unauthorized/);
  });

  it('keeps buffering while the service is down and delivers once it is back', async () => {
    const first = await startFakeService({ tokens: { [TOKEN]: SITE } });
    const url = first.url;
    await first.close();
    agent = createTestAgent('http', url);
    const keys = pushReadings(agent, 40);
    await new Promise((r) => setTimeout(r, 150));
    expect(agent.counters().failures).toBeGreaterThan(0);
    expect(agent.counters().buffered).toBe(40);
    expect(agent.counters().acknowledged).toBe(0);
    // Same port again: the agent's retries find the service.
    const port = Number(new URL(url).port);
    fake = await startFakeService({ tokens: { [TOKEN]: SITE }, port });
    expect(await agent.drain(3000)).toBe(true);
    expect(fake.stored(SITE)).toEqual(new Set(keys));
  });
});
