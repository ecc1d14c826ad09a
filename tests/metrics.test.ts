import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../src/service.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import {
  asicReading,
  type CreatedSite,
  createSite,
  postReadings,
  startTestService,
} from './support/service.ts';

// What /metrics says about the fleet is what was ingested: readings go in through the real HTTP API,
// the real exposition comes out, and every fleet gauge is checked against sums done here by hand.

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (what prom-client renders). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, raw] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key!] = raw!.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

const NOW = Date.now();
const ts = NOW - 5_000;

// A mining site without a meter: drawn power is the sum of its devices'.
const MINING = [
  asicReading('hall-a/r01/s21-001', ts, { power_w: 3500, hashrate_ths: 200, expected_hashrate_ths: 200 }),
  asicReading('hall-a/r01/s21-002', ts, { power_w: 3400, hashrate_ths: 190, expected_hashrate_ths: 200 }),
  // Curtailed for the grid: excused, its hashrate not expected.
  asicReading('hall-a/r01/s21-003', ts, {
    power_w: 40,
    hashrate_ths: 0,
    expected_hashrate_ths: 200,
    status: 'curtailed',
  }),
  asicReading('hall-a/r01/s21-004', ts, {
    power_w: 0,
    hashrate_ths: 0,
    expected_hashrate_ths: 200,
    status: 'error',
  }),
  // Online but not hashing: down.
  asicReading('hall-a/r01/s21-005', ts, { power_w: 3300, hashrate_ths: 0, expected_hashrate_ths: 200 }),
];

// A mixed site with a meter that reports available power, GPUs and ASICs.
const MIXED = [
  { device: 'main-meter', kind: 'meter', ts, power_w: 300_000, available_power_w: 400_000 },
  { device: 'gpu-01/0', kind: 'gpu', ts, power_w: 700, gpu_util_pct: 90, status: 'ok' },
  { device: 'gpu-01/1', kind: 'gpu', ts, power_w: 650, gpu_util_pct: 70, status: 'ok' },
  { device: 'gpu-01/2', kind: 'gpu', ts, power_w: 120, gpu_util_pct: 10, status: 'ok' },
  asicReading('row-1/s21-001', ts, { power_w: 3500, hashrate_ths: 210, expected_hashrate_ths: 200 }),
  asicReading('row-1/s21-002', ts, {
    power_w: 30,
    hashrate_ths: 0,
    expected_hashrate_ths: 200,
    status: 'curtailed',
  }),
];

// Every ASIC curtailed (a grid event): none is down, none is expected to hash.
const CURTAILED = Array.from({ length: 4 }, (_, i) =>
  asicReading(`s19-${i}`, ts, {
    power_w: 25,
    hashrate_ths: 0,
    expected_hashrate_ths: 95,
    status: 'curtailed',
  }),
);

describe('/metrics reports the fleet as ingested', () => {
  let db: TestDatabase;
  let service: RunningService;
  let samples: Sample[];
  const sites: Record<string, CreatedSite> = {};

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await startTestService(db);
    sites.mining = await createSite(service.url, 'metrics-mining', 'mining', 1000);
    sites.mixed = await createSite(service.url, 'metrics-mixed', 'mixed', 500);
    sites.curtailed = await createSite(service.url, 'metrics-curtailed', 'mining', 200);
    for (const [site, readings] of [
      [sites.mining, MINING],
      [sites.mixed, MIXED],
      [sites.curtailed, CURTAILED],
    ] as const) {
      const response = await postReadings(service.url, site.token, [...readings]);
      expect(response.body, JSON.stringify(response.body)).toMatchObject({
        accepted: readings.length,
        rejected: [],
      });
    }
    // The fleet gauges read a snapshot refreshed in the background: scrape until it has caught up
    // with every reading posted above (each site counts all of its compute devices).
    const expected = { 'metrics-mining': 5, 'metrics-mixed': 5, 'metrics-curtailed': 4 };
    const deadline = Date.now() + 15_000;
    for (;;) {
      const response = await fetch(`${service.url}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
      samples = parseExposition(await response.text());
      const counted = Object.entries(expected).every(
        ([name, n]) =>
          samples
            .filter((s) => s.name === 'hashwatt_site_devices' && s.labels.site === name)
            .reduce((sum, s) => sum + s.value, 0) === n,
      );
      if (counted) break;
      if (Date.now() > deadline) throw new Error('the fleet gauges never showed the ingested devices');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  function value(name: string, labels: Record<string, string>): number | undefined {
    const found = samples.filter(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    );
    expect(
      found.length,
      `${name}${JSON.stringify(labels)} matches ${found.length} series`,
    ).toBeLessThanOrEqual(1);
    return found[0]?.value;
  }
  const site =
    (name: string, labels: Record<string, string> = {}) =>
    (metric: string) =>
      value(metric, { site: name, ...labels });

  it('draws a meterless site’s power from the sum of its devices, against its capacity', () => {
    const m = site('metrics-mining');
    const sum = MINING.reduce((total, r) => total + r.power_w, 0);
    expect(m('hashwatt_site_power_drawn_watts')).toBe(sum);
    expect(value('hashwatt_site_power_drawn_source', { site: 'metrics-mining', source: 'devices' })).toBe(1);
    expect(value('hashwatt_site_power_drawn_source', { site: 'metrics-mining', source: 'meter' })).toBe(0);
    expect(m('hashwatt_site_power_capacity_watts')).toBe(1_000_000);
    expect(m('hashwatt_site_power_available_watts')).toBe(1_000_000);
    expect(m('hashwatt_site_power_surplus_watts')).toBe(1_000_000 - sum);
    expect(m('hashwatt_site_power_surplus_ratio')).toBeCloseTo((1_000_000 - sum) / 1_000_000, 12);
    expect(value('hashwatt_site_workload_power_watts', { site: 'metrics-mining', workload: 'mining' })).toBe(
      sum,
    );
    expect(value('hashwatt_site_workload_power_watts', { site: 'metrics-mining', workload: 'ai' })).toBe(0);
  });

  it('takes a fresh meter’s power and available power, so surplus = available − drawn', () => {
    const m = site('metrics-mixed');
    expect(m('hashwatt_site_power_drawn_watts')).toBe(300_000);
    expect(value('hashwatt_site_power_drawn_source', { site: 'metrics-mixed', source: 'meter' })).toBe(1);
    expect(m('hashwatt_site_power_available_watts')).toBe(400_000);
    expect(m('hashwatt_site_power_surplus_watts')).toBe(100_000);
    expect(m('hashwatt_site_power_surplus_ratio')).toBeCloseTo(0.25, 12);
    expect(m('hashwatt_site_power_capacity_watts')).toBe(500_000);
  });

  it('counts devices by state with curtailed devices as curtailed, not down', () => {
    const states = (name: string) =>
      Object.fromEntries(
        ['up', 'down', 'stale', 'curtailed'].map((state) => [
          state,
          value('hashwatt_site_devices', { site: name, state }),
        ]),
      );
    expect(states('metrics-mining')).toEqual({ up: 2, down: 2, stale: 0, curtailed: 1 });
    expect(value('hashwatt_site_devices_down_ratio', { site: 'metrics-mining' })).toBeCloseTo(2 / 5, 12);
    // The meter measures the site and is no compute device.
    expect(states('metrics-mixed')).toEqual({ up: 4, down: 0, stale: 0, curtailed: 1 });
    expect(value('hashwatt_site_devices_down_ratio', { site: 'metrics-mixed' })).toBe(0);
    expect(states('metrics-curtailed')).toEqual({ up: 0, down: 0, stale: 0, curtailed: 4 });
    expect(value('hashwatt_site_devices_down_ratio', { site: 'metrics-curtailed' })).toBe(0);
  });

  it('sums hashrate over hashing ASICs against what the uncurtailed ones should do', () => {
    const m = site('metrics-mining');
    expect(m('hashwatt_site_hashrate_hashes_per_second')).toBe(390e12);
    // Curtailed s21-003 is excused; the failed and the non-hashing one are still expected.
    expect(m('hashwatt_site_expected_hashrate_hashes_per_second')).toBe(800e12);
    expect(m('hashwatt_site_hashing_ratio')).toBeCloseTo(390 / 800, 12);
    expect(m('hashwatt_site_efficiency_joules_per_terahash')).toBeCloseTo((3500 + 3400) / 390, 9);
    // Nothing is expected of a fully curtailed site: no ratio rather than 0 %, so HashrateLow cannot fire.
    expect(value('hashwatt_site_hashing_ratio', { site: 'metrics-curtailed' })).toBeUndefined();
    expect(value('hashwatt_site_hashrate_hashes_per_second', { site: 'metrics-curtailed' })).toBe(0);
  });

  it('reports GPU utilisation, busy and idle GPUs and the AI share of power', () => {
    const m = site('metrics-mixed');
    expect(m('hashwatt_site_gpu_utilisation_ratio')).toBeCloseTo((0.9 + 0.7 + 0.1) / 3, 12);
    expect(value('hashwatt_site_gpus', { site: 'metrics-mixed', state: 'busy' })).toBe(2);
    expect(value('hashwatt_site_gpus', { site: 'metrics-mixed', state: 'idle' })).toBe(1);
    const ai = 700 + 650 + 120;
    const mining = 3500 + 30;
    expect(value('hashwatt_site_workload_power_watts', { site: 'metrics-mixed', workload: 'ai' })).toBe(ai);
    expect(value('hashwatt_site_workload_power_watts', { site: 'metrics-mixed', workload: 'mining' })).toBe(
      mining,
    );
    expect(m('hashwatt_site_ai_power_ratio')).toBeCloseTo(ai / (ai + mining), 12);
    expect(value('hashwatt_site_gpu_utilisation_ratio', { site: 'metrics-mining' })).toBeUndefined();
  });

  it('labels every site with its kind and reports it up, with its last reading and threshold', () => {
    for (const [name, kind] of [
      ['metrics-mining', 'mining'],
      ['metrics-mixed', 'mixed'],
      ['metrics-curtailed', 'mining'],
    ]) {
      expect(value('hashwatt_site_up', { site: name!, kind: kind! })).toBe(1);
      const last = value('hashwatt_site_last_reading_timestamp_seconds', { site: name! })!;
      // Server receive time: after the readings were posted, not their (older) ts.
      expect(last).toBeGreaterThanOrEqual(NOW / 1000 - 1);
      expect(last).toBeLessThanOrEqual(Date.now() / 1000);
      expect(value('hashwatt_site_down_after_seconds', { site: name! })).toBe(60);
    }
  });

  it('counts the ingested readings and samples by transport and outcome', () => {
    const total = MINING.length + MIXED.length + CURTAILED.length;
    expect(value('hashwatt_readings_ingested_total', { transport: 'http', outcome: 'accepted' })).toBe(total);
    expect(value('hashwatt_readings_ingested_total', { transport: 'http', outcome: 'rejected' })).toBe(0);
    expect(value('hashwatt_ingest_requests_total', { transport: 'http', status: '200' })).toBe(3);
    expect(value('hashwatt_ingest_request_duration_seconds_count', { transport: 'http' })).toBe(3);
    expect(value('hashwatt_samples_ingested_total', { transport: 'http' })).toBeGreaterThan(total);
  });
});
