import { describe, expect, it } from 'vitest';
import type { AlertView } from '../alerting/view.ts';
import { CORE_METRICS } from '../catalog/index.ts';
import { foldDeviceGroups } from '../fleet/aggregate.ts';
import { summariseSite } from '../fleet/site-state.ts';
import { DEFAULT_THRESHOLDS } from '../fleet/thresholds.ts';
import type { LatestDeviceRow } from '../storage/fleet.ts';
import { groupAlertsBySite, siteStatus, viewLatestDevice, viewSiteState } from './view.ts';

const NOW = 1_800_000_000_000;
const SITE = { site_id: 3, name: 'north', kind: 'mixed' as const, capacity_w: 1e6, thresholds: {} };

function stateAt(lastReceivedMs: number | null) {
  const [aggregate] = foldDeviceGroups([SITE], []);
  return summariseSite({ ...aggregate!, last_received_ms: lastReceivedMs }, DEFAULT_THRESHOLDS, NOW);
}

function alert(id: number, siteId: number): AlertView {
  return {
    id,
    alertname: 'SiteDown',
    severity: 'critical',
    state: 'firing',
    site: { id: siteId, name: `s${siteId}`, kind: 'mining' },
    value: 1,
    threshold: 0,
    started_at: new Date(NOW).toISOString(),
    fired_at: new Date(NOW).toISOString(),
    resolved_at: null,
    last_notified_at: null,
    summary: null,
    description: null,
    labels: {},
    annotations: {},
    acknowledgement: null,
    silenced_by: [],
  };
}

describe('site status view', () => {
  it('says unknown for a site that never reported, up or down by site_down_after_s otherwise', () => {
    expect(siteStatus(stateAt(null))).toBe('unknown');
    expect(siteStatus(stateAt(NOW - 60_000))).toBe('up');
    expect(siteStatus(stateAt(NOW - 60_001))).toBe('down');
  });

  it('shows the site state’s numbers unchanged, with RFC 3339 times and the alerts given', () => {
    const state = stateAt(NOW - 5_000);
    const view = viewSiteState(state, [alert(9, 3)]);
    expect(view).toMatchObject({
      id: 3,
      name: 'north',
      status: 'up',
      last_reading_at: new Date(NOW - 5_000).toISOString(),
      drawn_power_w: state.drawnW,
      drawn_power_source: 'devices',
      available_power_w: 1e6,
      available_power_source: 'capacity',
      surplus_w: state.surplusW,
      surplus_ratio: 1,
      hashing_ratio: null,
      efficiency_j_per_th: null,
      gpu_utilisation_ratio: null,
      ai_power_ratio: null,
      devices: { up: 0, down: 0, stale: 0, curtailed: 0, total: 0 },
    });
    expect(view.firing_alerts.map((a) => a.id)).toEqual([9]);
  });

  it('groups alerts by site, keeping their order', () => {
    const grouped = groupAlertsBySite([alert(1, 2), alert(2, 3), alert(3, 2)]);
    expect([...grouped].map(([site, alerts]) => [site, alerts.map((a) => a.id)])).toEqual([
      [2, [1, 3]],
      [3, [2]],
    ]);
  });
});

describe('device view', () => {
  const row: LatestDeviceRow = {
    device_id: 11,
    external_id: 'hall-a/r01/s21-001',
    kind: 'asic',
    model: 'S21',
    ts: new Date(NOW - 2_000),
    received_at: new Date(NOW - 1_000),
    power_w: 3500,
    hashrate_ths: 0,
    expected_hashrate_ths: 200,
    temp_c: 61.5,
    fan_rpm: null,
    gpu_util_pct: null,
    gpu_mem_used_bytes: null,
    available_power_w: null,
    status: 'ok',
  };

  it('classifies the device by the fleet rule and lists every core metric', () => {
    const view = viewLatestDevice(row, NOW, 120);
    // Online but not hashing.
    expect(view.state).toBe('down');
    expect(viewLatestDevice({ ...row, hashrate_ths: 190 }, NOW, 120).state).toBe('up');
    expect(viewLatestDevice({ ...row, hashrate_ths: 190 }, NOW + 120_000, 120).state).toBe('stale');
    expect(view).toMatchObject({
      id: 11,
      name: 'hall-a/r01/s21-001',
      model: 'S21',
      last_reading_at: new Date(NOW - 1_000).toISOString(),
      measured_at: new Date(NOW - 2_000).toISOString(),
    });
    expect(Object.keys(view.metrics)).toEqual(CORE_METRICS.map((m) => m.name));
    expect(view.metrics).toMatchObject({ power_w: 3500, temp_c: 61.5, fan_rpm: null });
  });
});
