import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWebhookReceiver, type WebhookReceiver, waitFor } from '../src/alerting/testing.ts';
import type { AlertView } from '../src/alerting/view.ts';
import type { RunningService } from '../src/service.ts';
import { listDeliveryAttempts } from '../src/storage/alerts.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';
import {
  ADMIN_TOKEN,
  adminRequest,
  asicReading,
  type CreatedSite,
  createSite,
  postReadings,
  startTestService,
} from './support/service.ts';

const INTERVAL_MS = 1_000;
const SITE_DOWN_AFTER_S = 1;

async function getAlerts(base: string, query = ''): Promise<AlertView[]> {
  const response = await adminRequest(base, 'GET', `/api/v1/alerts${query}`);
  if (response.status !== 200) throw new Error(`GET alerts: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { alerts: AlertView[] }).alerts;
}

/** An agent pushing two ASICs and a meter every 250 ms until stopped; resolves with its last commit time. */
function feed(base: string, token: string) {
  let stopped = false;
  let lastCommitMs = 0;
  const done = (async () => {
    while (!stopped) {
      const ts = Date.now();
      const response = await postReadings(base, token, [
        asicReading('r1', ts),
        asicReading('r2', ts),
        { device: 'main', kind: 'meter', ts, power_w: 7_000, available_power_w: 7_500, status: 'ok' },
      ]);
      if (response.status === 200) lastCommitMs = Date.now();
      await new Promise((r) => setTimeout(r, 250));
    }
    return lastCommitMs;
  })();
  return {
    stop: async () => {
      stopped = true;
      return done;
    },
  };
}

describe.each(BACKENDS)('alert lifecycle and API on %s', (backend) => {
  let db: TestDatabase;
  let service: RunningService;
  let hook: WebhookReceiver;
  let alpha: CreatedSite;
  const start = () =>
    startTestService(db, {
      env: {
        HASHWATT_ALERT_INTERVAL_S: String(INTERVAL_MS / 1000),
        HASHWATT_WEBHOOK_URLS: `${hook.url}/hook`,
      },
      tuning: { alerting: { pollMs: 100 } },
    });

  beforeAll(async () => {
    db = await createTestDatabase(backend);
    hook = await startWebhookReceiver();
    service = await start();
    alpha = await createSite(service.url, 'alpha', 'mining', 10);
    await createSite(service.url, 'beta', 'mining', 10);
    const patched = await adminRequest(service.url, 'PATCH', `/api/v1/sites/${alpha.site.id}`, {
      thresholds: { site_down_after_s: SITE_DOWN_AFTER_S },
    });
    expect(patched.status).toBe(200);
  });

  afterAll(async () => {
    await service?.stop();
    await hook?.close();
    await db?.dispose();
  });

  const siteDownEvents = (event: string) =>
    hook.received.filter((r) => {
      const body = r.body as { event: string; alert: AlertView };
      return body.event === event && body.alert.alertname === 'SiteDown' && body.alert.site.name === 'alpha';
    });

  it('fires SiteDown within the threshold plus one interval, keeps it across a restart without announcing it again, and resolves it after recovery', async () => {
    const agent = feed(service.url, alpha.token);
    await new Promise((r) => setTimeout(r, 500));
    const lastCommitMs = await agent.stop();

    const [firing] = await waitFor('SiteDown firing', async () => {
      const alerts = await getAlerts(service.url, '?state=firing&site=alpha');
      return alerts.length > 0 && alerts;
    });
    expect(firing).toMatchObject({
      alertname: 'SiteDown',
      severity: 'critical',
      state: 'firing',
      site: { id: alpha.site.id, name: 'alpha', kind: 'mining' },
      threshold: SITE_DOWN_AFTER_S,
      labels: { alertname: 'SiteDown', site: 'alpha', kind: 'mining', severity: 'critical' },
    });
    expect(firing!.summary).toBe('Site alpha is down');
    const firedAfterMs = Date.parse(firing!.fired_at!) - lastCommitMs;
    // Down after the threshold of silence, seen by the next evaluation; 250 ms for snapshot and write.
    expect(firedAfterMs).toBeGreaterThan(SITE_DOWN_AFTER_S * 1000);
    expect(firedAfterMs).toBeLessThanOrEqual(SITE_DOWN_AFTER_S * 1000 + INTERVAL_MS + 250);

    // The webhook hears of it once; the metric shows it.
    await waitFor('the firing webhook', () => siteDownEvents('firing').length === 1);
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(metrics).toContain(
      'hashwatt_alerts_firing{alertname="SiteDown",site="alpha",severity="critical"} 1',
    );
    expect(metrics).toMatch(/hashwatt_alerting_leader 1/);

    // A restart on the same database: the alert is loaded, not found anew.
    await service.stop();
    service = await start();
    // Past the new process's start-up grace (one threshold), plus an evaluation.
    await new Promise((r) => setTimeout(r, SITE_DOWN_AFTER_S * 1000 + INTERVAL_MS + 500));
    const [still] = await getAlerts(service.url, '?state=firing&site=alpha');
    expect(still).toMatchObject({ id: firing!.id, fired_at: firing!.fired_at, state: 'firing' });
    expect(siteDownEvents('firing')).toHaveLength(1);

    const recovery = feed(service.url, alpha.token);
    const backMs = Date.now();
    const [resolved] = await waitFor('SiteDown resolved', async () => {
      const alerts = await getAlerts(service.url, '?state=resolved&site=alpha');
      return alerts.length > 0 && alerts;
    });
    await recovery.stop();
    // Resolved only after twice the threshold of reports (the hold). How soon after is not asserted:
    // on this shared machine an evaluation can run seconds late (8.7 s seen under a benchmark).
    const resolvedAfterMs = Date.parse(resolved!.resolved_at!) - backMs;
    expect(resolvedAfterMs).toBeGreaterThanOrEqual(SITE_DOWN_AFTER_S * 2000 - 250);
    expect(resolved!.id).toBe(firing!.id);
    await waitFor('the resolved webhook', () => siteDownEvents('resolved').length === 1);
    expect(siteDownEvents('firing')).toHaveLength(1);

    const history = await adminRequest(service.url, 'GET', `/api/v1/sites/${alpha.site.id}/alerts`);
    const body = (await history.json()) as { site: { name: string }; alerts: AlertView[] };
    expect(body.site.name).toBe('alpha');
    expect(body.alerts).toEqual([
      expect.objectContaining({ id: firing!.id, state: 'resolved', fired_at: firing!.fired_at }),
    ]);
    const attempts = await listDeliveryAttempts(service.storage.db, firing!.id);
    expect(attempts.map((a) => [a.event, a.receiver, a.outcome, a.status_code])).toEqual([
      ['firing', 'webhook', 'delivered', 200],
      ['resolved', 'webhook', 'delivered', 200],
    ]);
    expect(siteDownEvents('resolved')[0]!.headers['x-hashwatt-event']).toBe('resolved');
    // The receiver URL (it may hold a secret) is not stored, only its origin.
    expect(JSON.stringify(attempts)).not.toContain('/hook');
    expect(attempts[0]!.receiver_origin).toBe(hook.url);
  });

  it('does not call a site that never reported down', async () => {
    // beta was created before everything above and never sent a reading.
    expect(await getAlerts(service.url, '?site=beta')).toEqual([]);
  });

  it('validates query parameters and names the bad one', async () => {
    const cases: [string, number, string, string | undefined][] = [
      ['/api/v1/alerts?state=burning', 400, 'invalid_query', 'state'],
      ['/api/v1/alerts?limit=0', 400, 'invalid_query', 'limit'],
      ['/api/v1/alerts?limit=ten', 400, 'invalid_query', 'limit'],
      ['/api/v1/alerts?sort=asc', 400, 'invalid_query', 'sort'],
      ['/api/v1/alerts?site=nowhere', 404, 'not_found', 'site'],
      [`/api/v1/sites/${alpha.site.id}/alerts?state=x`, 400, 'invalid_query', 'state'],
      ['/api/v1/sites/99999/alerts', 404, 'not_found', undefined],
      ['/api/v1/sites/abc/alerts', 404, 'not_found', 'id'],
      ['/api/v1/sites/2147483648/alerts', 404, 'not_found', 'id'],
      [`/api/v1/sites/${alpha.site.id}.0/alerts`, 404, 'not_found', 'id'],
      ['/api/v1/alerts?site=%00', 400, 'invalid_query', 'site'],
      ['/api/v1/alerts?limit=1e2', 400, 'invalid_query', 'limit'],
    ];
    for (const [path, status, code, field] of cases) {
      const response = await adminRequest(service.url, 'GET', path);
      const body = (await response.json()) as { error: { code: string; field?: string } };
      expect([path, response.status, body.error.code, body.error.field]).toEqual([path, status, code, field]);
    }
    // By id or by name, and by state.
    const byId = await getAlerts(service.url, `?site=${alpha.site.id}&limit=1`);
    const byName = await getAlerts(service.url, '?site=alpha&limit=1');
    expect(byId).toEqual(byName);
    expect(byId).toHaveLength(1);
    expect(await getAlerts(service.url, '?state=pending')).toEqual([]);
  });

  it('refuses the alerts API without a token, and shows a site token its own site’s alerts only', async () => {
    for (const path of ['/api/v1/alerts', `/api/v1/sites/${alpha.site.id}/alerts`]) {
      for (const authorization of [undefined, `Bearer ${ADMIN_TOKEN}x`]) {
        const response = await fetch(service.url + path, {
          headers: authorization ? { authorization } : {},
        });
        expect([path, response.status]).toEqual([path, 401]);
      }
    }
    const asSite = (path: string) =>
      fetch(service.url + path, { headers: { authorization: `Bearer ${alpha.token}` } });
    const all = (await (await asSite('/api/v1/alerts?limit=1000')).json()) as {
      alerts: { site: { name: string } }[];
    };
    const everyone = (await (
      await fetch(`${service.url}/api/v1/alerts?limit=1000`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      })
    ).json()) as { alerts: { site: { name: string } }[] };
    expect(all.alerts.length).toBeGreaterThan(0);
    expect(all.alerts.every((a) => a.site.name === 'alpha')).toBe(true);
    expect(all.alerts.length).toBe(everyone.alerts.filter((a) => a.site.name === 'alpha').length);
    expect((await asSite('/api/v1/alerts?site=beta')).status).toBe(404);
    expect((await asSite(`/api/v1/sites/${alpha.site.id}/alerts`)).status).toBe(200);
  });
});
