import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FleetHandle,
  loadScenario,
  parseScenario,
  provisionSites,
  startFleet,
} from '../simulators/index.ts';
import { waitFor } from '../src/alerting/testing.ts';
import type { AlertView } from '../src/alerting/view.ts';
import type { RunningService } from '../src/service.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { ADMIN_TOKEN, adminRequest, startTestService } from './support/service.ts';

// The shipped fault scenarios' sites, small and fast: one tick every 0.5 s, faults within seconds.
const OUTAGE = 'outage-mining-wy';
const SURPLUS = 'surplus-mining-wtx';
const CURTAILED = 'demo-mining-tx';
const INTERVAL_S = 0.5;
const OUTAGE_AT_S = 2;
const OUTAGE_FOR_S = 4;
const CURTAILED_FROM_S = 1;
const CURTAILED_FOR_S = 9;

/** A site of a shipped scenario, scaled down, without its time-of-day grid windows (the test must not depend on the hour). */
function siteOf(scenario: string, site: string, scale: number) {
  const spec = loadScenario(scenario, {
    sites: [site],
    scale,
    interval_s: INTERVAL_S,
    random_failures: false,
  }).sites[0]!;
  return { ...spec, grid: [] };
}

const scenario = parseScenario({
  name: 'alerting',
  interval_s: INTERVAL_S,
  // Runs until stopped: the agents keep reporting until every resolution has been seen.
  duration_s: 0,
  random_failures: false,
  sites: [siteOf('outage', OUTAGE, 0.1), siteOf('surplus', SURPLUS, 0.05), siteOf('demo', CURTAILED, 0.05)],
  faults: [
    // outage.json: the mining site's uplink goes down and it backfills on recovery.
    { type: 'site_outage', site: OUTAGE, at_s: OUTAGE_AT_S, duration_s: OUTAGE_FOR_S, backfill: true },
    // surplus.json: wind behind the meter, 1.8 × capacity available.
    { type: 'surplus', site: SURPLUS, at_s: 1, duration_s: 4, available_ratio: 1.8 },
    // demo.json: the grid curtails the Texas hall to 55 %; the least efficient ASICs are put to sleep.
    {
      type: 'curtailment',
      site: CURTAILED,
      at_s: CURTAILED_FROM_S,
      duration_s: CURTAILED_FOR_S,
      available_ratio: 0.55,
    },
  ],
});

const THRESHOLDS = {
  site_down_after_s: 2,
  // The simulated sites run with 10–13 % headroom in normal operation; the surplus fault leaves ~50 %.
  surplus_min_ratio: 0.3,
  surplus_for_s: 1,
  devices_down_for_s: 1,
  hashrate_low_for_s: 1,
  over_available_for_s: 1,
};

describe('alerts from simulated fault scenarios on postgres', () => {
  let db: TestDatabase;
  let service: RunningService;
  let fleet: FleetHandle | undefined;
  const ids: Record<string, number> = {};

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await startTestService(db, { env: { HASHWATT_ALERT_INTERVAL_S: '1' } });
  });

  afterAll(async () => {
    await fleet?.stop({ flushMs: 0 });
    await service?.stop();
    await db?.dispose();
  });

  const history = async (site: string): Promise<AlertView[]> => {
    const response = await adminRequest(service.url, 'GET', `/api/v1/sites/${ids[site]}/alerts`);
    return ((await response.json()) as { alerts: AlertView[] }).alerts;
  };
  const episode = (site: string, alertname: string, state: string) =>
    waitFor(
      `${alertname} ${state} at ${site}`,
      async () => (await history(site)).find((a) => a.alertname === alertname && a.state === state),
      20_000,
      200,
    );

  it('fires SiteDown for an outage, PowerSurplus for a surplus, and nothing for a curtailment; all resolve', async () => {
    const tokens = await provisionSites({ url: service.url, adminToken: ADMIN_TOKEN, scenario });
    const list = (await (await adminRequest(service.url, 'GET', '/api/v1/sites')).json()) as {
      sites: { id: number; name: string }[];
    };
    for (const s of list.sites) {
      ids[s.name] = s.id;
      const patched = await adminRequest(service.url, 'PATCH', `/api/v1/sites/${s.id}`, {
        thresholds: THRESHOLDS,
      });
      expect(patched.status).toBe(200);
    }

    const startedMs = Date.now();
    fleet = startFleet({ scenario, url: service.url, tokens, seed: 1 });

    // Mid-curtailment: ASICs asleep and reported as such, none counted down.
    await new Promise((r) => setTimeout(r, 4_000));
    const curtailedSite = (await service.fleet.read()).sites.find((s) => s.name === CURTAILED)!;
    expect(curtailedSite.devices.curtailed).toBeGreaterThan(0);
    expect(curtailedSite.devicesDownRatio).toBe(0);
    expect(curtailedSite.availableSource).toBe('meter');

    const surplus = await episode(SURPLUS, 'PowerSurplus', 'firing');
    expect(Number(surplus.annotations.surplus_ratio)).toBeGreaterThan(0.4);
    expect(Number(surplus.annotations.devices_powerable)).toBeGreaterThan(0);
    expect(surplus.annotations.typical_device_kind).toBe('asic');
    expect(surplus.annotations.description).toMatch(/enough for about \d+ more ASICs at [\d.]+ kW each/);

    const down = await episode(OUTAGE, 'SiteDown', 'firing');
    // The last reading before the outage was committed at about OUTAGE_AT_S − one tick; down
    // 2 s later, seen within one 1 s evaluation (and 0.5 s for delivery and the write).
    const lastReadingMs = startedMs + (OUTAGE_AT_S - INTERVAL_S) * 1000;
    const firedAfterMs = Date.parse(down.fired_at!) - lastReadingMs;
    expect(firedAfterMs).toBeGreaterThan(2_000);
    expect(firedAfterMs).toBeLessThanOrEqual(2_000 + 1_000 + 500);

    const recovered = await episode(OUTAGE, 'SiteDown', 'resolved');
    const backMs = startedMs + (OUTAGE_AT_S + OUTAGE_FOR_S) * 1000;
    expect(Date.parse(recovered.resolved_at!)).toBeGreaterThan(backMs + 4_000 - 500);
    await episode(SURPLUS, 'PowerSurplus', 'resolved');
    // Past the curtailment window and one more evaluation, then the agents stop.
    const curtailmentOverMs = startedMs + (CURTAILED_FROM_S + CURTAILED_FOR_S) * 1000 + 1_500;
    await new Promise((r) => setTimeout(r, Math.max(0, curtailmentOverMs - Date.now())));
    await fleet.stop({ flushMs: 1_000 });

    // A dark site is judged on SiteDown alone; the curtailment raised nothing at all.
    expect((await history(OUTAGE)).map((a) => a.alertname)).toEqual(['SiteDown']);
    expect((await history(SURPLUS)).map((a) => a.alertname)).toEqual(['PowerSurplus']);
    expect(await history(CURTAILED)).toEqual([]);
  });
});
