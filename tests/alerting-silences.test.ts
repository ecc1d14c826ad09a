import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSilenced, type Silence, silencesOf } from '../src/alerting/silences.ts';
import { startWebhookReceiver, type WebhookReceiver, waitFor } from '../src/alerting/testing.ts';
import type { AlertView, SilenceView } from '../src/alerting/view.ts';
import type { RunningService } from '../src/service.ts';
import {
  insertSilence,
  listDeliveryAttempts,
  listNotifications,
  silencesHolding,
} from '../src/storage/alerts.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';
import {
  ADMIN_TOKEN,
  asicReading,
  type CreatedSite,
  createSite,
  postReadings,
  startTestService,
} from './support/service.ts';

// Acknowledgements and silences on a real service, on both backends: who may act, what the API,
// the webhooks and /metrics show, and what a silence keeps from a webhook while it lasts and after.

/** An agent pushing one ASIC every 250 ms until stopped. */
function feed(base: string, token: string) {
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      await postReadings(base, token, [asicReading('r1', Date.now())]);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return async () => {
    stopped = true;
    await done;
  };
}

async function call(base: string, token: string | undefined, method: string, path: string, body?: unknown) {
  const response = await fetch(base + path, {
    method,
    headers: {
      ...(token !== undefined && { authorization: `Bearer ${token}` }),
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : null) as Record<string, unknown> };
}

describe.each(BACKENDS)('acknowledgements and silences on %s', (backend) => {
  let db: TestDatabase;
  let service: RunningService;
  let hook: WebhookReceiver;
  const sites: Record<string, CreatedSite> = {};
  /** Named tokens: an operator of every site, an operator of `epsilon` only, a viewer. */
  const tokens: Record<'ops' | 'opsEpsilon' | 'viewer', string> = { ops: '', opsEpsilon: '', viewer: '' };
  const as = (token: string | undefined, method: string, path: string, body?: unknown) =>
    call(service.url, token, method, path, body);

  beforeAll(async () => {
    db = await createTestDatabase(backend);
    hook = await startWebhookReceiver();
    service = await startTestService(db, {
      env: {
        HASHWATT_ALERT_INTERVAL_S: '1',
        HASHWATT_ALERT_THRESHOLDS: '{"site_down_after_s":1}',
        HASHWATT_WEBHOOK_URLS: `${hook.url}/hook`,
      },
      tuning: { alerting: { pollMs: 100 } },
    });
    for (const name of ['alpha', 'beta', 'gamma', 'delta', 'epsilon'])
      sites[name] = await createSite(service.url, name, 'mining', 10);
    const token = async (name: string, role: string, siteIds?: number[]) => {
      const r = await as(ADMIN_TOKEN, 'POST', '/api/v1/tokens', {
        name,
        role,
        ...(siteIds && { sites: siteIds }),
      });
      expect(r.status).toBe(201);
      return r.body.token as string;
    };
    tokens.ops = await token('ops-alice', 'operator');
    tokens.opsEpsilon = await token('ops-eps', 'operator', [sites.epsilon!.site.id]);
    tokens.viewer = await token('grafana', 'viewer');
  });

  afterAll(async () => {
    await service?.stop();
    await hook?.close();
    await db?.dispose();
  });

  const webhooks = (site: string, event: string) =>
    hook.received
      .map((r) => r.body as { event: string; alert: AlertView })
      .filter((b) => b.event === event && b.alert.site.name === site);
  const firingOf = async (site: string) => {
    const r = await as(ADMIN_TOKEN, 'GET', `/api/v1/alerts?state=firing&site=${site}`);
    return (r.body.alerts as AlertView[])[0];
  };
  const resolvedOf = async (site: string, id: number) => {
    const r = await as(ADMIN_TOKEN, 'GET', `/api/v1/alerts?state=resolved&site=${site}`);
    return (r.body.alerts as AlertView[]).find((a) => a.id === id);
  };
  /** Lets the site report, then go quiet until SiteDown fires. */
  const bringDown = async (site: string) => {
    const stop = feed(service.url, sites[site]!.token);
    await waitFor(
      `${site} to report`,
      async () => (await as(ADMIN_TOKEN, 'GET', `/api/v1/sites/${sites[site]!.site.id}/status`)).body.site,
    );
    await stop();
    return waitFor(`SiteDown firing at ${site}`, () => firingOf(site), 15_000);
  };
  /** Lets the site report until its alert resolves; the feed is stopped after. */
  const bringBack = async (site: string, id: number) => {
    const stop = feed(service.url, sites[site]!.token);
    try {
      return await waitFor(`SiteDown resolved at ${site}`, () => resolvedOf(site, id), 15_000);
    } finally {
      await stop();
    }
  };
  const metrics = async () => (await fetch(`${service.url}/metrics`)).text();

  it('asks the database the same question as the pure rule: is an alert silenced at an instant', async () => {
    const T = Date.now() + 86_400_000;
    const [alpha, beta] = [sites.alpha!.site.id, sites.beta!.site.id];
    const specs = [
      { siteId: alpha, alertname: 'SiteDown', startsAtMs: T, endsAtMs: T + 60_000 },
      { siteId: null, alertname: 'GpuIdle', startsAtMs: T + 10_000, endsAtMs: T + 20_000 },
      { siteId: beta, alertname: null, startsAtMs: T, endsAtMs: T + 30_000 },
      { siteId: null, alertname: null, startsAtMs: T + 40_000, endsAtMs: T + 50_000 },
    ];
    const silences: Silence[] = [];
    for (const spec of specs) {
      const row = await insertSilence(service.storage.db, {
        ...spec,
        comment: 'agreement table',
        createdBy: 'test',
        createdByTokenId: null,
      });
      silences.push({ id: row.id, ...spec, expiredAtMs: null });
    }
    let compared = 0;
    for (const siteId of [alpha, beta])
      for (const alertname of ['SiteDown', 'GpuIdle'])
        for (const offset of [
          -1, 0, 9_999, 10_000, 19_999, 20_000, 29_999, 30_000, 40_000, 49_999, 50_000, 60_000,
        ]) {
          const at = T + offset;
          const sql = await silencesHolding(service.storage.db, { siteId, alertname }, at);
          expect([siteId, alertname, offset, sql]).toEqual([
            siteId,
            alertname,
            offset,
            silencesOf({ siteId, alertname }, silences, at),
          ]);
          compared += isSilenced({ siteId, alertname }, silences, at) ? 1 : 0;
        }
    // The table exercises both answers.
    expect(compared).toBeGreaterThan(5);
    // Expired early through the API, both forms agree on the end too.
    const first = silences[0]!;
    const expired = await as(ADMIN_TOKEN, 'DELETE', `/api/v1/silences/${first.id}`);
    expect(expired.status).toBe(200);
    // It had not started yet: expiring it now ends it before it began.
    expect(
      await silencesHolding(service.storage.db, { siteId: alpha, alertname: 'SiteDown' }, T + 1),
    ).toEqual([]);
    for (const s of silences.slice(1))
      expect((await as(ADMIN_TOKEN, 'DELETE', `/api/v1/silences/${s.id}`)).status).toBe(200);
  });

  it('lets an operator and the admin acknowledge a firing alert, and no viewer or site token', async () => {
    const firing = await bringDown('alpha');
    expect(firing).toMatchObject({ acknowledgement: null, silenced_by: [] });
    const path = `/api/v1/alerts/${firing.id}/ack`;

    expect((await as(undefined, 'POST', path, {})).status).toBe(401);
    expect(await as(tokens.viewer, 'POST', path, {})).toMatchObject({
      status: 403,
      body: { error: { code: 'forbidden' } },
    });
    expect(await as(sites.alpha!.token, 'POST', path, {})).toMatchObject({
      status: 403,
      body: { error: { code: 'forbidden' } },
    });
    // An operator of another site learns nothing: the very answer of an alert that does not exist.
    const crossSite = await as(tokens.opsEpsilon, 'POST', path, {});
    const missing = await as(tokens.ops, 'POST', '/api/v1/alerts/999999/ack', {});
    expect(crossSite.status).toBe(404);
    expect((crossSite.body.error as { message: string }).message).toBe(`no alert with id ${firing.id}`);
    expect(missing).toMatchObject({
      status: 404,
      body: { error: { code: 'not_found', message: 'no alert with id 999999' } },
    });
    expect(await as(tokens.ops, 'POST', path, { comment: 'x', extra: 1 })).toMatchObject({
      status: 400,
      body: { error: { field: 'extra' } },
    });

    const acked = await as(tokens.ops, 'POST', path, { comment: 'uplink swap in progress' });
    expect(acked.status).toBe(200);
    const alert = acked.body.alert as AlertView;
    expect(alert).toMatchObject({
      id: firing.id,
      state: 'firing',
      acknowledgement: { by: 'ops-alice', comment: 'uplink swap in progress' },
    });
    expect(Math.abs(Date.parse(alert.acknowledgement!.at) - Date.now())).toBeLessThan(60_000);

    // Shown wherever the episode is: the alerts API and the read API (a viewer's fleet).
    expect((await firingOf('alpha'))!.acknowledgement).toEqual(alert.acknowledgement);
    const fleet = await as(tokens.viewer, 'GET', '/api/v1/fleet');
    const alphaView = (fleet.body.sites as { name: string; firing_alerts: AlertView[] }[]).find(
      (s) => s.name === 'alpha',
    );
    expect(alphaView!.firing_alerts[0]!.acknowledgement).toEqual(alert.acknowledgement);

    // Taken back, and acknowledged again by the admin, who is "admin".
    expect(((await as(tokens.ops, 'DELETE', path)).body.alert as AlertView).acknowledgement).toBeNull();
    expect(await as(tokens.viewer, 'DELETE', path)).toMatchObject({ status: 403 });
    const byAdmin = await as(ADMIN_TOKEN, 'POST', path, {});
    expect((byAdmin.body.alert as AlertView).acknowledgement).toMatchObject({ by: 'admin', comment: null });

    // The resolution's webhook carries the acknowledgement; the episode keeps it as history.
    const resolved = await bringBack('alpha', firing.id);
    expect(resolved.acknowledgement).toMatchObject({ by: 'admin' });
    await waitFor('the resolution webhook', () => webhooks('alpha', 'resolved').length === 1);
    expect(webhooks('alpha', 'resolved')[0]!.alert.acknowledgement).toMatchObject({ by: 'admin' });
    expect(webhooks('alpha', 'firing')[0]!.alert.acknowledgement).toBeNull();
    expect(await as(tokens.ops, 'POST', path, {})).toMatchObject({
      status: 409,
      body: { error: { code: 'alert_not_firing' } },
    });
    expect(await as(tokens.ops, 'DELETE', path)).toMatchObject({ status: 409 });

    // The next episode is a new row: unacknowledged.
    const next = await bringDown('alpha');
    expect(next.id).not.toBe(firing.id);
    expect(next.acknowledgement).toBeNull();
    await bringBack('alpha', next.id);
  });

  it('holds webhooks while a silence lasts, shows it in the API and /metrics, and sends when it ends', async () => {
    const created = await as(tokens.ops, 'POST', '/api/v1/silences', {
      site: sites.beta!.site.id,
      alertname: 'SiteDown',
      ends_at: new Date(Date.now() + 3_600_000).toISOString(),
      comment: 'rack move',
    });
    expect(created.status).toBe(201);
    const silence = created.body.silence as SilenceView;
    expect(silence).toMatchObject({
      state: 'active',
      site: { id: sites.beta!.site.id, name: 'beta' },
      alertname: 'SiteDown',
      created_by: 'ops-alice',
      expired_at: null,
      comment: 'rack move',
    });

    // gamma keeps reporting while beta goes down, then goes down after it: its firing is queued
    // behind beta's, so its webhook proves the sender has passed beta's over.
    const stopGamma = feed(service.url, sites.gamma!.token);
    const beta = await bringDown('beta');
    expect(beta.silenced_by).toEqual([silence.id]);
    await stopGamma();
    await waitFor('gamma firing at the webhook', () => webhooks('gamma', 'firing').length === 1, 15_000);
    expect(webhooks('beta', 'firing')).toEqual([]);
    expect(await listDeliveryAttempts(service.storage.db, beta.id)).toEqual([]);

    const text = await metrics();
    expect(text).toContain('hashwatt_alert_silences_active 1');
    expect(text).toContain(
      'hashwatt_alerts_silenced{alertname="SiteDown",site="beta",severity="critical"} 1',
    );
    expect(text).toContain('hashwatt_alerts_firing{alertname="SiteDown",site="beta",severity="critical"} 1');
    expect(text).not.toContain('hashwatt_alerts_silenced{alertname="SiteDown",site="gamma"');

    // Listed as active to every reader of beta, and by id.
    for (const token of [tokens.viewer, sites.beta!.token, tokens.ops]) {
      const listed = await as(token, 'GET', '/api/v1/silences');
      expect((listed.body.silences as SilenceView[]).map((s) => s.id)).toContain(silence.id);
    }
    expect((await as(tokens.viewer, 'GET', `/api/v1/silences/${silence.id}`)).body.silence).toEqual(silence);

    // Expired early: the held firing goes out, late, as still firing.
    expect(await as(tokens.viewer, 'DELETE', `/api/v1/silences/${silence.id}`)).toMatchObject({
      status: 403,
    });
    const expired = await as(tokens.ops, 'DELETE', `/api/v1/silences/${silence.id}`);
    expect(expired.body.silence).toMatchObject({ state: 'expired', expired_by: 'ops-alice' });
    await waitFor(
      'beta firing at the webhook once the silence ends',
      () => webhooks('beta', 'firing').length === 1,
    );
    expect(webhooks('beta', 'firing')[0]!.alert).toMatchObject({
      id: beta.id,
      state: 'firing',
      silenced_by: [],
    });
    const after = await metrics();
    expect(after).toContain('hashwatt_alert_silences_active 0');
    expect(after).not.toContain('hashwatt_alerts_silenced{');
    const states = async (state: string) =>
      (
        (await as(ADMIN_TOKEN, 'GET', `/api/v1/silences?state=${state}&site=beta`)).body
          .silences as SilenceView[]
      ).map((s) => s.id);
    expect(await states('active')).not.toContain(silence.id);
    expect(await states('expired')).toContain(silence.id);
    expect(await states('all')).toContain(silence.id);

    await Promise.all([bringBack('beta', beta.id), bringBack('gamma', (await firingOf('gamma'))!.id)]);
    await waitFor('beta resolved at the webhook', () => webhooks('beta', 'resolved').length === 1);
  });

  it('never announces an episode that fired and resolved within a silence', async () => {
    const created = await as(ADMIN_TOKEN, 'POST', '/api/v1/silences', {
      site: sites.delta!.site.id,
      alertname: null,
      ends_at: new Date(Date.now() + 3_600_000).toISOString(),
      comment: 'planned outage',
    });
    const silence = created.body.silence as SilenceView;
    expect(silence).toMatchObject({ created_by: 'admin', alertname: null });
    const firing = await bringDown('delta');
    expect(firing.silenced_by).toEqual([silence.id]);
    const resolved = await bringBack('delta', firing.id);
    expect(resolved.silenced_by).toEqual([]);
    expect((await as(ADMIN_TOKEN, 'DELETE', `/api/v1/silences/${silence.id}`)).status).toBe(200);
    // Once the silence no longer holds, the sender drops both announcements instead of sending them.
    const outcomes = await waitFor('the announcements dropped', async () => {
      const rows = await listNotifications(service.storage.db, firing.id);
      return (
        rows.length === 2 && rows.every((r) => r.outcome !== null) && rows.map((r) => [r.event, r.outcome])
      );
    });
    expect(outcomes).toEqual([
      ['firing', 'silenced'],
      ['resolved', 'silenced'],
    ]);
    expect([...webhooks('delta', 'firing'), ...webhooks('delta', 'resolved')]).toEqual([]);
    expect(await listDeliveryAttempts(service.storage.db, firing.id)).toEqual([]);
  });

  it('lets the admin and operators silence what they may read, and nobody else', async () => {
    const until = new Date(Date.now() + 3_600_000).toISOString();
    const body = (site: number | null, extra: Record<string, unknown> = {}) => ({
      site,
      alertname: 'SiteDown',
      ends_at: until,
      comment: 'why',
      ...extra,
    });
    const [epsilon, alpha] = [sites.epsilon!.site.id, sites.alpha!.site.id];
    expect((await as(undefined, 'POST', '/api/v1/silences', body(epsilon))).status).toBe(401);
    expect(await as(tokens.viewer, 'POST', '/api/v1/silences', body(epsilon))).toMatchObject({
      status: 403,
      body: { error: { code: 'forbidden' } },
    });
    expect(await as(sites.epsilon!.token, 'POST', '/api/v1/silences', body(epsilon))).toMatchObject({
      status: 403,
    });
    // A site the operator does not read is answered as one that does not exist.
    const cross = await as(tokens.opsEpsilon, 'POST', '/api/v1/silences', body(alpha));
    const none = await as(tokens.opsEpsilon, 'POST', '/api/v1/silences', body(999_999));
    expect(cross).toMatchObject({ status: 404, body: { error: { code: 'not_found', field: 'site' } } });
    expect((none.body.error as { message: string }).message).toBe('no site with id 999999');
    expect((cross.body.error as { message: string }).message).toBe(`no site with id ${alpha}`);
    // Every site at once takes a token of every site.
    expect(await as(tokens.opsEpsilon, 'POST', '/api/v1/silences', body(null))).toMatchObject({
      status: 403,
      body: { error: { code: 'forbidden' } },
    });

    const own = await as(tokens.opsEpsilon, 'POST', '/api/v1/silences', body(epsilon));
    expect(own.status).toBe(201);
    const fleetWide = await as(tokens.ops, 'POST', '/api/v1/silences', body(null, { alertname: 'GpuIdle' }));
    const ofAlpha = await as(tokens.ops, 'POST', '/api/v1/silences', body(alpha));
    const [ownId, wideId, alphaId] = [own, fleetWide, ofAlpha].map((r) => (r.body.silence as SilenceView).id);

    // A limited operator sees its sites' silences and those of every site, never another site's.
    const seen = (
      (await as(tokens.opsEpsilon, 'GET', '/api/v1/silences')).body.silences as SilenceView[]
    ).map((s) => s.id);
    expect(seen).toContain(ownId);
    expect(seen).toContain(wideId);
    expect(seen).not.toContain(alphaId);
    expect((await as(tokens.opsEpsilon, 'GET', `/api/v1/silences/${alphaId}`)).status).toBe(404);
    expect((await as(tokens.opsEpsilon, 'GET', '/api/v1/silences?site=alpha')).status).toBe(404);
    expect(await as(tokens.opsEpsilon, 'DELETE', `/api/v1/silences/${alphaId}`)).toMatchObject({
      status: 404,
    });
    expect(await as(tokens.opsEpsilon, 'DELETE', `/api/v1/silences/${wideId}`)).toMatchObject({
      status: 403,
    });
    expect(await as(tokens.opsEpsilon, 'DELETE', `/api/v1/silences/${ownId}`)).toMatchObject({
      status: 200,
      body: { silence: { state: 'expired', expired_by: 'ops-eps' } },
    });
    // Expiring what has ended changes nothing.
    const again = await as(tokens.ops, 'DELETE', `/api/v1/silences/${ownId}`);
    expect(again.body.silence).toMatchObject({ expired_by: 'ops-eps' });
    for (const id of [wideId, alphaId])
      expect((await as(ADMIN_TOKEN, 'DELETE', `/api/v1/silences/${id}`)).status).toBe(200);

    // Bad bodies name their field.
    const cases: [Record<string, unknown>, string][] = [
      [body(epsilon, { ends_at: new Date(Date.now() - 1000).toISOString() }), 'ends_at'],
      [body(epsilon, { ends_at: new Date(Date.now() + 91 * 86_400_000).toISOString() }), 'ends_at'],
      [body(epsilon, { ends_at: '2026-12-01 10:00' }), 'ends_at'],
      [body(epsilon, { alertname: 'Broken' }), 'alertname'],
      [body(epsilon, { comment: '   ' }), 'comment'],
      [{ alertname: null, ends_at: until, comment: 'x' }, 'site'],
      [body(epsilon, { starts_at: until }), 'starts_at'],
    ];
    for (const [sent, field] of cases) {
      const r = await as(ADMIN_TOKEN, 'POST', '/api/v1/silences', sent);
      expect([JSON.stringify(sent), r.status, (r.body.error as { field?: string }).field]).toEqual([
        JSON.stringify(sent),
        400,
        field,
      ]);
    }
    expect((await as(ADMIN_TOKEN, 'GET', '/api/v1/silences?state=soon')).status).toBe(400);
    expect((await as(ADMIN_TOKEN, 'GET', '/api/v1/silences/abc')).status).toBe(404);
  });
});
