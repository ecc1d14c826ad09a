import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { countReportingDevices, nameplateItPowerW } from './physics/nameplate.ts';
import { listScenarios, loadScenario, parseScenario, ScenarioError } from './scenario.ts';

const minimal = {
  name: 'x',
  sites: [{ name: 'a', kind: 'mining', capacity_kw: 100, devices: { asic: { S21: 10 } } }],
};

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ScenarioError);
    return (err as Error).message;
  }
  throw new Error('expected a ScenarioError');
}

describe('shipped scenarios', () => {
  it('include demo, outage, surplus and load, and all validate', () => {
    expect(listScenarios()).toEqual(expect.arrayContaining(['demo', 'outage', 'surplus', 'load']));
    for (const name of listScenarios()) expect(() => loadScenario(name)).not.toThrow();
  });

  it('give every site a capacity that carries its nameplate load with some headroom', () => {
    for (const name of listScenarios()) {
      for (const site of loadScenario(name).sites) {
        const facilityKw = (nameplateItPowerW(site.devices) * site.pue) / 1000;
        expect(facilityKw, `${name}/${site.name}`).toBeLessThanOrEqual(site.capacity_kw * 0.97);
        expect(facilityKw, `${name}/${site.name}`).toBeGreaterThanOrEqual(site.capacity_kw * 0.75);
        expect(site.pue).toBeGreaterThanOrEqual(1.05);
        expect(site.pue).toBeLessThanOrEqual(1.3);
      }
    }
  });

  it('make demo three sites: mining with hundreds of ASICs, AI, and mixed with ~20 % of capacity in AI', () => {
    const demo = loadScenario('demo');
    const [miningSite, aiSite, mixedSite] = demo.sites;
    expect(demo.sites.map((s) => s.kind)).toEqual(['mining', 'ai', 'mixed']);
    expect(countReportingDevices(miningSite!.devices)).toBeGreaterThanOrEqual(200);
    expect(aiSite!.devices.gpu_servers).toBeGreaterThan(0);
    const aiKw = (nameplateItPowerW({ ...mixedSite!.devices, asic: {} }) * mixedSite!.pue) / 1000;
    expect(aiKw / mixedSite!.capacity_kw).toBeGreaterThan(0.15);
    expect(aiKw / mixedSite!.capacity_kw).toBeLessThan(0.25);
  });

  it('make load a rate-driven scenario', () => {
    const load = loadScenario('load');
    expect(load.rate_per_s).toBeGreaterThan(0);
    expect(loadScenario('load', { rate_per_s: 200_000 }).rate_per_s).toBe(200_000);
  });
});

describe('parseScenario', () => {
  it('fills defaults', () => {
    const s = parseScenario(minimal);
    expect(s).toMatchObject({ interval_s: 10, duration_s: 0, faults: [], random_failures: true });
    expect(s.sites[0]).toMatchObject({ transport: 'http', meter: true, timezone: 'UTC', pue: 1.1 });
  });

  it('names the bad field', () => {
    const bad = structuredClone(minimal) as Record<string, unknown> & typeof minimal;
    (bad.sites[0] as Record<string, unknown>).capacity_kw = 'lots';
    expect(errorOf(() => parseScenario(bad, 'bad.json'))).toMatch(
      /bad\.json[\s\S]*sites\[0\]\.capacity_kw: .*number/,
    );
  });

  it('rejects unknown fields and unknown ASIC models, listing the known ones', () => {
    const typo = { ...minimal, interval: 5 };
    expect(errorOf(() => parseScenario(typo))).toMatch(/\(root\): Unrecognized key: "interval"/);
    const model = { ...minimal, sites: [{ ...minimal.sites[0]!, devices: { asic: { S22: 3 } } }] };
    expect(errorOf(() => parseScenario(model))).toMatch(
      /sites\[0\]\.devices\.asic: .*"S22".*known ASIC models: .*S21 Pro/,
    );
  });

  it('checks faults: type, target site, ranges', () => {
    const unknownSite = { ...minimal, faults: [{ type: 'surplus', site: 'nope', at_s: 0 }] };
    expect(errorOf(() => parseScenario(unknownSite))).toMatch(/faults\[0\]\.site: unknown site "nope"/);
    const badType = { ...minimal, faults: [{ type: 'meteor', at_s: 0 }] };
    expect(errorOf(() => parseScenario(badType))).toMatch(/faults\[0\]\.type/);
    const badFraction = { ...minimal, faults: [{ type: 'devices_down', at_s: 0, fraction: 2 }] };
    expect(errorOf(() => parseScenario(badFraction))).toMatch(/faults\[0\]\.fraction/);
  });

  it('rejects duplicate site names and bad time zones', () => {
    const dup = { ...minimal, sites: [minimal.sites[0], minimal.sites[0]] };
    expect(errorOf(() => parseScenario(dup))).toMatch(/sites\[1\]\.name: duplicate site name "a"/);
    const tz = { ...minimal, sites: [{ ...minimal.sites[0], timezone: 'Mars/Olympus' }] };
    expect(errorOf(() => parseScenario(tz))).toMatch(/sites\[0\]\.timezone: expected an IANA time zone/);
  });
});

describe('overrides', () => {
  it('scale device counts and capacity together, keeping at least one of each kind', () => {
    const demo = loadScenario('demo');
    const small = loadScenario('demo', { scale: 0.1 });
    const [a, b] = [demo.sites[0]!, small.sites[0]!];
    expect(b.devices.asic.S21).toBe(15);
    expect(small.sites[1]!.devices.gpu_servers).toBe(2);
    const ratio = nameplateItPowerW(b.devices) / nameplateItPowerW(a.devices);
    expect(b.capacity_kw).toBeCloseTo(a.capacity_kw * ratio, 0);
    expect(loadScenario('demo', { scale: 0.001 }).sites[1]!.devices.gpu_servers).toBe(1);
  });

  it('override interval, duration, transport and the set of sites', () => {
    const s = loadScenario('demo', {
      interval_s: 1,
      duration_s: 30,
      transport: 'ws',
      sites: ['demo-ai-oregon'],
    });
    expect(s).toMatchObject({ interval_s: 1, duration_s: 30 });
    expect(s.sites.map((x) => [x.name, x.transport])).toEqual([['demo-ai-oregon', 'ws']]);
    expect(s.faults.every((f) => f.site === undefined || f.site === 'demo-ai-oregon')).toBe(true);
  });

  it('refuse a rate for physics scenarios and nonsense values', () => {
    expect(errorOf(() => loadScenario('demo', { rate_per_s: 1000 }))).toMatch(
      /rate_per_s applies to load scenarios only/,
    );
    expect(errorOf(() => loadScenario('demo', { scale: 0 }))).toMatch(/scale must be > 0/);
    expect(errorOf(() => loadScenario('demo', { sites: ['x'] }))).toMatch(/unknown sites: x/);
  });
});

describe('loadScenario', () => {
  it('loads a file by path and reports a missing scenario with the shipped names', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hashwatt-scenario-'));
    const file = join(dir, 'mine.json');
    writeFileSync(file, JSON.stringify(minimal));
    expect(loadScenario(file).name).toBe('x');
    expect(errorOf(() => loadScenario('nope'))).toMatch(
      /scenario not found: nope \(shipped scenarios: .*demo/,
    );
    writeFileSync(file, '{ nope');
    expect(errorOf(() => loadScenario(file))).toMatch(/not JSON/);
  });
});
