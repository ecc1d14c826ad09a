import { describe, expect, it } from 'vitest';
import type { SiteAggregate } from '../fleet/aggregate.ts';
import type { SiteState } from '../fleet/site-state.ts';
import { summariseSite } from '../fleet/site-state.ts';
import { DEFAULT_THRESHOLDS } from '../fleet/thresholds.ts';
import { type AlertChange, alertKey, type OpenAlert, planEvaluation } from './evaluate.ts';

const T0 = Date.parse('2026-11-24T12:00:00Z');

function site(nowMs: number, overrides: Partial<SiteAggregate> = {}): SiteState {
  return summariseSite(
    {
      site_id: 7,
      name: 'alpha',
      kind: 'mining',
      capacity_w: 1_000_000,
      thresholds: { surplus_for_s: 30, site_down_after_s: 60 },
      last_received_ms: nowMs - 1_000,
      devices_up: 100,
      devices_down: 0,
      devices_stale: 0,
      devices_curtailed: 0,
      meters_total: 1,
      meters_fresh: 1,
      meter_power_w: 950_000,
      meter_available_w: 1_000_000,
      meters_with_available: 1,
      asic_power_w: 900_000,
      gpu_power_w: 0,
      other_power_w: 0,
      hashrate_ths: 20_000,
      expected_hashrate_ths: 20_000,
      hashing_power_w: 900_000,
      gpus_fresh: 0,
      gpus_with_util: 0,
      gpu_util_ratio_sum: 0,
      gpus_idle: 0,
      asics_up: 100,
      asics_up_power_w: 900_000,
      gpus_up: 0,
      gpus_up_power_w: 0,
      ...overrides,
    },
    DEFAULT_THRESHOLDS,
    nowMs,
  );
}

/** Applies changes to the open alerts as the engine does after its write commits. */
function apply(open: Map<string, OpenAlert>, changes: AlertChange[], nextId: { value: number }) {
  for (const c of changes) {
    if (c.op === 'open') {
      const alert = { ...c.draft, id: nextId.value++ };
      open.set(alertKey(alert.siteId, alert.alertname), alert);
    } else if (c.op === 'update') open.set(alertKey(c.alert.siteId, c.alert.alertname), c.alert);
    else open.delete(alertKey(c.alert.siteId, c.alert.alertname));
  }
}

/** Evaluates a site every 15 s over `seconds`, with the aggregate a function of time. */
function simulate(seconds: number, at: (s: number) => Partial<SiteAggregate>) {
  const open = new Map<string, OpenAlert>();
  const id = { value: 1 };
  const log: { s: number; op: string; alertname: string; notify?: string | null }[] = [];
  for (let s = 0; s <= seconds; s += 15) {
    const nowMs = T0 + s * 1000;
    const changes = planEvaluation([site(nowMs, at(s))], open, { nowMs, listeningSinceMs: T0 - 3_600_000 });
    for (const c of changes) {
      const alertname = c.op === 'open' ? c.draft.alertname : c.alert.alertname;
      if (c.op === 'update' && !c.notify) continue;
      log.push({
        s,
        op: c.op,
        alertname,
        ...((c.op === 'open' || c.op === 'update') && { notify: c.notify }),
      });
    }
    apply(open, changes, id);
  }
  return { open, log };
}

describe('planEvaluation', () => {
  it('fires PowerSurplus after surplus_for_s and resolves it after the hold', () => {
    // 30 % unused from 60 s to 180 s; `for` 30 s, hold 15 s.
    const { log } = simulate(300, (s) => (s >= 60 && s < 180 ? { meter_power_w: 700_000 } : {}));
    expect(log).toEqual([
      { s: 60, op: 'open', alertname: 'PowerSurplus', notify: null },
      { s: 90, op: 'update', alertname: 'PowerSurplus', notify: 'firing' },
      { s: 195, op: 'resolve', alertname: 'PowerSurplus' },
    ]);
  });

  it('fires SiteDown at once past the threshold and resolves after twice the threshold of reports', () => {
    const { log } = simulate(600, (s) => ({
      last_received_ms: s >= 100 && s < 300 ? T0 + 100_000 : T0 + s * 1000,
    }));
    expect(log).toEqual([
      { s: 165, op: 'open', alertname: 'SiteDown', notify: 'firing' },
      { s: 420, op: 'resolve', alertname: 'SiteDown' },
    ]);
  });

  it('does not fire DevicesDown or HashrateLow while the grid curtails half the ASICs', () => {
    const curtailed = {
      devices_up: 50,
      devices_curtailed: 50,
      meter_power_w: 480_000,
      meter_available_w: 500_000,
      hashrate_ths: 10_000,
      expected_hashrate_ths: 10_000,
      thresholds: { devices_down_for_s: 1, hashrate_low_for_s: 1 },
    };
    const { log } = simulate(900, (s) => (s >= 60 && s < 600 ? curtailed : {}));
    expect(log).toEqual([]);
  });

  it('does not flap when the surplus hovers at its threshold', () => {
    // 30 % unused for two minutes fires; then 10.5 % and 9.5 % (the threshold is 10 %) alternate
    // every evaluation for an hour: the alert stays open, nothing is announced again.
    const { log, open } = simulate(3600, (s) => ({
      thresholds: { surplus_for_s: 60 },
      meter_power_w: s < 120 ? 700_000 : (s / 15) % 2 === 0 ? 895_000 : 905_000,
    }));
    expect(log).toEqual([
      { s: 0, op: 'open', alertname: 'PowerSurplus', notify: null },
      { s: 60, op: 'update', alertname: 'PowerSurplus', notify: 'firing' },
    ]);
    expect([...open.values()].map((a) => a.episode.state)).toEqual(['firing']);
  });

  it('never fires a condition that is never met for `for` without a break', () => {
    const { log } = simulate(3600, (s) => ({
      thresholds: { surplus_for_s: 60 },
      meter_power_w: (s / 15) % 2 === 0 ? 895_000 : 905_000,
    }));
    expect(log.filter((l) => l.notify === 'firing')).toEqual([]);
  });

  it('holds a site’s other alerts while it is dark, and resolves them when it clearly recovered', () => {
    const tenDown = {
      devices_up: 90,
      devices_down: 10,
      thresholds: { devices_down_for_s: 30, site_down_after_s: 60 },
    };
    const { log } = simulate(900, (s) => {
      if (s < 300) return tenDown;
      if (s < 600) return { ...tenDown, last_received_ms: T0 + 299_000 };
      return { thresholds: tenDown.thresholds };
    });
    expect(log).toEqual([
      { s: 0, op: 'open', alertname: 'DevicesDown', notify: null },
      { s: 30, op: 'update', alertname: 'DevicesDown', notify: 'firing' },
      { s: 360, op: 'open', alertname: 'SiteDown', notify: 'firing' },
      // Back at 600 s: DevicesDown is clear for its hold (15 s); SiteDown for twice its threshold.
      { s: 615, op: 'resolve', alertname: 'DevicesDown' },
      { s: 720, op: 'resolve', alertname: 'SiteDown' },
    ]);
  });

  it('keeps the labels of an open episode when the site is renamed, and forgets a deleted site', () => {
    const open = new Map<string, OpenAlert>();
    const id = { value: 1 };
    const dark = { last_received_ms: T0 - 120_000 };
    apply(open, planEvaluation([site(T0, dark)], open, { nowMs: T0, listeningSinceMs: 0 }), id);
    const renamed = { ...site(T0 + 15_000, dark), name: 'alpha-2' };
    apply(open, planEvaluation([renamed], open, { nowMs: T0 + 15_000, listeningSinceMs: 0 }), id);
    expect([...open.values()][0]!.labels).toEqual({
      alertname: 'SiteDown',
      site: 'alpha',
      kind: 'mining',
      severity: 'critical',
    });
    const gone = planEvaluation([], open, { nowMs: T0 + 30_000, listeningSinceMs: 0 });
    expect(gone).toEqual([expect.objectContaining({ op: 'forget' })]);
  });
});
