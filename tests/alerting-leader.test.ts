import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALERT_LOCK } from '../src/alerting/index.ts';
import { startWebhookReceiver, type WebhookReceiver, waitFor } from '../src/alerting/testing.ts';
import type { AlertView } from '../src/alerting/view.ts';
import type { RunningService } from '../src/service.ts';
import {
  type AlertTables,
  LeadershipLostError,
  listDeliveryAttempts,
  writeAlertChanges,
} from '../src/storage/alerts.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import {
  adminRequest,
  asicReading,
  type CreatedSite,
  createSite,
  postReadings,
  startTestService,
} from './support/service.ts';
import { TcpProxy } from './support/tcp-proxy.ts';

const env = (extra: Record<string, string> = {}) => ({ HASHWATT_ALERT_INTERVAL_S: '1', ...extra });

async function downSite(service: RunningService, name: string): Promise<CreatedSite> {
  // 3.5 kW drawn of 3.8 kW: no surplus to speak of, so SiteDown is the only alert.
  const site = await createSite(service.url, name, 'mining', 3.8);
  await adminRequest(service.url, 'PATCH', `/api/v1/sites/${site.site.id}`, {
    thresholds: { site_down_after_s: 1 },
  });
  await postReadings(service.url, site.token, [asicReading('r1', Date.now())]);
  return site;
}

/** Keeps a site reporting until stopped. */
function feed(base: string, token: string) {
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      await postReadings(base, token, [asicReading('r1', Date.now())]);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return () => {
    stopped = true;
    return done;
  };
}

const eventsOf = (hook: WebhookReceiver, event: string) =>
  hook.received.filter((r) => (r.body as { event: string }).event === event);

describe('leader election on postgres', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let hook: WebhookReceiver;
  const services: RunningService[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    proxy = new TcpProxy('127.0.0.1', Number(new URL(db.url!).port || 5432));
    const port = await proxy.listen();
    hook = await startWebhookReceiver();
    const proxied = new URL(db.url!);
    proxied.port = String(port);
    // Replica A reaches the database through a proxy the test can cut, as if its host died.
    const webhook = { HASHWATT_WEBHOOK_URLS: hook.url };
    services.push(await startTestService(db, { databaseUrl: proxied.toString(), env: env(webhook) }));
    await waitFor('replica A to lead', () => services[0]!.alerting.isLeader);
    services.push(await startTestService(db, { env: env(webhook) }));
  });

  afterAll(async () => {
    for (const s of services) await s.stop();
    await proxy?.close();
    await hook?.close();
    await db?.dispose();
  });

  it('lets exactly one replica evaluate, and another take over when the holder dies', async () => {
    const [a, b] = services as [RunningService, RunningService];
    await new Promise((r) => setTimeout(r, 2_500));
    expect([a.alerting.isLeader, b.alerting.isLeader]).toEqual([true, false]);

    const site = await downSite(b, 'gamma');
    await waitFor('SiteDown firing', () => eventsOf(hook, 'firing').length === 1);
    // Delivery is at least once: were A cut off between the POST and recording it, B would send it
    // again (with the same notification id). Cut only once A has recorded it.
    await waitFor('the delivery to be recorded', async () =>
      (await listDeliveryAttempts(b.storage.db)).some((x) => x.outcome === 'delivered'),
    );
    expect(a.alerting.firingAlerts()).toHaveLength(1);

    // A's host dies: its sessions end, Postgres releases the lock, B takes it at its next try.
    const cutAt = Date.now();
    proxy.cut();
    await waitFor('replica B to take over', () => b.alerting.isLeader, 5_000, 50);
    expect(Date.now() - cutAt).toBeLessThan(2_500);
    await waitFor('replica A to step down', () => !a.alerting.isLeader, 5_000, 50);
    expect(b.alerting.firingAlerts().map((x) => x.labels.alertname)).toEqual(['SiteDown']);

    // A comes back: the lock is B's now; A stays a follower and reports the alert from the database.
    proxy.restore();
    await new Promise((r) => setTimeout(r, 2_500));
    expect([a.alerting.isLeader, b.alerting.isLeader]).toEqual([false, true]);
    const metrics = await (await fetch(`${a.url}/metrics`)).text();
    expect(metrics).toContain(
      'hashwatt_alerts_firing{alertname="SiteDown",site="gamma",severity="critical"} 1',
    );
    expect(metrics).toMatch(/hashwatt_alerting_leader 0/);
    // The takeover announced nothing new.
    expect(eventsOf(hook, 'firing')).toHaveLength(1);

    const stop = feed(b.url, site.token);
    await waitFor(
      'the resolution from the new leader',
      () => eventsOf(hook, 'resolved').length === 1,
      10_000,
    );
    await stop();
    const history = (await (
      await adminRequest(b.url, 'GET', `/api/v1/sites/${site.site.id}/alerts`)
    ).json()) as {
      alerts: AlertView[];
    };
    expect(history.alerts.map((x) => [x.alertname, x.state])).toEqual([['SiteDown', 'resolved']]);
    expect(eventsOf(hook, 'firing')).toHaveLength(1);
  });

  it('refuses a write whose fence the lock no longer proves', async () => {
    const storage = await db.open();
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      const write = { receivers: [], evaluatedAtMs: Date.now() };
      // Someone else (B) holds the lock: a fence naming this session is refused.
      const { rows } = await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const stale = { ...ALERT_LOCK, pid: rows[0]!.pid };
      await expect(
        writeAlertChanges(storage.db, [{ op: 'delete', id: 1 }], { ...write, fence: stale }),
      ).rejects.toThrow(LeadershipLostError);
      const { rows: owner } = await holder.query<{ pid: number }>(
        `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::int4::oid AND objid = $2::int4::oid
           AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        [ALERT_LOCK.classId, ALERT_LOCK.objId],
      );
      expect(owner).toHaveLength(1);
      await expect(
        writeAlertChanges(storage.db, [], { ...write, fence: { ...ALERT_LOCK, pid: owner[0]!.pid } }),
      ).resolves.toEqual([]);
    } finally {
      await holder.end();
      await storage.close();
    }
  });
});

describe('webhook delivery on postgres', () => {
  let db: TestDatabase;
  let service: RunningService;
  let flaky: WebhookReceiver;
  let rejecting: WebhookReceiver;
  let deadUrl: string;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    flaky = await startWebhookReceiver();
    rejecting = await startWebhookReceiver();
    // A port nobody listens on: every attempt is refused.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    deadUrl = `http://127.0.0.1:${(probe.address() as net.AddressInfo).port}/gone`;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    service = await startTestService(db, {
      env: env({ HASHWATT_WEBHOOK_URLS: [flaky.url, rejecting.url, deadUrl].join(',') }),
      tuning: { alerting: { retry: { baseMs: 200, maxAttempts: 4 }, pollMs: 50 } },
    });
  });

  afterAll(async () => {
    await service?.stop();
    await flaky?.close();
    await rejecting?.close();
    await db?.dispose();
  });

  it('retries with exponential backoff, gives up on a 4xx and after bounded attempts, and records every attempt', async () => {
    flaky.failNext(2, 503);
    rejecting.failNext(100, 400);
    await downSite(service, 'delta');
    await waitFor('the flaky receiver to get it', () => flaky.received.some((r) => r.status === 200), 10_000);
    const attempts = await waitFor(
      'the dead receiver to be abandoned',
      async () => {
        const all = await listDeliveryAttempts(service.storage.db);
        return all.filter((x) => x.receiver_origin === new URL(deadUrl).origin).length === 4 && all;
      },
      10_000,
    );
    const byOrigin = (origin: string) =>
      attempts
        .filter((x) => x.receiver_origin === origin)
        .map((x) => ({
          attempt: x.attempt,
          outcome: x.outcome,
          status: x.status_code,
          at: x.attempted_at.getTime(),
        }));

    const f = byOrigin(flaky.url);
    expect(f.map((x) => [x.attempt, x.outcome, x.status])).toEqual([
      [1, 'failed', 503],
      [2, 'failed', 503],
      [3, 'delivered', 200],
    ]);
    // 200 ms, then 400 ms: the backoff doubles.
    expect(f[1]!.at - f[0]!.at).toBeGreaterThanOrEqual(200);
    expect(f[2]!.at - f[1]!.at).toBeGreaterThanOrEqual(400);
    // Every retry carries the same notification id, so a receiver can deduplicate.
    const ids = new Set(flaky.received.map((r) => r.headers['x-hashwatt-notification-id']));
    expect(ids.size).toBe(1);

    expect(byOrigin(rejecting.url).map((x) => [x.outcome, x.status])).toEqual([['rejected', 400]]);
    const dead = byOrigin(new URL(deadUrl).origin);
    expect(dead.map((x) => [x.attempt, x.outcome, x.status])).toEqual([
      [1, 'failed', null],
      [2, 'failed', null],
      [3, 'failed', null],
      [4, 'failed', null],
    ]);
    expect(dead[3]!.at - dead[2]!.at).toBeGreaterThanOrEqual(800);

    const notifications = await service.storage.db
      .withTables<AlertTables>()
      .selectFrom('alert_notifications')
      .select(['receiver_origin', 'outcome', 'attempts'])
      .orderBy('id')
      .execute();
    expect(notifications).toEqual([
      { receiver_origin: flaky.url, outcome: 'delivered', attempts: 3 },
      { receiver_origin: rejecting.url, outcome: 'rejected', attempts: 1 },
      { receiver_origin: new URL(deadUrl).origin, outcome: 'abandoned', attempts: 4 },
    ]);
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(metrics).toContain('hashwatt_alert_notifications_total{receiver="webhook",outcome="delivered"} 1');
    expect(metrics).toContain('hashwatt_alert_notifications_total{receiver="webhook",outcome="rejected"} 1');
    expect(metrics).toContain('hashwatt_alert_notifications_total{receiver="webhook",outcome="failed"} 6');
  });
});
