import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { parseScenario, type Scenario, type SiteSpec } from '../scenario.ts';
import { ContractReading } from '../testing/fake-service.ts';
import { ASIC_MODELS } from './asic.ts';
import { GPU_MODELS } from './gpu.ts';
import { METER_DEVICE, SiteSimulation, type SiteTick } from './site.ts';

// 2026-03-01 14:00 UTC: daytime in Europe, morning in the US.
const START = Date.parse('2026-03-01T14:00:00Z');

/** A one-site scenario as a file would state it (defaults left to the schema). */
function scenario(site: Partial<z.input<typeof SiteSpec>>, extra: Record<string, unknown> = {}): Scenario {
  return parseScenario({
    name: 'test',
    interval_s: 10,
    random_failures: false,
    sites: [{ name: 'site-a', kind: 'mining', capacity_kw: 500, pue: 1.1, ...site }],
    ...extra,
  });
}

function run(s: Scenario, ticks: number, seed = 1, startMs = START): SiteTick[] {
  const sim = new SiteSimulation(s.sites[0]!, {
    seed,
    startMs,
    intervalS: s.interval_s,
    faults: s.faults,
    randomFailures: s.random_failures,
  });
  return Array.from({ length: ticks }, () => sim.step());
}

const meter = (t: SiteTick) => t.readings.find((r) => r.device === METER_DEVICE)!;
const mining = scenario({ devices: { asic: { 'S19 XP': 40, S21: 60, 'S21 Pro': 20 } } });

describe('SiteSimulation', () => {
  it('gives identical readings for the same seed and start time', () => {
    const a = run(mining, 30, 42);
    const b = run(mining, 30, 42);
    expect(JSON.stringify(b.map((t) => t.readings))).toBe(JSON.stringify(a.map((t) => t.readings)));
  });

  it('gives different readings for a different seed', () => {
    const a = run(mining, 3, 1)[2]!.readings.map((r) => r.power_w);
    const b = run(mining, 3, 2)[2]!.readings.map((r) => r.power_w);
    const differing = a.filter((p, i) => p !== b[i]).length;
    expect(differing).toBeGreaterThan(a.length * 0.9);
  });

  it('stamps every reading of a tick with the tick time, one reading per device', () => {
    const [t0, t1] = run(mining, 2);
    expect(t0!.readings).toHaveLength(121);
    expect(new Set(t0!.readings.map((r) => r.device)).size).toBe(121);
    expect(t0!.readings.every((r) => r.ts === '2026-03-01T14:00:00.000Z')).toBe(true);
    expect(t1!.readings[0]!.ts).toBe('2026-03-01T14:00:10.000Z');
    expect(t0!.readings[0]!.device).toMatch(/^hall-a\/r01\/s19xp-001$/);
  });

  it('produces readings the ingest contract accepts', () => {
    const mixed = scenario({
      kind: 'mixed',
      capacity_kw: 900,
      devices: { asic: { S21: 50, M60S: 20 }, gpu_servers: 4 },
    });
    for (const tick of run(mixed, 5)) {
      for (const r of tick.readings)
        expect(ContractReading.safeParse(r).success, JSON.stringify(r)).toBe(true);
    }
  });

  it('has the meter report IT load × PUE, and IT load = sum of ASIC power', () => {
    for (const tick of run(mining, 10)) {
      const asicSum = tick.readings.filter((r) => r.kind === 'asic').reduce((n, r) => n + r.power_w!, 0);
      expect(tick.facilityPowerW).toBeCloseTo(tick.itPowerW * 1.1, 6);
      expect(Math.abs(asicSum - tick.itPowerW)).toBeLessThan(0.05 * 121); // rounding to 0.1 W per reading
      expect(meter(tick).power_w).toBe(Math.round(tick.itPowerW * 1.1));
      expect(meter(tick).available_power_w).toBe(500_000);
    }
  });

  it('adds GPU host overhead to IT load on AI sites', () => {
    const ai = scenario({ kind: 'ai', capacity_kw: 100, pue: 1.25, devices: { gpu_servers: 3 } });
    const tick = run(ai, 3)[2]!;
    const gpuSum = tick.readings.filter((r) => r.kind === 'gpu').reduce((n, r) => n + r.power_w!, 0);
    const host = tick.itPowerW - gpuSum;
    expect(tick.readings.filter((r) => r.kind === 'gpu')).toHaveLength(24);
    expect(tick.readings.some((r) => r.device === 'node-003/gpu-7')).toBe(true);
    expect(host).toBeGreaterThanOrEqual(3 * GPU_MODELS['H100 SXM'].hostIdleW - 5);
    expect(host).toBeLessThanOrEqual(3 * GPU_MODELS['H100 SXM'].hostBusyW + 5);
    expect(meter(tick).power_w).toBe(Math.round(tick.itPowerW * 1.25));
  });

  it('curtails the least efficient ASICs to keep facility power under available power', () => {
    const curtailed = scenario(
      { devices: { asic: { 'S19 XP': 40, S21: 60, 'S21 Pro': 20 } } },
      { faults: [{ type: 'curtailment', at_s: 50, duration_s: 100, available_ratio: 0.5 }] },
    );
    const ticks = run(curtailed, 25);
    const before = ticks[4]!;
    const during = ticks[12]!;
    const after = ticks[24]!;
    expect(before.curtailedAsics).toBe(0);
    expect(during.availablePowerW).toBe(250_000);
    expect(during.facilityPowerW).toBeLessThanOrEqual(during.availablePowerW);
    expect(during.facilityPowerW).toBeLessThan(before.facilityPowerW * 0.6);
    expect(during.hashrateThs).toBeLessThan(before.hashrateThs * 0.7);
    expect(during.curtailedAsics).toBeGreaterThan(40);
    const asics = during.readings.filter((r) => r.kind === 'asic');
    const sleeping = asics.filter((r) => r.status === 'curtailed');
    expect(sleeping).toHaveLength(during.curtailedAsics);
    for (const r of sleeping) {
      expect(r.hashrate_ths).toBe(0);
      expect(r.power_w!).toBeLessThan(ASIC_MODELS[r.model as keyof typeof ASIC_MODELS].powerW * 0.03);
    }
    // Worst J/TH first: every S19 XP sleeps before any S21 Pro does.
    expect(sleeping.filter((r) => r.model === 'S19 XP')).toHaveLength(40);
    expect(sleeping.filter((r) => r.model === 'S21 Pro')).toHaveLength(0);
    expect(meter(during).power_w).toBeLessThan(meter(before).power_w! * 0.6);
    expect(after.curtailedAsics).toBe(0);
  });

  it('follows the daily grid schedule in local time', () => {
    const windows = scenario({
      timezone: 'America/Chicago',
      devices: { asic: { S21: 10 } },
      grid: [
        { from: '22:00', to: '06:00', available_ratio: 1.25 },
        { from: '08:00', to: '09:00', available_ratio: 0.05 },
      ],
    });
    // 14:00 UTC = 08:00 in Chicago (CST): inside the curtailment window.
    const morning = run(windows, 1)[0]!;
    expect(morning.availablePowerW).toBe(25_000);
    // 25 kW / PUE 1.1 with 2 % margin leaves room for 6 S21 at 3.5 kW; 4 sleep.
    expect(morning.curtailedAsics).toBe(4);
    expect(morning.facilityPowerW).toBeLessThanOrEqual(25_000);
    const night = run(windows, 1, 1, Date.parse('2026-03-02T05:00:00Z'))[0]!; // 23:00 local
    expect(night.availablePowerW).toBe(625_000);
  });

  it('raises available power far above load during a surplus', () => {
    const s = scenario(
      { devices: { asic: { S21: 100 } } },
      { faults: [{ type: 'surplus', at_s: 0, duration_s: 60, available_ratio: 2 }] },
    );
    const [tick] = run(s, 1);
    expect(tick!.availablePowerW).toBe(1_000_000);
    expect(tick!.availablePowerW - tick!.facilityPowerW).toBeGreaterThan(500_000);
  });

  it('takes a fixed fraction of devices down: silent ones send nothing, dead ones report error', () => {
    const silent = scenario(
      { capacity_kw: 900, devices: { asic: { S21: 200 } } },
      { faults: [{ type: 'devices_down', at_s: 20, fraction: 0.2, mode: 'silent' }] },
    );
    const ticks = run(silent, 5);
    expect(ticks[1]!.readings).toHaveLength(201);
    const down = 201 - ticks[3]!.readings.length;
    expect(down).toBeGreaterThan(20);
    expect(down).toBeLessThan(60);
    expect(ticks[4]!.readings.map((r) => r.device)).toEqual(ticks[3]!.readings.map((r) => r.device));
    expect(ticks[3]!.facilityPowerW).toBeLessThan(ticks[1]!.facilityPowerW * 0.9);

    const dead = scenario(
      { devices: { asic: { S21: 200 } } },
      { faults: [{ type: 'devices_down', at_s: 0, fraction: 0.2, mode: 'error' }] },
    );
    const errors = run(dead, 1)[0]!.readings.filter((r) => r.status === 'error');
    expect(errors.length).toBeGreaterThan(20);
    expect(errors.every((r) => r.hashrate_ths === 0)).toBe(true);
  });

  it('shifts timestamps by the clock skew while it lasts', () => {
    const skewed = scenario(
      { devices: { asic: { S21: 2 } } },
      { faults: [{ type: 'clock_skew', at_s: 10, duration_s: 10, skew_s: -95 }] },
    );
    const ticks = run(skewed, 3);
    expect(ticks.map((t) => t.tsMs - START)).toEqual([0, 10_000 - 95_000, 20_000]);
    expect(ticks[1]!.readings[0]!.ts).toBe(new Date(START + 10_000 - 95_000).toISOString());
  });

  it('shows a few broken units at start when background failures are on', () => {
    const big = scenario({ capacity_kw: 8000, devices: { asic: { S21: 2000 } } }, { random_failures: true });
    const [tick] = run(big, 1);
    const errors = tick!.readings.filter((r) => r.status === 'error').length;
    const degraded = tick!.readings.filter(
      (r) => r.kind === 'asic' && r.status === 'ok' && r.hashrate_ths! < 150,
    ).length;
    expect(errors).toBeGreaterThan(0);
    expect(degraded).toBeGreaterThan(5); // lost hashboards (~2 % of units)
    expect(degraded).toBeLessThan(100);
    expect(tick!.silentDevices).toBeLessThan(30);
  });
});
