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
  status: { state: string };
}

interface AmNotification {
  status: 'firing' | 'resolved';
  alerts: { status: string; labels: Record<string, string>; startsAt: string; endsAt: string }[];
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

  const start = () =>
    startTestService(db, {
      env: {
        HASHWATT_ALERT_INTERVAL_S: '1',
        HASHWATT_ALERTMANAGER_URLS: am.url,
        HASHWATT_WEBHOOK_URLS: `${hook.url}/hashwatt`,
      },
      tuning: { alerting: { pollMs: 100 } },
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
  const hookEvents = (event: string) =>
    hook.received.map((r) => r.body as { event: string; alert: AlertView }).filter((b) => b.event === event);

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
});
