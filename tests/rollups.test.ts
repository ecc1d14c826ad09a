/**
 * The rollup tiers against the documented rule (docs/read-api.md), on both backends: every
 * resolution of a site series equals the rule computed here, in plain code, from the raw rows the
 * test wrote, before the job ran (raw tail), after it (the tiers) and once the raw rows are gone
 * (the tiers alone); a late reading updates its rollups; energy of a known load is its integral.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { siteEnergy } from '../src/history/energy.ts';
import type { SeriesQuery } from '../src/history/query.ts';
import { deviceSeries, type SeriesView, siteSeries } from '../src/history/series.ts';
import type { Storage } from '../src/storage/database.ts';
import { ensurePartitions } from '../src/storage/partitions.ts';
import { type ReadingRecord, writeReadings } from '../src/storage/readings.ts';
import { rollupStep } from '../src/storage/rollups.ts';
import type { DeviceKind } from '../src/storage/schema.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';
import { insertSite } from './support/sites.ts';

const MIN = 60_000;
const HOUR = 3_600_000;
// Three whole hours, recent enough for the raw retention.
// Aligned to two hours, so the 2-hour steps start where the data does.
const T0 = Math.floor(Date.now() / (2 * HOUR)) * 2 * HOUR - 6 * HOUR;
const T_END = T0 + 3 * HOUR;
const NOW = T0 + 5 * HOUR;
const CAPACITY_W = 5e6;

type Agg = 'avg' | 'min' | 'max' | 'last';
const AGGS: Agg[] = ['avg', 'min', 'max', 'last'];
type Metrics = Partial<
  Pick<ReadingRecord, 'power_w' | 'available_power_w' | 'hashrate_ths' | 'temp_c' | 'gpu_util_pct'>
>;

interface Sample {
  device: string;
  kind: DeviceKind;
  tsMs: number;
  m: Metrics;
}

/** Deterministic, irregular: device `i` reports every `period` seconds from its own offset. */
function samplesOf(
  devices: [string, DeviceKind][],
  opts: { silent?: { device: string; fromMs: number; toMs: number } } = {},
): Sample[] {
  const out: Sample[] = [];
  devices.forEach(([device, kind], i) => {
    const periodMs = [17, 23, 29, 31, 37, 41, 43][i % 7]! * 1000;
    for (let t = T0 + ((i * 7919) % periodMs), k = 0; t < T_END; t += periodMs, k++) {
      if (opts.silent && opts.silent.device === device && t >= opts.silent.fromMs && t < opts.silent.toMs)
        continue;
      const wobble = ((k * 37 + i * 11) % 50) - 25;
      const m: Metrics =
        kind === 'meter'
          ? { power_w: 40_000 + wobble * 10, available_power_w: 60_000 + (k % 3) * 100 }
          : kind === 'asic'
            ? { power_w: 3200 + wobble, hashrate_ths: 200 + wobble / 5, temp_c: 60 + wobble / 10 }
            : kind === 'gpu'
              ? { power_w: 700 + wobble, gpu_util_pct: 50 + wobble, temp_c: 55 + wobble / 10 }
              : kind === 'pdu'
                ? { power_w: 99_999 }
                : { power_w: 1500 + wobble, temp_c: 30 + wobble / 10 };
      // float4 columns store the nearest float4: compute the rule on what is stored.
      if (typeof m.temp_c === 'number') m.temp_c = Math.fround(m.temp_c);
      if (typeof m.gpu_util_pct === 'number') m.gpu_util_pct = Math.fround(m.gpu_util_pct);
      out.push({ device, kind, tsMs: t, m });
    }
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// The rule, written out independently of the SQL

function reduce(agg: Agg, xs: { t: number; v: number }[]): number {
  if (agg === 'avg') return xs.reduce((a, x) => a + x.v, 0) / xs.length;
  if (agg === 'min') return Math.min(...xs.map((x) => x.v));
  if (agg === 'max') return Math.max(...xs.map((x) => x.v));
  return xs.reduce((a, x) => (x.t > a.t ? x : a)).v;
}

type SiteMetricName =
  | 'power_w'
  | 'available_power_w'
  | 'surplus_w'
  | 'hashrate_ths'
  | 'temp_c'
  | 'gpu_util_pct';
const SITE_METRICS: SiteMetricName[] = [
  'power_w',
  'available_power_w',
  'surplus_w',
  'hashrate_ths',
  'temp_c',
  'gpu_util_pct',
];
const KINDS: Record<string, DeviceKind[]> = {
  hashrate_ths: ['asic'],
  temp_c: ['asic', 'gpu', 'other'],
  gpu_util_pct: ['gpu'],
};

/** Per device, its samples of `column` in [from, to) reduced by `agg`. */
function perDevice(samples: Sample[], column: keyof Metrics, agg: Agg, from: number, to: number) {
  const by = new Map<string, { kind: DeviceKind; xs: { t: number; v: number }[] }>();
  for (const s of samples) {
    const v = s.m[column];
    if (s.tsMs < from || s.tsMs >= to || v === undefined || v === null) continue;
    const e = by.get(s.device) ?? { kind: s.kind, xs: [] };
    e.xs.push({ t: s.tsMs, v });
    by.set(s.device, e);
  }
  return [...by.values()].map((e) => ({ kind: e.kind, v: reduce(agg, e.xs) }));
}

/** The site's figure over one bucket by the rule, or undefined without data. */
function ruleFigure(
  samples: Sample[],
  meters: number,
  metric: SiteMetricName,
  agg: Agg,
  from: number,
  to: number,
): { v: number; src?: string } | undefined {
  if (metric !== 'power_w' && metric !== 'available_power_w' && metric !== 'surplus_w') {
    const devs = perDevice(samples, metric, agg, from, to).filter((d) => KINDS[metric]!.includes(d.kind));
    if (devs.length === 0) return undefined;
    const sum = devs.reduce((a, d) => a + d.v, 0);
    return { v: metric === 'hashrate_ths' ? sum : sum / devs.length };
  }
  const power = perDevice(samples, 'power_w', agg, from, to);
  const meterPower = power.filter((d) => d.kind === 'meter');
  const devicePower = power.filter((d) => d.kind === 'asic' || d.kind === 'gpu' || d.kind === 'other');
  const trusted = meters > 0 && meterPower.length === meters;
  if (!trusted && devicePower.length === 0) return undefined;
  const drawn = (trusted ? meterPower : devicePower).reduce((a, d) => a + d.v, 0);
  const avail = perDevice(samples, 'available_power_w', agg, from, to).filter((d) => d.kind === 'meter');
  const availFromMeter = trusted && avail.length === meters;
  const available = availFromMeter ? avail.reduce((a, d) => a + d.v, 0) : CAPACITY_W;
  const drawnSrc = trusted ? 'meter' : 'devices';
  const availSrc = availFromMeter ? 'meter' : 'capacity';
  if (metric === 'power_w') return { v: drawn, src: drawnSrc };
  if (metric === 'available_power_w') return { v: available, src: availSrc };
  return { v: available - drawn, src: `${availSrc}-${drawnSrc}` };
}

/**
 * The expected points: for a step equal to its tier's bucket, the rule over the step; for a
 * coarser step, the documented second level: `agg` over the tier buckets' figures. Hours the job
 * has not built yet (`pendingHours`) are documented to come from their minutes the same way.
 */
function expected(
  samples: Sample[],
  meters: number,
  metric: SiteMetricName,
  agg: Agg,
  stepS: number,
  pendingHours = false,
) {
  const stepMs = stepS * 1000;
  const hourly = stepS % 3600 === 0;
  const levels = hourly ? (pendingHours ? [MIN, HOUR] : [HOUR]) : [MIN];
  type Fig = { t: number; v: number; src?: string | undefined };
  const combine = (figs: Fig[], t: number): Fig | undefined => {
    if (figs.length === 0) return undefined;
    const srcs = new Set(figs.map((f) => f.src));
    return { t, v: reduce(agg, figs), src: srcs.size === 1 ? figs[0]!.src : 'mixed' };
  };
  // The finest level by the rule, then each coarser level (and the step) by agg over the one below.
  const finest = levels[0]!;
  let figs: Fig[] = [];
  for (let b = T0; b < T_END; b += finest) {
    const f = ruleFigure(samples, meters, metric, agg, b, b + finest);
    if (f) figs.push({ t: b, ...f });
  }
  for (const width of [...levels.slice(1), stepMs]) {
    if (width === finest) continue;
    const next: Fig[] = [];
    for (let b = T0; b < T_END; b += width) {
      const f = combine(
        figs.filter((x) => x.t >= b && x.t < b + width),
        b,
      );
      if (f) next.push(f);
    }
    figs = next;
  }
  const points: [number, number | null][] = [];
  const sources: (string | null)[] = [];
  for (let s = T0; s < T_END; s += stepMs) {
    const f = figs.find((x) => x.t === s);
    points.push([s, f ? f.v : null]);
    sources.push(f ? (f.src ?? null) : null);
  }
  return { points, sources };
}

function expectClose(actual: SeriesView, want: ReturnType<typeof expected>, label: string, power: boolean) {
  expect(actual.points.length, label).toBe(want.points.length);
  actual.points.forEach(([t, v], i) => {
    const [wt, wv] = want.points[i]!;
    expect(t, label).toBe(wt);
    if (wv === null) expect(v, `${label} @${i}`).toBeNull();
    else {
      expect(v, `${label} @${i}`).not.toBeNull();
      expect(Math.abs(v! - wv), `${label} @${i}: ${v} vs ${wv}`).toBeLessThanOrEqual(
        1e-9 * Math.max(1, Math.abs(wv)),
      );
    }
  });
  if (power) expect(actual.power_source, label).toEqual(want.sources);
}

// ---------------------------------------------------------------------------------------------

describe.each(BACKENDS)('rollup tiers on %s', (backend) => {
  let testDb: TestDatabase;
  let storage: Storage;

  interface TestSite {
    id: number;
    capacity_w: number;
    meters: number;
    samples: Sample[];
    ids: Map<string, number>;
    kinds: Map<string, DeviceKind>;
  }
  const sites: Record<string, TestSite> = {};

  async function makeSite(
    name: string,
    devices: [string, DeviceKind][],
    samples: Sample[],
  ): Promise<TestSite> {
    const inserted = await insertSite(storage, name, devices, { capacityW: CAPACITY_W });
    const site: TestSite = {
      id: inserted.id,
      capacity_w: inserted.capacity_w,
      meters: devices.filter(([, k]) => k === 'meter').length,
      samples,
      ids: inserted.ids,
      kinds: inserted.kinds,
    };
    await write(site, samples);
    return site;
  }

  async function write(site: TestSite, samples: Sample[]) {
    const records: ReadingRecord[] = samples.map((s) => ({
      site_id: site.id,
      device_id: site.ids.get(s.device)!,
      kind: s.kind,
      ts_us: s.tsMs * 1000,
      received_ms: s.tsMs,
      ...s.m,
    }));
    for (let i = 0; i < records.length; i += 2000)
      await writeReadings(storage.db, records.slice(i, i + 2000));
  }

  async function rollUp(): Promise<void> {
    while ((await rollupStep(storage.db, NOW, 200)).more);
  }

  const q = (metric: string, agg: Agg, stepS: number): SeriesQuery => ({
    metric,
    agg,
    step: stepS,
    from: T0,
    to: T_END,
  });

  async function checkSites(stage: string, steps = [60, 300, 3600, 7200], pendingHours = false) {
    for (const [name, site] of Object.entries(sites)) {
      if (name === 'energy') continue;
      for (const stepS of steps) {
        for (const agg of AGGS) {
          for (const metric of SITE_METRICS) {
            const got = await siteSeries(storage, site, q(metric, agg, stepS), NOW);
            expect(got.source).toBe(stepS % 3600 === 0 ? '1h' : '1m');
            const power = metric === 'power_w' || metric === 'available_power_w' || metric === 'surplus_w';
            expectClose(
              got,
              expected(site.samples, site.meters, metric, agg, stepS, pendingHours),
              `${stage} ${name} ${metric} ${agg} ${stepS}s`,
              power,
            );
          }
        }
      }
    }
  }

  async function checkDevices(stage: string, site = sites.metered!) {
    for (const device of ['a1', 'g1', 'm1']) {
      for (const stepS of [3600, 7200]) {
        for (const agg of AGGS) {
          const got = await deviceSeries(storage, site.id, device, q('power_w', agg, stepS), NOW);
          expect(got.source).toBe('1h');
          const want: [number, number | null][] = [];
          for (let s = T0; s < T_END; s += stepS * 1000) {
            const xs = site.samples
              .filter(
                (x) =>
                  x.device === device &&
                  x.tsMs >= s &&
                  x.tsMs < s + stepS * 1000 &&
                  x.m.power_w !== undefined,
              )
              .map((x) => ({ t: x.tsMs, v: x.m.power_w! }));
            want.push([s, xs.length ? reduce(agg, xs) : null]);
          }
          expectClose(
            got,
            { points: want, sources: [] },
            `${stage} device ${device} ${agg} ${stepS}s`,
            false,
          );
        }
      }
    }
  }

  const ENERGY_LOAD_W = 3600;
  /** A 3.6 kW load reported at irregular moments, silent for minutes 30–44 of the first hour. */
  function energySamples(): Sample[] {
    const out: Sample[] = [];
    for (let m = 0; m < 120; m++) {
      if (m >= 30 && m < 45) continue;
      for (const sec of m % 3 === 0 ? [2, 29, 51] : m % 3 === 1 ? [13] : [7, 44])
        out.push({
          device: 'e1',
          kind: 'asic',
          tsMs: T0 + m * MIN + sec * 1000,
          m: { power_w: ENERGY_LOAD_W },
        });
    }
    return out;
  }

  async function checkEnergy(stage: string) {
    const site = sites.energy!;
    for (const timezone of [null, 'Asia/Kolkata']) {
      const { buckets } = await siteEnergy(
        storage,
        {
          id: site.id,
          capacity_w: site.capacity_w,
          timezone,
          tariffPerMwh: 80,
          minuteTierFromMs: NOW - 90 * 86_400_000,
        },
        { from: new Date(T0).toISOString(), to: new Date(T0 + 2 * HOUR).toISOString(), bucket: 'hour' },
        NOW,
      );
      if (timezone === null) {
        expect(
          buckets.map((b) => b.start),
          stage,
        ).toEqual([new Date(T0).toISOString(), new Date(T0 + HOUR).toISOString()]);
        expect(buckets[0]!.kwh, stage).toBeCloseTo(3.6 * (45 / 60), 9);
        expect(buckets[0]!.coverage_ratio, stage).toBeCloseTo(45 / 60, 12);
        expect(buckets[0]!.cost, stage).toBeCloseTo((3.6 * (45 / 60) * 80) / 1000, 9);
        expect(buckets[1]!.kwh, stage).toBeCloseTo(3.6, 9);
        expect(buckets[1]!.mining_kwh, stage).toBeCloseTo(3.6, 9);
        expect(buckets[1]!.coverage_ratio, stage).toBe(1);
      } else {
        // Kolkata's hours start at :30 UTC: the same minutes, split differently, add up the same.
        const kwh = buckets.reduce((a, b) => a + b.kwh, 0);
        expect(kwh, stage).toBeCloseTo(3.6 * (105 / 60), 9);
      }
    }
    // The gap is null in the minute series, never 0.
    const minutes = await siteSeries(storage, site, q('power_w', 'avg', 60), NOW);
    expect(
      minutes.points.slice(30, 45).every(([, v]) => v === null),
      stage,
    ).toBe(true);
    expect(minutes.points[29]![1], stage).toBe(ENERGY_LOAD_W);
  }

  beforeAll(async () => {
    testDb = await createTestDatabase(backend);
    storage = await testDb.open();
    await ensurePartitions(storage.db, NOW, { retentionDays: 2, aheadDays: 1 });
    const metered: [string, DeviceKind][] = [
      ['m1', 'meter'],
      ['m2', 'meter'],
      ['a1', 'asic'],
      ['a2', 'asic'],
      ['g1', 'gpu'],
      ['p1', 'pdu'],
      ['c1', 'other'],
    ];
    sites.metered = await makeSite('metered', metered, samplesOf(metered));
    const meterless: [string, DeviceKind][] = [
      ['a1', 'asic'],
      ['a2', 'asic'],
      ['a3', 'asic'],
      ['g1', 'gpu'],
    ];
    sites.meterless = await makeSite('meterless', meterless, samplesOf(meterless));
    // The second meter is silent from 00:50 to 01:40: minute steps fall back to the devices, the
    // hours around still count it as reporting.
    sites.silent = await makeSite(
      'silent-meter',
      metered,
      samplesOf(metered, { silent: { device: 'm2', fromMs: T0 + 50 * MIN, toMs: T0 + 100 * MIN } }),
    );
    sites.energy = await makeSite('energy', [['e1', 'asic']], energySamples());
  }, 120_000);

  afterAll(async () => {
    await storage?.close();
    await testDb?.dispose();
  });

  it('before the job has run, every resolution is computed from raw by the rule', async () => {
    const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM rollup_site_1m`.execute(
      storage.db,
    );
    expect(rows[0]!.n).toBe(0);
    await checkSites('raw', [60, 300, 3600, 7200], true);
    await checkEnergy('raw');
  }, 120_000);

  it('the job builds the tiers, which answer the same', async () => {
    await rollUp();
    const count = async (table: string) =>
      (await sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql.table(table)}`.execute(storage.db))
        .rows[0]!.n;
    expect(await count('rollup_site_1m')).toBe(3 * 180 + 105); // three sites' 180 minutes, the energy site's 120 less its gap
    expect(await count('rollup_site_1h')).toBe(3 * 3 + 2);
    expect(await count('rollup_device_1h')).toBe(7 * 3 + 4 * 3 + 7 * 3 + 2);
    expect(await count('rollup_dirty')).toBe(0);
    // Every hour is built, so no staged device-minute is left.
    expect(await count('rollup_device_1m_staged')).toBe(0);
    await checkSites('tiers');
    await checkDevices('tiers');
    await checkEnergy('tiers');
  }, 120_000);

  it('a late reading is seen at once and rebuilds its minute and hour', async () => {
    const site = sites.metered!;
    const at = T0 + 70 * MIN + 1234;
    const late: Sample = {
      device: 'a1',
      kind: 'asic',
      tsMs: at,
      m: { power_w: 9_999, hashrate_ths: 1, temp_c: 99 },
    };
    site.samples.push(late);
    await write(site, [late]);
    // Seen before the job runs: from the minute on, the series reads raw until it is rebuilt.
    const before = await siteSeries(storage, site, q('hashrate_ths', 'min', 60), NOW);
    expect(before.points[70]![1]).toBeCloseTo(
      expected(site.samples, site.meters, 'hashrate_ths', 'min', 60).points[70]![1]!,
      9,
    );
    await rollUp();
    const { rows } = await sql<{ v: number }>`
      SELECT hashrate_ths_min AS v FROM rollup_site_1h WHERE site_id = ${site.id} AND bucket = ${new Date(T0 + HOUR)}`.execute(
      storage.db,
    );
    expect(rows[0]!.v).toBeCloseTo(
      expected(site.samples, site.meters, 'hashrate_ths', 'min', 3600).points[1]![1]!,
      9,
    );
    await checkSites('late', [60, 3600]);
  }, 120_000);

  it('a minute rebuilt before its hour is built replaces its staged devices', async () => {
    const devices: [string, DeviceKind][] = [
      ['m1', 'meter'],
      ['a1', 'asic'],
      ['a2', 'asic'],
      ['g1', 'gpu'],
    ];
    const samples = samplesOf(devices);
    const inserted = await insertSite(storage, 'staged', devices, { capacityW: CAPACITY_W });
    const site: TestSite = { ...inserted, meters: 1, samples };
    await write(site, samples);
    // The job runs at 01:30: the first hour is built, the second waits with 30 minutes staged.
    while ((await rollupStep(storage.db, T0 + 90 * MIN, 200)).more);
    const staged = async () =>
      (
        await sql<{ n: number }>`
          SELECT count(*)::int AS n FROM rollup_device_1m_staged WHERE site_id = ${site.id}`.execute(
          storage.db,
        )
      ).rows[0]!.n;
    expect(await staged()).toBeGreaterThan(0);
    // A late reading in a staged minute of the waiting hour, the device's new extreme and last.
    const late: Sample = {
      device: 'a2',
      kind: 'asic',
      tsMs: T0 + 75 * MIN + 59_999,
      m: { power_w: 1, hashrate_ths: 1_000, temp_c: 1 },
    };
    samples.push(late);
    await write(site, [late]);
    await rollUp();
    expect(await staged()).toBe(0);
    sites.staged = site;
    await checkSites('staged', [60, 3600]);
    await checkDevices('staged', site);
    for (const device of ['a2', 'g1'])
      for (const agg of AGGS) {
        const got = await deviceSeries(storage, site.id, device, q('hashrate_ths', agg, 3600), NOW);
        const want: [number, number | null][] = [0, 1, 2].map((h) => {
          const xs = samples
            .filter(
              (x) =>
                x.device === device &&
                x.tsMs >= T0 + h * HOUR &&
                x.tsMs < T0 + (h + 1) * HOUR &&
                x.m.hashrate_ths !== undefined,
            )
            .map((x) => ({ t: x.tsMs, v: x.m.hashrate_ths! }));
          return [T0 + h * HOUR, xs.length ? reduce(agg, xs) : null];
        });
        expectClose(got, { points: want, sources: [] }, `staged ${device} hashrate ${agg}`, false);
      }
  }, 120_000);

  it("a metric's last is its latest sample in the minute, also when the device's last reading left it out", async () => {
    // Each way the build finds a last: a steady value (its min is its max), the device's last
    // reading of the minute, and an earlier reading when the last one did not carry the metric.
    const site = await insertSite(storage, 'partial-readings', [['a1', 'asic']]);
    const minute = T0 + 20 * MIN;
    await writeReadings(storage.db, [
      site.record('a1', minute + 5_000, { power_w: 100, temp_c: 50, hashrate_ths: 10 }),
      site.record('a1', minute + 20_000, { power_w: 120, temp_c: 55, hashrate_ths: 10 }),
      site.record('a1', minute + 40_000, { power_w: 110 }),
      site.record('a1', minute + MIN + 30_000, { power_w: 90, temp_c: 40 }),
    ]);
    const span = { from: minute, to: minute + 2 * MIN };
    const lastOf = async (metric: string) => {
      const got = await siteSeries(storage, site, { metric, agg: 'last', step: 60, ...span }, NOW);
      return got.points.map((p) => p[1]);
    };
    const lasts = async () => ({
      power: await lastOf('power_w'),
      temp: await lastOf('temp_c'),
      hash: await lastOf('hashrate_ths'),
    });
    const before = await lasts();
    expect(before).toEqual({ power: [110, 90], temp: [55, 40], hash: [10, null] });
    await rollUp();
    const built = await siteSeries(storage, site, { metric: 'power_w', agg: 'last', step: 60, ...span }, NOW);
    expect(built.source).toBe('1m');
    expect(await lasts()).toEqual(before);
    const { rows } = await sql<{ power: number; temp: number; hash: number; power_n: number }>`
      SELECT power_w_last AS power, temp_c_last AS temp, hashrate_ths_last AS hash, power_w_n AS power_n
      FROM rollup_device_1h WHERE device_id = ${site.ids.get('a1')!}`.execute(storage.db);
    expect(rows.map((r) => ({ ...r, power_n: Number(r.power_n) }))).toEqual([
      { power: 90, temp: 40, hash: 10, power_n: 4 },
    ]);
  }, 60_000);

  it('with the raw rows gone, the tiers alone answer every resolution', async () => {
    await sql`DELETE FROM readings`.execute(storage.db);
    await checkSites('tiers only');
    await checkDevices('tiers only');
    await checkEnergy('tiers only');
  }, 120_000);
});
