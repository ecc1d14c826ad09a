import { afterEach, describe, expect, it } from 'vitest';
import { createTestAgent, pushReadings, SITE, TOKEN } from '../../simulators/testing/agent-harness.ts';
import {
  type FakeService,
  type FakeServiceOptions,
  type FramePlan,
  startFakeService,
} from '../../simulators/testing/fake-service.ts';
import type { Delivery, DeliveryOverrides } from '../../src/agent/delivery/delivery.ts';

let fake: FakeService | null = null;
let agent: Delivery | null = null;

afterEach(async () => {
  await agent?.close();
  await fake?.close();
  agent = null;
  fake = null;
});

async function setup(options: Omit<FakeServiceOptions, 'tokens'> = {}, overrides: DeliveryOverrides = {}) {
  fake = await startFakeService({ tokens: { [TOKEN]: SITE }, ...options });
  agent = createTestAgent('ws', fake.url, overrides);
  return { fake, agent };
}

const plan = (plans: Record<number, FramePlan>) => (n: number) => plans[n] ?? { kind: 'ack' };

describe('WebSocket delivery against a real server', () => {
  it('streams frames with several unacknowledged at once over one connection', async () => {
    const { fake, agent } = await setup({ answerDelayMs: 30 });
    const keys = pushReadings(agent, 200);
    expect(await agent.drain(5000)).toBe(true);
    expect(fake.stored(SITE)).toEqual(new Set(keys));
    expect(fake.stats).toMatchObject({ frames: 20, connections: 1 });
    expect(fake.stats.maxInFlight).toBeGreaterThan(1);
    expect(fake.stats.maxInFlight).toBeLessThanOrEqual(4);
    expect(agent.counters()).toMatchObject({ generated: 200, acknowledged: 200, retried: 0, buffered: 0 });
  });

  it('reconnects after a dropped connection and resends every unacknowledged frame', async () => {
    // Frame 3 is stored but the connection dies before its ack; frame 6 dies before it is stored.
    const { fake, agent } = await setup({
      onFrame: plan({ 3: { kind: 'commit_then_drop' }, 6: { kind: 'drop' } }),
      answerDelayMs: 5,
    });
    const keys = pushReadings(agent, 150);
    expect(await agent.drain(5000)).toBe(true);
    expect(fake.stats.connections).toBeGreaterThanOrEqual(2);
    expect(fake.stored(SITE)).toEqual(new Set(keys));
    expect(agent.acknowledged).toEqual(new Set(keys));
    const receipts = [...fake.receipts(SITE).values()];
    const c = agent.counters();
    // Whatever was stored twice was reported back as duplicates; nothing was lost or double counted.
    expect(c.duplicates).toBe(receipts.reduce((n, r) => n + r - 1, 0));
    expect(c.duplicates).toBeGreaterThanOrEqual(10);
    expect(c).toMatchObject({ generated: 150, acknowledged: 150, rejected: 0, buffered: 0 });
    // Frames stored before the drop come back as duplicates, so the agent saw fewer "accepted".
    expect(c.accepted + c.duplicates).toBe(150);
    expect(c.retried).toBeGreaterThanOrEqual(20);
  });

  it('survives the service dropping every connection mid-stream', async () => {
    const { fake, agent } = await setup({ answerDelayMs: 20 });
    const keys = pushReadings(agent, 100);
    await new Promise((r) => setTimeout(r, 30));
    fake.dropConnections();
    keys.push(...pushReadings(agent, 100, 100));
    expect(await agent.drain(5000)).toBe(true);
    expect(fake.stats.connections).toBeGreaterThanOrEqual(2);
    expect(fake.stored(SITE)).toEqual(new Set(keys));
    expect(agent.counters()).toMatchObject({ acknowledged: 200, buffered: 0 });
  });

  it('resends a frame answered with retry_after_ms, no sooner than asked', async () => {
    const { fake, agent } = await setup({ onFrame: plan({ 1: { kind: 'retry_after', ms: 300 } }) });
    const keys = pushReadings(agent, 10);
    expect(await agent.drain(3000)).toBe(true);
    expect(fake.stored(SITE)).toEqual(new Set(keys));
    expect(fake.arrivals).toHaveLength(2);
    expect(fake.arrivals[1]! - fake.arrivals[0]!).toBeGreaterThanOrEqual(295);
    expect(agent.counters()).toMatchObject({ acknowledged: 10, retried: 10, failures: 1 });
  });

  it('does not resend a frame the service calls malformed', async () => {
    const { fake, agent } = await setup({ onFrame: plan({ 1: { kind: 'error', code: 'invalid_frame' } }) });
    pushReadings(agent, 20);
    expect(await agent.drain(3000)).toBe(true);
    expect(fake.stats.frames).toBe(2);
    expect(agent.counters()).toMatchObject({ acknowledged: 10, rejected: 10, retried: 0 });
  });

  it('treats 401 at upgrade as a rejection, and 503 at upgrade as a retry honouring Retry-After', async () => {
    fake = await startFakeService({ tokens: { [TOKEN]: SITE } });
    agent = createTestAgent('ws', fake.url, {}, 'wrong');
    pushReadings(agent, 10);
    expect(await agent.drain(2000)).toBe(true);
    expect(agent.counters()).toMatchObject({ rejected: 10, acknowledged: 0 });
    expect(agent.lastError).toMatch(/401/);
    await agent.close();
    await fake.close();

    const refusedAt: number[] = [];
    const { fake: f2, agent: a2 } = await setup({
      onUpgrade: (n) => {
        refusedAt.push(performance.now());
        return n === 1 ? { status: 503, retryAfter: '0.25' } : null;
      },
    });
    const keys = pushReadings(a2, 10);
    expect(await a2.drain(3000)).toBe(true);
    expect(f2.stored(SITE)).toEqual(new Set(keys));
    expect(refusedAt[1]! - refusedAt[0]!).toBeGreaterThanOrEqual(245);
  });

  it('splits frames after the service closes with 1009 (too big) and loses nothing', async () => {
    const { fake, agent } = await setup({ maxFrameBytes: 20_000 }, { limits: { maxBatchReadings: 1000 } });
    const keys = pushReadings(agent, 600); // one frame of ~45 kB
    expect(await agent.drain(5000)).toBe(true);
    expect(fake.stored(SITE)).toEqual(new Set(keys));
    expect(fake.stats.connections).toBeGreaterThanOrEqual(2);
    expect(agent.buffer.limits.maxBatchBytes).toBeLessThanOrEqual(25_000);
    expect(agent.counters()).toMatchObject({ acknowledged: 600, rejected: 0, dropped: 0 });
  });

  it('drops a connection that leaves a frame unacknowledged too long, and resends on a new one', async () => {
    const { fake, agent } = await setup({ onFrame: plan({ 1: { kind: 'ignore' } }) }, { ackTimeoutMs: 150 });
    const keys = pushReadings(agent, 10);
    expect(await agent.drain(3000)).toBe(true);
    expect(fake.stored(SITE)).toEqual(new Set(keys));
    expect(fake.stats).toMatchObject({ frames: 2, connections: 2 });
    expect(fake.arrivals[1]! - fake.arrivals[0]!).toBeGreaterThanOrEqual(145);
  });

  it('goes quiet during a network flap and catches up after it', async () => {
    const { fake, agent } = await setup();
    pushReadings(agent, 10);
    expect(await agent.drain(2000)).toBe(true);
    agent.interruptNetwork(200);
    const keys = pushReadings(agent, 30, 10);
    await new Promise((r) => setTimeout(r, 100));
    expect(fake.stats.frames).toBe(1);
    expect(agent.offline).toBe(true);
    expect(await agent.drain(3000)).toBe(true);
    for (const k of keys) expect(fake.stored(SITE).has(k)).toBe(true);
    expect(fake.stats.connections).toBe(2);
  });
});
