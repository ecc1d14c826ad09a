import { afterEach, describe, expect, it } from 'vitest';
import { provisionSites } from './agent/provision.ts';
import { type FleetHandle, startFleet } from './fleet.ts';
import { METER_DEVICE } from './physics/site.ts';
import { loadScenario, parseScenario, type Scenario } from './scenario.ts';
import { type FakeService, startFakeService } from './testing/fake-service.ts';

const START = Date.parse('2026-03-01T12:00:00Z');
const FAST = { backoff: { baseMs: 10, maxMs: 50 } };

let fakes: FakeService[] = [];
let fleets: FleetHandle[] = [];

afterEach(async () => {
  await Promise.all(fleets.map((f) => f.stop({ flushMs: 0 })));
  await Promise.all(fakes.map((f) => f.close()));
  fakes = [];
  fleets = [];
});

async function fakeFor(scenario: Scenario): Promise<{ fake: FakeService; tokens: Record<string, string> }> {
  const fake = await startFakeService({ adminToken: 'admin' });
  fakes.push(fake);
  const tokens = await provisionSites({ url: fake.url, adminToken: 'admin', scenario });
  return { fake, tokens };
}

function oneSite(faults: unknown[], extra: Record<string, unknown> = {}): Scenario {
  return parseScenario({
    name: 'one',
    interval_s: 1,
    duration_s: 20,
    random_failures: false,
    sites: [
      { name: 'wy', kind: 'mining', capacity_kw: 200, transport: 'http', devices: { asic: { S21: 20 } } },
    ],
    faults,
    ...extra,
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('startFleet', () => {
  it('runs the demo sites over HTTP and WebSocket; what was acknowledged is exactly what was stored', async () => {
    const scenario = loadScenario('demo', { scale: 0.05, interval_s: 0.25, duration_s: 2 });
    const { fake, tokens } = await fakeFor(scenario);
    const fleet = startFleet({ scenario, url: fake.url, tokens, seed: 3, trackAcks: true, agent: FAST });
    fleets.push(fleet);
    const final = await fleet.done;
    expect(final.total.generated).toBeGreaterThan(100);
    expect(final.total).toMatchObject({ rejected: 0, dropped: 0, buffered: 0 });
    expect(final.total.acknowledged).toBe(final.total.generated);
    for (const site of scenario.sites) {
      expect(fleet.acknowledged().get(site.name)).toEqual(fake.stored(site.name));
      expect(fake.stored(site.name).size).toBe(final.sites[site.name]!.generated);
    }
    expect(fake.stats.requests).toBeGreaterThan(0); // demo-mining-tx is HTTP
    expect(fake.stats.frames).toBeGreaterThan(0); // the others stream
  });

  it('stays silent through a site outage and backfills the buffered readings afterwards', async () => {
    // speed 10: a tick every 100 ms; the outage covers ticks 5–14, i.e. 500–1500 ms of wall time.
    const scenario = oneSite([{ type: 'site_outage', at_s: 5, duration_s: 10, backfill: true }]);
    const { fake, tokens } = await fakeFor(scenario);
    const fleet = startFleet({
      scenario,
      url: fake.url,
      tokens,
      startMs: START,
      speed: 10,
      trackAcks: true,
      agent: FAST,
    });
    fleets.push(fleet);
    await sleep(750);
    const early = fleet.counters().total;
    await sleep(500);
    const late = fleet.counters().total;
    expect(late.generated).toBeGreaterThan(early.generated);
    expect(late.acknowledged).toBe(early.acknowledged);
    expect(late.buffered).toBeGreaterThan(early.buffered);
    const final = await fleet.done;
    const meterTs = fake
      .readings('wy')
      .filter((r) => r.device === METER_DEVICE)
      .map((r) => Date.parse(r.ts as string));
    expect(meterTs).toHaveLength(20);
    expect(new Set(meterTs)).toEqual(new Set(Array.from({ length: 20 }, (_, i) => START + i * 1000)));
    expect(final.total).toMatchObject({ generated: 420, acknowledged: 420, dropped: 0, buffered: 0 });
  });

  it('leaves a gap when the outage has no backfill: those readings never existed', async () => {
    const scenario = oneSite([{ type: 'site_outage', at_s: 5, duration_s: 10, backfill: false }]);
    const { fake, tokens } = await fakeFor(scenario);
    const fleet = startFleet({ scenario, url: fake.url, tokens, startMs: START, speed: 20, agent: FAST });
    fleets.push(fleet);
    const final = await fleet.done;
    const meterTicks = fake
      .readings('wy')
      .filter((r) => r.device === METER_DEVICE)
      .map((r) => (Date.parse(r.ts as string) - START) / 1000)
      .sort((a, b) => a - b);
    expect(meterTicks).toEqual([0, 1, 2, 3, 4, 15, 16, 17, 18, 19]);
    expect(final.total).toMatchObject({ generated: 210, acknowledged: 210 });
  });

  it('drops the oldest readings when an outage outlasts the buffer, and says how many', async () => {
    const scenario = oneSite([{ type: 'site_outage', at_s: 2, duration_s: 15 }], {
      sites: [
        {
          name: 'wy',
          kind: 'mining',
          capacity_kw: 200,
          devices: { asic: { S21: 20 } },
          agent: { max_buffer_readings: 100 },
        },
      ],
    });
    const { fake, tokens } = await fakeFor(scenario);
    const fleet = startFleet({ scenario, url: fake.url, tokens, startMs: START, speed: 20, agent: FAST });
    fleets.push(fleet);
    const final = await fleet.done;
    expect(final.total.dropped).toBeGreaterThan(100);
    expect(final.total.generated).toBe(420);
    expect(final.total.acknowledged + final.total.dropped).toBe(420);
    expect(fake.stored('wy').size).toBe(final.total.acknowledged);
  });

  it('stops on request: stops generating, flushes, and resolves done with the final counters', async () => {
    const scenario = loadScenario('demo', { scale: 0.02, interval_s: 0.1, sites: ['demo-mining-tx'] });
    expect(scenario.duration_s).toBe(0);
    const { fake, tokens } = await fakeFor(scenario);
    const statuses: number[] = [];
    const fleet = startFleet({
      scenario,
      url: fake.url,
      tokens,
      agent: FAST,
      statusIntervalMs: 50,
      onStatus: (s) => statuses.push(s.total.generated),
    });
    fleets.push(fleet);
    await sleep(400);
    const final = await fleet.stop({ flushMs: 2000 });
    expect(await fleet.done).toEqual(final);
    expect(final.total.generated).toBeGreaterThan(0);
    expect(final.total).toMatchObject({ buffered: 0, acknowledged: final.total.generated });
    expect(statuses.length).toBeGreaterThanOrEqual(3);
    await sleep(150);
    expect(fleet.counters().total.generated).toBe(final.total.generated); // nothing generated after stop
  });

  it('gives identical readings to the service for the same seed and start time', async () => {
    const scenario = loadScenario('demo', {
      scale: 0.03,
      interval_s: 1,
      duration_s: 3,
      sites: ['demo-mixed-nordics'],
    });
    const runOnce = async (seed: number) => {
      const { fake, tokens } = await fakeFor(scenario);
      const fleet = startFleet({
        scenario,
        url: fake.url,
        tokens,
        seed,
        startMs: START,
        speed: 10,
        agent: FAST,
      });
      fleets.push(fleet);
      await fleet.done;
      return JSON.stringify(
        fake.readings('demo-mixed-nordics').sort((a, b) => (a.device + a.ts < b.device + b.ts ? -1 : 1)),
      );
    };
    const [a, b, c] = [await runOnce(5), await runOnce(5), await runOnce(6)];
    expect(a.length).toBeGreaterThan(1000);
    expect(b).toBe(a);
    expect(c).not.toBe(a);
  });

  it('offers a load scenario open-loop at the target rate, from templates', async () => {
    const scenario = parseScenario({
      name: 'load-test',
      duration_s: 1,
      rate_per_s: 20_000,
      ts_format: 'epoch_ms',
      random_failures: false,
      sites: [
        {
          name: 'l1',
          kind: 'mining',
          capacity_kw: 20_000,
          transport: 'http',
          meter: false,
          devices: { asic: { S21: 4000 } },
        },
        {
          name: 'l2',
          kind: 'mining',
          capacity_kw: 20_000,
          transport: 'ws',
          meter: false,
          devices: { asic: { 'S21 Pro': 4000 } },
        },
      ],
    });
    const { fake, tokens } = await fakeFor(scenario);
    const fleet = startFleet({ scenario, url: fake.url, tokens, trackAcks: true, agent: FAST });
    fleets.push(fleet);
    const final = await fleet.done;
    expect(final.total.generated).toBeGreaterThanOrEqual(19_000);
    expect(final.total.generated).toBeLessThanOrEqual(20_000);
    expect(final.sites.l1!.generated).toBeCloseTo(final.sites.l2!.generated, -2);
    expect(final.total.acknowledged).toBe(final.total.generated);
    expect(fleet.acknowledged().get('l1')).toEqual(fake.stored('l1'));
    expect(fake.stats.rejectedReadings).toBe(0);
    expect(fleet.status().targetPerS).toBe(20_000);
  });

  it('refuses a load rate its devices cannot carry without repeating timestamps', () => {
    const scenario = loadScenario('load', { scale: 0.0001, rate_per_s: 1_000_000 });
    const tokens = Object.fromEntries(scenario.sites.map((s) => [s.name, 't']));
    expect(() => startFleet({ scenario, url: 'http://127.0.0.1:1', tokens })).toThrow(
      /cannot carry .* readings\/s/,
    );
  });

  it('needs a token for every site', () => {
    const scenario = loadScenario('demo');
    expect(() => startFleet({ scenario, url: 'http://127.0.0.1:1', tokens: {} })).toThrow(
      /no token for site "demo-mining-tx"/,
    );
  });
});

describe('provisionSites', () => {
  it('creates sites, and rotates the token of sites that already exist', async () => {
    const scenario = loadScenario('outage');
    const fake = await startFakeService({ adminToken: 'admin' });
    fakes.push(fake);
    const first = await provisionSites({ url: fake.url, adminToken: 'admin', scenario });
    expect(Object.keys(first)).toEqual(['outage-mining-wy', 'outage-ai-va']);
    expect(fake.sites.get('outage-mining-wy')).toMatchObject({ kind: 'mining', capacity_w: 515_000 });
    // The scenario's threshold overrides are set on the site it provisions (again on every run).
    expect(fake.sites.get('outage-ai-va')?.thresholds).toEqual({ surplus_min_ratio: 0.4 });
    expect(fake.sites.get('outage-mining-wy')?.thresholds).toBeUndefined();
    const second = await provisionSites({ url: fake.url, adminToken: 'admin', scenario });
    expect(second['outage-mining-wy']).not.toBe(first['outage-mining-wy']);
    expect(fake.sites.get('outage-mining-wy')!.token).toBe(second['outage-mining-wy']);
    await expect(provisionSites({ url: fake.url, adminToken: 'nope', scenario })).rejects.toThrow(
      /site "outage-mining-wy": create failed: HTTP 401 unauthorized/,
    );
  });
});
