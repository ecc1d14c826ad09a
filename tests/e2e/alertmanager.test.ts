import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWebhookReceiver, type WebhookReceiver, waitFor } from '../../src/alerting/testing.ts';
import type { AlertView } from '../../src/alerting/view.ts';
import type { RunningService } from '../../src/service.ts';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import {
  adminRequest,
  asicReading,
  type CreatedSite,
  createSite,
  postReadings,
  startTestService,
} from '../support/service.ts';

const ALERTMANAGER = process.env.HASHWATT_ALERTMANAGER_BIN ?? '/usr/bin/prometheus-alertmanager';
const SITE_DOWN_AFTER_S = 2;

interface Alertmanager {
  url: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The real Alertmanager on a free loopback port, clustering off, notifying `receiverUrl` fast. */
async function startAlertmanager(receiverUrl: string): Promise<Alertmanager> {
  const dir = mkdtempSync(path.join(tmpdir(), 'hashwatt-am-'));
  const config = path.join(dir, 'alertmanager.yml');
  writeFileSync(
    config,
    [
      'route:',
      '  receiver: hook',
      '  group_by: [alertname, site]',
      '  group_wait: 0s',
      '  group_interval: 1s',
      '  repeat_interval: 1h',
      'receivers:',
      '  - name: hook',
      '    webhook_configs:',
      `      - url: ${receiverUrl}`,
      '        send_resolved: true',
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const child: ChildProcess = spawn(
    ALERTMANAGER,
    [
      `--config.file=${config}`,
      `--storage.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor('alertmanager to be ready', async () => (await fetch(`${url}/-/ready`)).ok, 15_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${(error as Error).message}\n${log}`);
  }
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface AmAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  fingerprint: string;
  generatorURL?: string;
  status: { state: string; silencedBy: string[] };
}

interface AmNotification {
  status: 'firing' | 'resolved';
  alerts: {
    status: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    startsAt: string;
    endsAt: string;
  }[];
}

interface AmSilence {
  id: string;
  status: { state: string };
  matchers: { name: string; value: string; isRegex: boolean; isEqual: boolean }[];
  createdBy: string;
  comment: string;
  endsAt: string;
}

/** Keeps a site reporting until stopped. */
function feed(base: string, token: string) {
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      await postReadings(base, token, [asicReading('r1', Date.now())]);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return () => {
    stopped = true;
    return done;
  };
}

describe.skipIf(!existsSync(ALERTMANAGER))('notifications to a real Alertmanager and a webhook', () => {
  let db: TestDatabase;
  let am: Alertmanager;
  let fromAm: WebhookReceiver;
  let hook: WebhookReceiver;
  let service: RunningService;
  let site: CreatedSite;

  const start = (resendMs?: number) =>
    startTestService(db, {
      env: {
        HASHWATT_ALERT_INTERVAL_S: '1',
        HASHWATT_ALERTMANAGER_URLS: am.url,
        HASHWATT_WEBHOOK_URLS: `${hook.url}/hashwatt`,
      },
      tuning: { alerting: { pollMs: 100, ...(resendMs !== undefined && { resendMs }) } },
    });

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    fromAm = await startWebhookReceiver();
    hook = await startWebhookReceiver();
    am = await startAlertmanager(`${fromAm.url}/alertmanager`);
    service = await start();
    // 3.5 kW drawn of 3.8 kW: SiteDown is the only alert this site can raise.
    site = await createSite(service.url, 'zeta', 'mining', 3.8);
    await adminRequest(service.url, 'PATCH', `/api/v1/sites/${site.site.id}`, {
      thresholds: { site_down_after_s: SITE_DOWN_AFTER_S },
    });
  });

  afterAll(async () => {
    await service?.stop();
    await am?.stop();
    await fromAm?.close();
    await hook?.close();
    await db?.dispose();
  });

  const amAlerts = async (): Promise<AmAlert[]> =>
    (await (await fetch(`${am.url}/api/v2/alerts`)).json()) as AmAlert[];
  const amNotifications = (status: string) =>
    fromAm.received.map((r) => r.body as AmNotification).filter((n) => n.status === status);
  const hookEvents = (event: string, site = 'zeta') =>
    hook.received
      .map((r) => r.body as { event: string; alert: AlertView })
      .filter((b) => b.event === event && b.alert.site.name === site);
  const amSilences = async (): Promise<AmSilence[]> =>
    (await (await fetch(`${am.url}/api/v2/silences`)).json()) as AmSilence[];
  /** Alertmanager's notifications about one site's alerts. */
  const amNotificationsOf = (site: string, status: string) =>
    amNotifications(status).filter((n) => n.alerts.some((a) => a.labels.site === site));

  it('announces a firing and its resolution once each, across a restart of hashwatt', async () => {
    const stop = feed(service.url, site.token);
    await new Promise((r) => setTimeout(r, 1_000));
    await stop();

    // Alertmanager has the alert, with hashwatt's labels, and notified its own receiver.
    const [active] = await waitFor('the alert in Alertmanager', async () => {
      const alerts = await amAlerts();
      return alerts.length > 0 && alerts;
    });
    expect(active!.labels).toEqual({
      alertname: 'SiteDown',
      site: 'zeta',
      kind: 'mining',
      severity: 'critical',
    });
    expect(active!.status.state).toBe('active');
    expect(active!.annotations.summary).toBe('Site zeta is down');
    expect(active!.generatorURL).toBe(`${service.url}/api/v1/sites/${site.site.id}/alerts`);
    // Firing alerts are sent with endsAt four re-send intervals (4 min) ahead.
    expect(Date.parse(active!.endsAt) - Date.now()).toBeGreaterThan(200_000);
    await waitFor('Alertmanager to notify', () => amNotifications('firing').length === 1);
    await waitFor('the hashwatt webhook', () => hookEvents('firing').length === 1);
    const [firing] = hookEvents('firing');
    expect(firing!.alert).toMatchObject({ alertname: 'SiteDown', state: 'firing', site: { name: 'zeta' } });
    expect(Date.parse(active!.startsAt)).toBe(Date.parse(firing!.alert.started_at));

    // Restart hashwatt on the same database.
    await service.stop();
    service = await start();
    await new Promise((r) => setTimeout(r, SITE_DOWN_AFTER_S * 1000 + 2_500));
    const firingNow = (await (
      await adminRequest(service.url, 'GET', '/api/v1/alerts?state=firing')
    ).json()) as {
      alerts: AlertView[];
    };
    const [still] = firingNow.alerts;
    expect(still).toMatchObject({ id: firing!.alert.id, fired_at: firing!.alert.fired_at });
    // The new process re-sent it to Alertmanager (same alert, same start) and told nobody it is new.
    const [again] = await amAlerts();
    expect(again).toMatchObject({ fingerprint: active!.fingerprint, startsAt: active!.startsAt });
    expect(Date.parse(again!.endsAt)).toBeGreaterThan(Date.parse(active!.endsAt));
    expect(hookEvents('firing')).toHaveLength(1);
    expect(amNotifications('firing')).toHaveLength(1);

    // The site comes back: both receivers hear of the resolution, Alertmanager drops the alert.
    const stopAgain = feed(service.url, site.token);
    await waitFor('the resolution at the webhook', () => hookEvents('resolved').length === 1, 15_000);
    await waitFor('Alertmanager to resolve the alert', async () => (await amAlerts()).length === 0, 5_000);
    await waitFor(
      'Alertmanager to notify the resolution',
      () => amNotifications('resolved').length === 1,
      5_000,
    );
    await stopAgain();
    const [resolved] = hookEvents('resolved');
    expect(resolved!.alert).toMatchObject({ id: firing!.alert.id, state: 'resolved' });
    const [amResolved] = amNotifications('resolved');
    expect(Date.parse(amResolved!.alerts[0]!.endsAt)).toBe(Date.parse(resolved!.alert.resolved_at!));
    expect(hookEvents('firing')).toHaveLength(1);
    expect(amNotifications('firing')).toHaveLength(1);
  });

  it('mirrors a silence into Alertmanager, which suppresses the alert; shows the acknowledgement; notifies once it is expired', async () => {
    // Re-sends every second, so an acknowledgement reaches Alertmanager within the test.
    await service.stop();
    service = await start(1_000);
    const eta = await createSite(service.url, 'eta', 'mining', 3.8);
    await adminRequest(service.url, 'PATCH', `/api/v1/sites/${eta.site.id}`, {
      thresholds: { site_down_after_s: SITE_DOWN_AFTER_S },
    });
    const tokenAnswer = await adminRequest(service.url, 'POST', '/api/v1/tokens', {
      name: 'ops-carol',
      role: 'operator',
    });
    const { token: operator } = (await tokenAnswer.json()) as { token: string };
    const asOperator = (method: string, path: string, body?: unknown) =>
      fetch(service.url + path, {
        method,
        headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });

    const created = await asOperator('POST', '/api/v1/silences', {
      site: eta.site.id,
      alertname: 'SiteDown',
      ends_at: new Date(Date.now() + 3_600_000).toISOString(),
      comment: 'replacing the uplink',
    });
    expect(created.status).toBe(201);
    const { silence } = (await created.json()) as { silence: { id: number } };

    // Alertmanager gets a silence of its own, matching site and alertname, ending with hashwatt's.
    const mirror = await waitFor('the silence in Alertmanager', async () =>
      (await amSilences()).find(
        (s) => s.status.state === 'active' && s.comment.startsWith('replacing the uplink'),
      ),
    );
    expect(mirror.matchers).toEqual(
      expect.arrayContaining([
        { name: 'site', value: 'eta', isRegex: false, isEqual: true },
        { name: 'alertname', value: 'SiteDown', isRegex: false, isEqual: true },
      ]),
    );
    expect(mirror.createdBy).toBe('ops-carol (hashwatt)');
    expect(mirror.comment).toMatch(/\[hashwatt:[0-9a-f-]{36}\]$/);

    const stop = feed(service.url, eta.token);
    await new Promise((r) => setTimeout(r, 1_000));
    await stop();
    const firing = await waitFor('SiteDown firing at eta', async () => {
      const answer = (await (
        await adminRequest(service.url, 'GET', '/api/v1/alerts?state=firing&site=eta')
      ).json()) as {
        alerts: AlertView[];
      };
      return answer.alerts[0];
    });
    expect(firing.silenced_by).toEqual([silence.id]);
    // hashwatt keeps Alertmanager told: the alert is there, suppressed by the mirrored silence.
    const suppressed = await waitFor('the alert suppressed in Alertmanager', async () =>
      (await amAlerts()).find((a) => a.labels.site === 'eta' && a.status.state === 'suppressed'),
    );
    expect(suppressed.status.silencedBy).toEqual([mirror.id]);

    // An acknowledgement reaches Alertmanager's annotations with the next re-send.
    const acked = await asOperator('POST', `/api/v1/alerts/${firing.id}/ack`, { comment: 'on site' });
    expect(acked.status).toBe(200);
    const withAck = await waitFor('the acknowledgement in Alertmanager', async () =>
      (await amAlerts()).find(
        (a) => a.labels.site === 'eta' && a.annotations.acknowledged_by === 'ops-carol',
      ),
    );
    expect(withAck.annotations).toMatchObject({ acknowledgement_comment: 'on site' });
    expect(withAck.status.state).toBe('suppressed');
    // Two more re-sends after that, each followed in Alertmanager by a group interval (1 s) that would
    // have notified an alert that is not silenced: nobody was told.
    const ackedNotifiedAt = Date.parse((await firingNow('eta'))!.last_notified_at!);
    await waitFor('two more re-sends', async () => {
      const now = await firingNow('eta');
      return now?.last_notified_at && Date.parse(now.last_notified_at) > ackedNotifiedAt + 1_500;
    });
    expect(amNotificationsOf('eta', 'firing')).toEqual([]);
    expect(hookEvents('firing', 'eta')).toEqual([]);

    // Expired early: the mirror is expired too; Alertmanager notifies, as does the hashwatt webhook.
    expect((await asOperator('DELETE', `/api/v1/silences/${silence.id}`)).status).toBe(200);
    await waitFor('the mirrored silence expired', async () =>
      (await amSilences()).some((s) => s.id === mirror.id && s.status.state === 'expired'),
    );
    await waitFor(
      'Alertmanager to notify eta',
      () => amNotificationsOf('eta', 'firing').length === 1,
      10_000,
    );
    const [notified] = amNotificationsOf('eta', 'firing');
    expect(notified!.alerts.find((a) => a.labels.site === 'eta')!.annotations.acknowledged_by).toBe(
      'ops-carol',
    );
    await waitFor('the hashwatt webhook for eta', () => hookEvents('firing', 'eta').length === 1);
    expect(hookEvents('firing', 'eta')[0]!.alert.acknowledgement).toMatchObject({
      by: 'ops-carol',
      comment: 'on site',
    });

    const back = feed(service.url, eta.token);
    await waitFor('eta resolved at the webhook', () => hookEvents('resolved', 'eta').length === 1, 15_000);
    await waitFor(
      'Alertmanager to notify the resolution',
      () => amNotificationsOf('eta', 'resolved').length === 1,
    );
    await back();

    // A silence of every site and every alert: Alertmanager takes it as hashwatt's six alert names.
    const everything = await adminRequest(service.url, 'POST', '/api/v1/silences', {
      site: null,
      alertname: null,
      ends_at: new Date(Date.now() + 600_000).toISOString(),
      comment: 'fleet-wide freeze',
    });
    const { silence: wide } = (await everything.json()) as { silence: { id: number } };
    const wideMirror = await waitFor('the fleet-wide silence in Alertmanager', async () =>
      (await amSilences()).find(
        (s) => s.status.state === 'active' && s.comment.startsWith('fleet-wide freeze'),
      ),
    );
    expect(wideMirror.matchers).toEqual([
      expect.objectContaining({
        name: 'alertname',
        isRegex: true,
        value: expect.stringContaining('SiteDown'),
      }),
    ]);
    await adminRequest(service.url, 'DELETE', `/api/v1/silences/${wide.id}`);
    await waitFor('the fleet-wide mirror expired', async () =>
      (await amSilences()).some((s) => s.id === wideMirror.id && s.status.state === 'expired'),
    );
  });

  async function firingNow(site: string): Promise<AlertView | undefined> {
    const answer = (await (
      await adminRequest(service.url, 'GET', `/api/v1/alerts?state=firing&site=${site}`)
    ).json()) as {
      alerts: AlertView[];
    };
    return answer.alerts[0];
  }
});
