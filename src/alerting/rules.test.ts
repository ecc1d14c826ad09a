import { describe, expect, it } from 'vitest';
import type { SiteAggregate } from '../fleet/aggregate.ts';
import { summariseSite } from '../fleet/site-state.ts';
import { DEFAULT_THRESHOLDS, type Thresholds } from '../fleet/thresholds.ts';
import { ALERT_NAMES, ALERT_RULES, type AlertName, type Condition, typicalDevice } from './rules.ts';

const NOW = Date.parse('2026-11-24T12:00:00Z');
/** hashwatt has been listening for an hour unless a case says otherwise. */
const LISTENING_SINCE = NOW - 3_600_000;

/** A healthy 1 MW mining site: 100 ASICs up at 8.5 kW each, a fresh meter with 1 MW available. */
function aggregate(overrides: Partial<SiteAggregate> = {}): SiteAggregate {
  return {
    site_id: 1,
    name: 'alpha',
    kind: 'mining',
    capacity_w: 1_000_000,
    thresholds: {},
    last_received_ms: NOW - 5_000,
    devices_up: 100,
    devices_down: 0,
    devices_stale: 0,
    devices_curtailed: 0,
    meters_total: 1,
    meters_fresh: 1,
    meter_power_w: 950_000,
    meter_available_w: 1_000_000,
    meters_with_available: 1,
    asic_power_w: 850_000,
    gpu_power_w: 0,
    other_power_w: 0,
    hashrate_ths: 20_000,
    expected_hashrate_ths: 20_000,
    hashing_power_w: 850_000,
    gpus_fresh: 0,
    gpus_with_util: 0,
    gpu_util_ratio_sum: 0,
    gpus_idle: 0,
    asics_up: 100,
    asics_up_power_w: 850_000,
    gpus_up: 0,
    gpus_up_power_w: 0,
    ...overrides,
  };
}

function evaluate(name: AlertName, overrides: Partial<SiteAggregate>, listeningSinceMs = LISTENING_SINCE) {
  const rule = ALERT_RULES.find((r) => r.name === name)!;
  const site = summariseSite(aggregate(overrides), DEFAULT_THRESHOLDS, NOW);
  return rule.evaluate(site, { nowMs: NOW, listeningSinceMs });
}

type Case = [
  description: string,
  overrides: Partial<SiteAggregate>,
  expected: Condition,
  value?: number | null,
];

function table(name: AlertName, cases: Case[]) {
  describe(name, () => {
    it.each(cases)('%s', (_description, overrides, expected, value) => {
      const result = evaluate(name, overrides);
      expect(result.condition).toBe(expected);
      if (value !== undefined) {
        if (value === null) expect(result.value).toBeNull();
        else expect(result.value).toBeCloseTo(value, 6);
      }
      if (expected === 'met') {
        expect(result.annotations.summary).toBeTruthy();
        expect(result.annotations.description).toBeTruthy();
      }
    });
  });
}

const thresholds = (t: Partial<Thresholds>) => ({ thresholds: t });
const dark = { last_received_ms: NOW - 600_000, meters_fresh: 0, asic_power_w: 0, hashing_power_w: 0 };

table('SiteDown', [
  ['reported 5 s ago', {}, 'clear', 5],
  ['silent for exactly the threshold (60 s)', { last_received_ms: NOW - 60_000 }, 'clear', 60],
  ['silent for 61 s', { last_received_ms: NOW - 61_000 }, 'met', 61],
  ['never reported: not commissioned, not down', { last_received_ms: null }, 'clear', null],
  [
    'a per-site threshold of 2 s, silent for 3 s',
    { ...thresholds({ site_down_after_s: 2 }), last_received_ms: NOW - 3_000 },
    'met',
    3,
  ],
]);

describe('SiteDown after hashwatt itself was down', () => {
  it('does not blame the site until hashwatt has listened for one threshold', () => {
    const old = { last_received_ms: NOW - 900_000 };
    expect(evaluate('SiteDown', old, NOW - 10_000).condition).toBe('unknown');
    expect(evaluate('SiteDown', old, NOW - 60_000).condition).toBe('unknown');
    expect(evaluate('SiteDown', old, NOW - 61_000).condition).toBe('met');
  });

  it('blames a site that went silent after hashwatt started', () => {
    expect(evaluate('SiteDown', { last_received_ms: NOW - 61_000 }, NOW - 62_000).condition).toBe('met');
  });
});

table('PowerOverAvailable', [
  ['drawing under available', {}, 'clear', 950_000],
  ['drawing at available + tolerance exactly (1.02 MW)', { meter_power_w: 1_020_000 }, 'clear'],
  ['drawing 1.03 MW of 1 MW available', { meter_power_w: 1_030_000 }, 'met', 1_030_000],
  [
    'the grid curtailed the site to 500 kW and it still draws 800 kW',
    { meter_power_w: 800_000, meter_available_w: 500_000 },
    'met',
  ],
  [
    'a stale meter claiming 500 kW available falls back to capacity (and device power)',
    { meters_fresh: 0, meter_power_w: null, meter_available_w: null, meters_with_available: 0 },
    'clear',
    850_000,
  ],
  [
    'a per-site tolerance of 10 %',
    { ...thresholds({ over_available_tolerance_ratio: 0.1 }), meter_power_w: 1_080_000 },
    'clear',
  ],
  ['a dark site cannot be judged', { ...dark, meter_power_w: 2_000_000 }, 'unknown', null],
]);

table('PowerSurplus', [
  ['drawing 95 % of available', {}, 'clear', 50_000],
  ['leaving exactly 10 % unused', { meter_power_w: 900_000 }, 'met', 100_000],
  ['leaving 9.9 % unused', { meter_power_w: 901_000 }, 'clear', 99_000],
  [
    'surplus over the ratio but under surplus_min_w',
    { ...thresholds({ surplus_min_w: 200_000 }), meter_power_w: 850_000 },
    'clear',
    150_000,
  ],
  [
    'surplus over both thresholds',
    { ...thresholds({ surplus_min_w: 200_000 }), meter_power_w: 700_000 },
    'met',
    300_000,
  ],
  ['wind behind the meter: 1.8 MW available, 950 kW drawn', { meter_available_w: 1_800_000 }, 'met', 850_000],
  [
    'stale meter: capacity (2 MW) is available, devices draw 850 kW',
    { capacity_w: 2_000_000, meters_fresh: 0 },
    'met',
    1_150_000,
  ],
  [
    'nothing available, nothing drawn: no surplus even with zero thresholds',
    {
      ...thresholds({ surplus_min_ratio: 0 }),
      capacity_w: 0,
      meters_total: 0,
      meter_power_w: null,
      asic_power_w: 0,
      meter_available_w: null,
      meters_with_available: 0,
    },
    'clear',
    0,
  ],
  ['a dark site cannot be judged', dark, 'unknown', null],
]);

table('DevicesDown', [
  ['all up', {}, 'clear', 0],
  ['5 of 100 down: at the threshold, not over', { devices_up: 95, devices_down: 5 }, 'clear', 0.05],
  ['10 of 100 down', { devices_up: 90, devices_down: 10 }, 'met', 0.1],
  ['10 of 100 silent (stale)', { devices_up: 90, devices_stale: 10 }, 'met', 0.1],
  ['curtailment: 40 of 100 curtailed and excused', { devices_up: 60, devices_curtailed: 40 }, 'clear', 0],
  [
    'curtailment plus 3 real failures',
    { devices_up: 57, devices_curtailed: 40, devices_down: 3 },
    'clear',
    0.03,
  ],
  ['no compute devices (a meter only)', { devices_up: 0 }, 'clear', 0],
  ['a dark site cannot be judged', { ...dark, devices_up: 0, devices_stale: 100 }, 'unknown', null],
]);

table('HashrateLow', [
  ['hashing as expected', {}, 'clear', 1],
  ['at 75 %: at the minimum, not under', { hashrate_ths: 15_000 }, 'clear', 0.75],
  ['at 70 %', { hashrate_ths: 14_000 }, 'met', 0.7],
  ['no ASIC expected to hash (all curtailed)', { hashrate_ths: 0, expected_hashrate_ths: 0 }, 'clear', null],
  [
    'a per-site minimum of 0.9',
    { ...thresholds({ hashing_ratio_min: 0.9 }), hashrate_ths: 17_000 },
    'met',
    0.85,
  ],
  ['a dark site cannot be judged', { ...dark, hashrate_ths: 0 }, 'unknown', null],
]);

const aiSite = {
  kind: 'ai' as const,
  devices_up: 16,
  asic_power_w: 0,
  hashing_power_w: 0,
  hashrate_ths: 0,
  expected_hashrate_ths: 0,
  gpu_power_w: 11_200,
  gpus_fresh: 16,
  gpus_with_util: 16,
  asics_up: 0,
  asics_up_power_w: 0,
  gpus_up: 16,
  gpus_up_power_w: 11_200,
};

table('GpuIdle', [
  ['an AI site at 10 % utilisation', { ...aiSite, gpu_util_ratio_sum: 1.6, gpus_idle: 16 }, 'met', 0.1],
  ['an AI site at 20 % exactly', { ...aiSite, gpu_util_ratio_sum: 3.2 }, 'clear', 0.2],
  ['an AI site busy at 90 %', { ...aiSite, gpu_util_ratio_sum: 14.4 }, 'clear', 0.9],
  ['a mixed site with idle GPUs', { ...aiSite, kind: 'mixed', gpu_util_ratio_sum: 0.8 }, 'met', 0.05],
  [
    'a mining site with a GPU is not judged on it',
    { gpus_fresh: 1, gpus_with_util: 1, gpu_util_ratio_sum: 0 },
    'clear',
    null,
  ],
  ['an AI site whose GPUs report no utilisation', { ...aiSite, gpus_with_util: 0 }, 'clear', null],
  ['an AI site without GPUs', { ...aiSite, gpus_fresh: 0, gpus_with_util: 0 }, 'clear', null],
]);

describe('PowerSurplus annotations', () => {
  it('says how many more devices of the site’s typical kind the surplus could power', () => {
    // 100 ASICs up on 350 kW: 3.5 kW each; 500 kW unused → 142 more.
    const result = evaluate('PowerSurplus', { meter_power_w: 500_000, asics_up_power_w: 350_000 });
    expect(result.condition).toBe('met');
    expect(result.annotations).toMatchObject({
      surplus_w: '500000',
      devices_powerable: '142',
      typical_device_kind: 'asic',
      typical_device_power_w: '3500',
      available_source: 'meter',
    });
    expect(result.annotations.description).toContain('about 142 more ASICs at 3.5 kW each');
  });

  it('counts GPUs on an AI site', () => {
    const site = summariseSite(aggregate({ ...aiSite, gpu_util_ratio_sum: 8 }), DEFAULT_THRESHOLDS, NOW);
    expect(typicalDevice(site)).toEqual({ kind: 'gpu', powerW: 700 });
  });

  it('knows no typical device on a site with none up', () => {
    const site = summariseSite(
      aggregate({ devices_up: 0, asic_power_w: 0, hashing_power_w: 0, asics_up: 0, asics_up_power_w: 0 }),
      DEFAULT_THRESHOLDS,
      NOW,
    );
    expect(typicalDevice(site)).toBeNull();
  });
});

describe('the rule set', () => {
  it('has one rule per public alert name, with the agreed severities', () => {
    expect(ALERT_RULES.map((r) => r.name)).toEqual([...ALERT_NAMES]);
    expect(Object.fromEntries(ALERT_RULES.map((r) => [r.name, r.severity]))).toEqual({
      SiteDown: 'critical',
      PowerOverAvailable: 'critical',
      PowerSurplus: 'warning',
      DevicesDown: 'warning',
      HashrateLow: 'warning',
      GpuIdle: 'warning',
    });
  });

  it('has the same `for` and resolve hold as the Prometheus rules at the default thresholds', () => {
    const timing = Object.fromEntries(
      ALERT_RULES.map((r) => [
        r.name,
        [r.forMs(DEFAULT_THRESHOLDS) / 1000, r.resolveHoldMs(DEFAULT_THRESHOLDS) / 1000],
      ]),
    );
    expect(timing).toEqual({
      SiteDown: [0, 120],
      PowerOverAvailable: [120, 60],
      PowerSurplus: [600, 300],
      DevicesDown: [300, 150],
      HashrateLow: [600, 300],
      GpuIdle: [900, 300],
    });
  });
});
