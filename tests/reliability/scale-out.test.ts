/**
 * Scale-out: three hashwatt replicas behind HAProxy, on a private Postgres primary with a streaming
 * standby (pg_basebackup) that every replica reads history from. Simulated agents push through
 * HAProxy over HTTP and WebSocket while the scenario kills the replica holding the job lease (twice,
 * each a different replica, each restarted), purges a site on one replica while writers post to
 * it through the others, and rotates a site's token while its WebSocket is open on another replica.
 *
 * Judged: the ledger (generated = acknowledged = stored, nothing stored twice); nothing of the
 * purged site left; the old token refused on every replica and its open WebSocket closed within
 * 2 s; the replicas' fleet gauges equal; SiteDown kept firing and resolving across both failovers,
 * every transition announced to the webhook under an id of its own; the standby's series equal
 * the primary's. See docs/reliability.md, "9. Scale-out".
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { adminRequest, createSite } from '../support/service.ts';
import { type AgentRun, rejectionCodes, retryReasons, startMixedLoad, totals } from './support/agents.ts';
import { expectNoCrash, expectNothingLost } from './support/checks.ts';
import { Haproxy } from './support/haproxy.ts';
import { stopAndReconcile, summaryLine } from './support/ledger.ts';
import { PrivatePostgres } from './support/private-postgres.ts';
import { HashwattProcess, sleep, waitFor } from './support/process.ts';
import {
  type GaugeAgreement,
  type GaugeSampling,
  isLeader,
  LeaderWatch,
  sampleGaugeAgreement,
  scrapeMetrics,
  WebhookReceiver,
  waitForGaugeAgreement,
} from './support/replicas.ts';

const REPLICAS = 3;
/** The open-loop load sites' rate: with the demo's ~300/s, what 3 replicas, 2 Postgres and HAProxy share on 2 cores. */
const LOAD_RATE_PER_S = 2_000;
/** The flapping site's threshold: short, so SiteDown fires and resolves several times in a minute. */
const SITE_DOWN_AFTER_S = 2;
/** The flapping site reports for FLAP_ON_MS, is silent for FLAP_OFF_MS, SILENCES times, then reports on. */
const FLAP_ON_MS = 9_000;
const FLAP_OFF_MS = 8_000;
const SILENCES = 3;
const FLAP_PERIOD_MS = FLAP_ON_MS + FLAP_OFF_MS;
/** When silence k begins, from the start of the load. */
const silenceStartMs = (k: number) => FLAP_ON_MS + k * FLAP_PERIOD_MS;
/** First kill: inside the first silence, so SiteDown fires around the failover. */
const FIRST_KILL_AT_MS = silenceStartMs(0) + 3_000;
/** Second kill: just after the second silence, while its SiteDown waits out the resolve hold. */
const SECOND_KILL_AT_MS = silenceStartMs(1) + FLAP_OFF_MS + 3_000;
/** The agents stop once the last silence is over; the flapping site reports on until its alert resolves. */
const LOAD_ENDS_AT_MS = silenceStartMs(SILENCES - 1) + FLAP_OFF_MS + 1_000;
/** A killed replica comes back this long after its kill, on the same port. */
const RESTART_AFTER_MS = 3_000;
/** How soon a rotated token must be refused everywhere, and its open WebSocket closed. */
const TOKEN_REVOCATION_MS = 2_000;
/** How long simultaneous scrapes may take to agree (a snapshot changing between two of them). */
const GAUGE_AGREEMENT_MS = 5_000;

/** Purge writers: batches to the purged site through the replicas that do not purge it. */
const PURGE_WRITERS = 4;
const PURGE_BATCH_READINGS = 50;
const PURGE_NEW_DEVICE_EVERY = 3;
const PURGE_BATCHES_BEFORE = 30;
const PURGE_ANSWERS_AFTER = 3;

const MIN = 60_000;

interface Silence {
  /** The flapping site's last acknowledged reading before the silence (epoch ms). */
  lastBeforeMs: number;
  /** Its first acknowledged reading after (epoch ms); undefined while silent. */
  firstAfterMs: number | undefined;
}

/** A site whose reports stop and resume on a schedule (HTTP through HAProxy, every 250 ms while on). */
function startFlapper(url: string, token: string, loadStartMs: number) {
  const silences: Silence[] = [];
  const answers = new Map<string, number>();
  let lastAckMs = 0;
  let stopped = false;
  const silentNow = () => {
    const t = Date.now() - loadStartMs;
    const k = Math.floor(t / FLAP_PERIOD_MS);
    return k < SILENCES && t % FLAP_PERIOD_MS >= FLAP_ON_MS;
  };
  const loop = (async () => {
    while (!stopped) {
      if (silentNow()) {
        if (silences.at(-1)?.firstAfterMs !== undefined || silences.length === 0) {
          silences.push({ lastBeforeMs: lastAckMs, firstAfterMs: undefined });
        }
      } else {
        const ts = Date.now();
        let key: string;
        try {
          const response = await fetch(`${url}/api/v1/ingest`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({
              readings: ['f-1', 'f-2'].map((device) => ({
                device,
                kind: 'asic',
                ts,
                power_w: 3_000,
                hashrate_ths: 100,
              })),
            }),
            signal: AbortSignal.timeout(5_000),
          });
          await response.arrayBuffer();
          key = `HTTP ${response.status}`;
          if (response.status === 200) {
            lastAckMs = Date.now();
            const open = silences.at(-1);
            if (open && open.firstAfterMs === undefined) open.firstAfterMs = lastAckMs;
          }
        } catch (error) {
          key = `network error: ${(error as Error).message}`;
        }
        answers.set(key, (answers.get(key) ?? 0) + 1);
      }
      await sleep(250);
    }
  })();
  return {
    silences,
    answers,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

/** The status a WebSocket upgrade gets: 101 when it opens (then closed again), else the HTTP status. */
function upgradeStatus(url: string, token: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/stream`, {
      headers: { authorization: `Bearer ${token}` },
    });
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0);
      response.resume();
      ws.terminate();
    });
    // A refused upgrade aborted by terminate() reports an error too; the first answer wins.
    ws.on('error', () => resolve(0));
  });
}

async function ingestStatus(url: string, token: string, device: string): Promise<number> {
  try {
    const response = await fetch(`${url}/api/v1/ingest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ readings: [{ device, kind: 'asic', ts: Date.now(), power_w: 1 }] }),
      signal: AbortSignal.timeout(5_000),
    });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

describe('reliability: three replicas behind HAProxy, a standby, failovers, purge and token rotation', () => {
  let primary: PrivatePostgres | undefined;
  let standby: PrivatePostgres | undefined;
  let webhook: WebhookReceiver | undefined;
  let proxy: Haproxy | undefined;
  let reference: HashwattProcess | undefined;
  const replicas: HashwattProcess[] = [];

  beforeAll(async () => {
    primary = await PrivatePostgres.create();
    standby = await primary.createStandby();
    webhook = await WebhookReceiver.start();
    const env = {
      HASHWATT_READ_DATABASE_URL: standby.url(),
      HASHWATT_WEBHOOK_URLS: webhook.url,
      HASHWATT_ALERT_INTERVAL_S: '1',
      // Rollups kept current, so the purge has every tier of the site to remove.
      HASHWATT_ROLLUP_INTERVAL_S: '1',
      HASHWATT_SHUTDOWN_TIMEOUT_S: '5',
    };
    // The first one migrates; the others start on the migrated database together.
    replicas.push(await HashwattProcess.start(primary.url(), env));
    replicas.push(
      ...(await Promise.all(
        Array.from({ length: REPLICAS - 1 }, () => HashwattProcess.start(primary!.url(), env)),
      )),
    );
    proxy = await Haproxy.start(replicas.map((r, i) => ({ name: `r${i}`, port: r.port })));
  }, 120_000);

  afterAll(async () => {
    await proxy?.stop();
    await Promise.all([...replicas, reference].map((r) => r?.stop()));
    await webhook?.close();
    await standby?.remove();
    await primary?.remove();
  });

  it('loses nothing, purges, revokes, agrees and keeps alerting across two failovers', async () => {
    const lb = proxy!;
    const db = new pg.Client({ connectionString: primary!.url() });
    await db.connect();
    const running = () => replicas.filter((r) => r.running);
    const leaderIndex = async () => {
      for (const [i, r] of replicas.entries()) if (r.running && (await isLeader(r.url))) return i;
      return undefined;
    };

    // Sites of the scenario's own, made through HAProxy like any admin call.
    const flapping = await createSite(lb.url, 'flapping', 'mining', 100);
    const patched = await adminRequest(lb.url, 'PATCH', `/api/v1/sites/${flapping.site.id}`, {
      thresholds: { site_down_after_s: SITE_DOWN_AFTER_S },
    });
    expect(patched.status, await patched.clone().text()).toBe(200);
    const purged = await createSite(lb.url, 'purged', 'mining', 100_000);
    const rotated = await createSite(lb.url, 'rotated', 'mining', 1_000);
    // It reports once, early: it must not go down (default 60 s) before the scenario ends.
    const quietRotated = await adminRequest(lb.url, 'PATCH', `/api/v1/sites/${rotated.site.id}`, {
      thresholds: { site_down_after_s: 3_600 },
    });
    expect(quietRotated.status).toBe(200);

    const leaderWatch = new LeaderWatch(replicas);
    const loadStartMs = Date.now();
    const at = (ms: number) => sleep(Math.max(0, loadStartMs + ms - Date.now()));
    const runs: AgentRun[] = await startMixedLoad({ url: lb.url, loadRatePerS: LOAD_RATE_PER_S });
    const flapper = startFlapper(lb.url, flapping.token, loadStartMs);
    let abandoned = false;
    const background: Promise<unknown>[] = [];

    const kills: {
      replica: number;
      atMs: number;
      /** Agent WebSockets the victim held (through HAProxy): they are cut by the kill. */
      streams: number | undefined;
      /** Readings/s the victim stored just before: it carried its share of the load when it died. */
      ingestingPerS: number;
      takeoverMs: number | undefined;
      newLeader?: number;
    }[] = [];
    /** SIGKILLs the replica holding the job lease, waits for another to take it, restarts it on its port. */
    const killLeader = async () => {
      const victim = await leaderIndex();
      expect(victim, 'a replica holds the job lease').toBeDefined();
      const stored = (m: Map<string, number>) =>
        [...m].reduce(
          (n, [series, v]) => (series.startsWith('hashwatt_readings_ingested_total{') ? n + v : n),
          0,
        );
      const before = await scrapeMetrics(replicas[victim!]!.url);
      await sleep(500);
      const last = await scrapeMetrics(replicas[victim!]!.url);
      const streams = last.get('hashwatt_websocket_connections');
      const ingestingPerS = Math.round((stored(last) - stored(before)) * 2);
      const atMs = Date.now();
      const exit = await replicas[victim!]!.signal('SIGKILL');
      expect(exit.signal).toBe('SIGKILL');
      let newLeader: number | undefined;
      const tookOver = await waitFor(
        async () => {
          newLeader = await leaderIndex();
          return newLeader !== undefined;
        },
        10_000,
        50,
      );
      kills.push({
        replica: victim!,
        atMs,
        streams,
        ingestingPerS,
        takeoverMs: tookOver ? Date.now() - atMs : undefined,
        ...(newLeader !== undefined && { newLeader }),
      });
      await sleep(Math.max(0, atMs + RESTART_AFTER_MS - Date.now()));
      await replicas[victim!]!.start();
      expect(await lb.waitForServer(`r${victim}`, 'UP', 10_000), lb.logTail()).toBe(true);
    };

    // Purge writers and the purge, the token rotation: measured here, asserted at the end.
    const purgeAnswers = new Map<string, number>();
    let purgeAcked = 0;
    let purgeRollupsBefore: Record<string, number> = {};
    let purgeLeftRightAfter: Record<string, number> = {};
    let purgeStatus = 0;
    let purger = -1;
    const rotation = {
      wsReplica: -1,
      rotatedVia: -1,
      acked: false,
      refusedEverywhereMs: undefined as number | undefined,
      oldTokenAnswers: {} as Record<string, number>,
      newTokenAnswers: [] as number[],
      wsClosedMs: undefined as number | undefined,
      wsCloseCode: undefined as number | undefined,
      frameAfterWindow: '' as string,
    };
    let underLoad: GaugeAgreement | undefined;
    let underLoadShare: GaugeSampling = {
      rounds: 0,
      agreed: 0,
      sameSnapshotPairs: 0,
      sameSnapshotDiffering: 0,
      examples: [],
    };

    try {
      // --- 1. Kill the lease holder during the first silence.
      await at(FIRST_KILL_AT_MS);
      await killLeader();

      // --- 2. Purge a site on one replica while writers post to it through the others.
      purger = replicas.findIndex((_, i) => i !== kills[0]!.replica);
      const writerTargets = replicas.filter((_, i) => i !== purger);
      const t0 = Math.floor((Date.now() - 2 * 3_600_000) / MIN) * MIN;
      let purgedAtMs: number | undefined;
      const answersAfter = new Array<number>(PURGE_WRITERS).fill(0);
      const count = (key: string) => purgeAnswers.set(key, (purgeAnswers.get(key) ?? 0) + 1);
      const writer = async (w: number) => {
        for (let batch = 0; !abandoned && answersAfter[w]! < PURGE_ANSWERS_AFTER; batch++) {
          const target = writerTargets[(w + batch) % writerTargets.length]!;
          const started = Date.now();
          const device = `w${w}-d${Math.floor(batch / PURGE_NEW_DEVICE_EVERY)}`;
          const readings = Array.from({ length: PURGE_BATCH_READINGS }, (_, i) => ({
            device,
            kind: 'asic',
            // Two hours back, spread over minutes: closed minutes and hours the rollup job builds.
            ts: t0 + (batch * PURGE_BATCH_READINGS + i) * 1_000,
            power_w: 3_500,
            hashrate_ths: 200,
          }));
          try {
            const response = await fetch(`${target.url}/api/v1/ingest`, {
              method: 'POST',
              headers: { authorization: `Bearer ${purged.token}`, 'content-type': 'application/json' },
              body: JSON.stringify({ readings }),
              signal: AbortSignal.timeout(10_000),
            });
            await response.arrayBuffer();
            count(`HTTP ${response.status}`);
            if (response.status === 200) purgeAcked++;
          } catch (error) {
            count(`network error: ${(error as Error).message}`);
          }
          if (purgedAtMs !== undefined && started >= purgedAtMs) answersAfter[w]!++;
          await sleep(100);
        }
      };
      const writers = Array.from({ length: PURGE_WRITERS }, (_, w) => writer(w));
      background.push(...writers);
      const rollupRows = async () => {
        const { rows } = await db.query<Record<string, number>>(
          `SELECT (SELECT count(*)::int FROM rollup_site_1m WHERE site_id = $1) AS site_1m,
                  (SELECT count(*)::int FROM rollup_site_1h WHERE site_id = $1) AS site_1h,
                  (SELECT count(*)::int FROM rollup_device_1h WHERE site_id = $1) AS device_1h`,
          [purged.site.id],
        );
        return rows[0]!;
      };
      await waitFor(
        async () => {
          if (purgeAcked < PURGE_BATCHES_BEFORE) return false;
          purgeRollupsBefore = await rollupRows();
          return Object.values(purgeRollupsBefore).every((n) => n > 0);
        },
        20_000,
        200,
      );
      const purge = await adminRequest(
        replicas[purger]!.url,
        'DELETE',
        `/api/v1/sites/${purged.site.id}?purge=true`,
      );
      purgedAtMs = Date.now();
      purgeStatus = purge.status;
      purgeLeftRightAfter = await leftOf(db, purged.site.id);
      await Promise.all(writers);

      // --- 3. Rotate a token whose WebSocket is open on another replica (its own port, not HAProxy).
      rotation.wsReplica = (purger + 1) % REPLICAS;
      rotation.rotatedVia = (purger + 2) % REPLICAS;
      const wsTarget = replicas[rotation.wsReplica]!;
      const ws = new WebSocket(`${wsTarget.url.replace(/^http/, 'ws')}/api/v1/stream`, {
        headers: { authorization: `Bearer ${rotated.token}` },
      });
      const replies: { seq?: number; ack?: number; error?: { code: string } }[] = [];
      ws.on('error', () => {}); // a reset after the open: the close event says what happened
      ws.on('message', (data) => replies.push(JSON.parse(String(data))));
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      ws.send(
        JSON.stringify({ seq: 0, readings: [{ device: 'r-1', kind: 'asic', ts: Date.now(), power_w: 10 }] }),
      );
      rotation.acked = await waitFor(() => replies.some((r) => r.ack === 0), 5_000, 20);
      const rotatedResponse = await adminRequest(
        replicas[rotation.rotatedVia]!.url,
        'POST',
        `/api/v1/sites/${rotated.site.id}/token`,
      );
      const rotatedAt = Date.now();
      expect(rotatedResponse.status).toBe(200);
      const { token: newToken } = (await rotatedResponse.json()) as { token: string };
      const closedInTime = Promise.race([closed, sleep(TOKEN_REVOCATION_MS + 250).then(() => undefined)]);
      // Every live replica, on its own port: the old token over HTTP and as a WebSocket upgrade.
      const refused = await waitFor(
        async () => {
          const answers = await Promise.all(
            running().flatMap((r) => [
              ingestStatus(r.url, rotated.token, 'r-1').then((s) => `HTTP ${s}`),
              upgradeStatus(r.url, rotated.token).then((s) => `upgrade ${s}`),
            ]),
          );
          rotation.oldTokenAnswers = {};
          for (const a of answers) rotation.oldTokenAnswers[a] = (rotation.oldTokenAnswers[a] ?? 0) + 1;
          return answers.every((a) => a === 'HTTP 401' || a === 'upgrade 401');
        },
        5_000,
        50,
      );
      if (refused) rotation.refusedEverywhereMs = Date.now() - rotatedAt;
      rotation.newTokenAnswers = await Promise.all(
        running().map((r) => ingestStatus(r.url, newToken, 'r-1')),
      );
      const code = await closedInTime;
      if (code !== undefined) {
        rotation.wsClosedMs = Date.now() - rotatedAt;
        rotation.wsCloseCode = code;
      } else {
        // Still open after the window: what its next frame gets today (the per-frame token check).
        ws.send(
          JSON.stringify({
            seq: 1,
            readings: [{ device: 'r-1', kind: 'asic', ts: Date.now(), power_w: 10 }],
          }),
        );
        const sentAt = Date.now();
        const closeCode = await Promise.race([closed, sleep(5_000).then(() => undefined)]);
        const reply = replies.find((r) => r.seq === 1 || r.ack === 1);
        rotation.frameAfterWindow =
          `${reply?.ack === 1 ? 'acked' : `refused ${reply?.error?.code ?? 'no reply'}`}, ` +
          `closed ${closeCode ?? 'no'} ${closeCode === undefined ? '' : `after ${Date.now() - sentAt} ms`}`.trim();
      }
      ws.terminate();

      // --- 4. Kill the (new) lease holder while the second silence's SiteDown waits to resolve.
      await at(SECOND_KILL_AT_MS);
      await killLeader();

      // --- 5. Under load, all three back: the replicas' fleet gauges, scraped at the same moment.
      underLoad = await waitForGaugeAgreement(
        running().map((r) => r.url),
        GAUGE_AGREEMENT_MS,
      );
      underLoadShare = await sampleGaugeAgreement(
        running().map((x) => x.url),
        3_000,
      );
      await at(LOAD_ENDS_AT_MS);
    } catch (error) {
      abandoned = true;
      await Promise.allSettled(background);
      await flapper.stop();
      await leaderWatch.stop();
      await Promise.allSettled(runs.map((r) => r.fleet.stop({ flushMs: 0 })));
      await db.end();
      throw error;
    }

    const acknowledgedAtStop = totals(runs).acknowledged;
    const r = await stopAndReconcile('scale-out', runs, primary!.url());

    // The last silence's SiteDown resolves while the flapping site reports on.
    const episodes = async () =>
      (
        await db.query<{
          id: number;
          state: string;
          started_ms: number;
          fired_ms: number | null;
          resolved_ms: number | null;
        }>(
          `SELECT id, state, (extract(epoch FROM started_at) * 1000)::float8 AS started_ms,
                (extract(epoch FROM fired_at) * 1000)::float8 AS fired_ms,
                (extract(epoch FROM resolved_at) * 1000)::float8 AS resolved_ms
         FROM alerts WHERE site_id = $1 AND alertname = 'SiteDown' ORDER BY started_at`,
          [flapping.site.id],
        )
      ).rows;
    await waitFor(async () => (await episodes()).every((e) => e.state === 'resolved'), 20_000, 250);
    // Reports go on, and nothing fires when they stop: the site's threshold goes out of reach first.
    const outOfReach = await adminRequest(lb.url, 'PATCH', `/api/v1/sites/${flapping.site.id}`, {
      thresholds: { site_down_after_s: 3_600 },
    });
    await flapper.stop();
    await leaderWatch.stop();
    expect(outOfReach.status).toBe(200);
    const siteDown = await episodes();
    const notifications = async () =>
      (
        await db.query<{ id: number; alert_id: number; event: string; outcome: string | null }>(
          `SELECT n.id, n.alert_id, n.event, n.outcome FROM alert_notifications n
         JOIN alerts a ON a.id = n.alert_id WHERE a.site_id = $1 ORDER BY n.id`,
          [flapping.site.id],
        )
      ).rows;
    await waitFor(async () => (await notifications()).every((n) => n.outcome === 'delivered'), 15_000, 250);
    const outbox = await notifications();
    // Pending episodes of other sites (a surplus waiting out its `for`) are fine; nothing else may fire.
    const otherFired = (
      await db.query<{ alert: string }>(
        `SELECT s.name || ' ' || a.alertname || ' ' || a.state AS alert FROM alerts a JOIN sites s ON s.id = a.site_id
         WHERE a.site_id <> $1 AND a.fired_at IS NOT NULL`,
        [flapping.site.id],
      )
    ).rows.map((row) => row.alert);

    // Quiet: no agent writes; the same comparison, which only needs every replica's snapshot to be current.
    const quiet = await waitForGaugeAgreement(
      running().map((x) => x.url),
      GAUGE_AGREEMENT_MS,
    );

    // History through the replicas (read on the standby) against a replica reading the primary.
    reference = await HashwattProcess.start(primary!.url());
    const { sites } = (await (await adminRequest(reference.url, 'GET', '/api/v1/sites')).json()) as {
      sites: { id: number; name: string }[];
    };
    const fromMs = Math.floor(loadStartMs / MIN) * MIN;
    const toMs = Math.floor(Date.now() / 10_000) * 10_000;
    const seriesQueries = sites
      .filter((s) => ['load-1', 'load-2', 'demo-mining-tx'].includes(s.name))
      .flatMap((s) =>
        [10, 60].map(
          (step) => `/api/v1/sites/${s.id}/series?from=${fromMs}&to=${toMs}&step=${step}&metric=power_w`,
        ),
      );
    const seriesOf = async (url: string) =>
      Promise.all(seriesQueries.map(async (q) => (await adminRequest(url, 'GET', q)).text()));
    let seriesDiffering = seriesQueries.length;
    const seriesStarted = Date.now();
    const seriesEqual = await waitFor(
      async () => {
        const [want, ...got] = await Promise.all([reference!, ...running()].map((x) => seriesOf(x.url)));
        seriesDiffering = got.reduce((n, g) => n + g.filter((text, i) => text !== want![i]).length, 0);
        return seriesDiffering === 0;
      },
      15_000,
      250,
    );
    const seriesWaitMs = Date.now() - seriesStarted;
    const points = JSON.parse((await seriesOf(reference.url))[0] ?? '{}') as { points?: unknown[] };
    const lags = await Promise.all(
      running().map(async (x) => (await scrapeMetrics(x.url)).get('hashwatt_read_replica_lag_seconds')),
    );

    const leftAtEnd = await leftOf(db, purged.site.id);
    await db.end();

    // Webhook: one id per transition, and every transition of the database announced.
    const deliveries = webhook!.deliveries.filter((d) => d.siteName === 'flapping');
    const idOf = new Map<string, Set<number>>();
    const transitionOf = new Map<number, Set<string>>();
    for (const d of deliveries) {
      const transition = `${d.alertId}/${d.event}`;
      idOf.set(transition, (idOf.get(transition) ?? new Set()).add(d.notificationId));
      transitionOf.set(d.notificationId, (transitionOf.get(d.notificationId) ?? new Set()).add(transition));
    }
    const expectedTransitions = siteDown.flatMap((e) => [
      ...(e.fired_ms !== null ? [`${e.id}/firing`] : []),
      ...(e.resolved_ms !== null && e.fired_ms !== null ? [`${e.id}/resolved`] : []),
    ]);
    const silences = flapper.silences;
    const timeline = siteDown.map((e, k) => {
      const s = silences[k];
      const rel = (ms: number | null | undefined) =>
        ms == null ? '–' : ((ms - loadStartMs) / 1000).toFixed(1);
      return `silent ${rel(s?.lastBeforeMs)}–${rel(s?.firstAfterMs)} fired ${rel(e.fired_ms)} resolved ${rel(e.resolved_ms)}`;
    });

    const killsText = kills
      .map(
        (k) =>
          `r${k.replica} (${k.ingestingPerS}/s, ${k.streams} streams) at ${((k.atMs - loadStartMs) / 1000).toFixed(1)} s → r${k.newLeader} in ${k.takeoverMs} ms`,
      )
      .join(', ');
    console.log(
      summaryLine(
        r,
        `acked at stop ${acknowledgedAtStop}; kills ${killsText}; purge ${purgeStatus} on r${purger} after ${purgeAcked} batches, ` +
          `answers ${JSON.stringify(Object.fromEntries(purgeAnswers))}, rollups before ${JSON.stringify(purgeRollupsBefore)}; ` +
          `rotation (ws on r${rotation.wsReplica}, rotated via r${rotation.rotatedVia}): old token refused everywhere in ${rotation.refusedEverywhereMs ?? '>5000'} ms, ` +
          `open ws closed ${rotation.wsClosedMs === undefined ? `not within ${TOKEN_REVOCATION_MS} ms (next frame: ${rotation.frameAfterWindow})` : `in ${rotation.wsClosedMs} ms (${rotation.wsCloseCode})`}; ` +
          `gauges under load ${underLoad?.agreed ? 'equal' : `differ in ${underLoad?.differing} of ${underLoad?.compared}`} after ${underLoad?.waitedMs} ms (${underLoadShare.agreed} of ${underLoadShare.rounds} rounds over 3 s equal; ${underLoadShare.sameSnapshotPairs} replica pairs on one snapshot, ${underLoadShare.sameSnapshotDiffering} of them differing), ` +
          `quiet ${quiet.agreed ? 'equal' : `differ in ${quiet.differing} of ${quiet.compared}`} after ${quiet.waitedMs} ms; ` +
          `SiteDown ${siteDown.length} episodes [${timeline.join('; ')}], webhook ${deliveries.length} posts ${idOf.size} transitions ${transitionOf.size} ids; ` +
          `standby series ${seriesEqual ? 'equal' : `${seriesDiffering} differ`} (${seriesQueries.length} queries, ${points.points?.length ?? 0} points, ${seriesWaitMs} ms, lag ${lags.join('/')} s); ` +
          `retries ${JSON.stringify(retryReasons(runs))}`,
      ),
    );
    const diagnostics = () =>
      `rejections ${JSON.stringify(rejectionCodes(runs))}; errors ${replicas.map((x, i) => `r${i}: ${x.errors.length} ${x.errors[0]?.slice(0, 200) ?? ''}`).join(' | ')}; haproxy:\n${lb.logTail()}`;

    // The ledger: through two kills and HAProxy, nothing acknowledged lost or stored twice.
    expect(acknowledgedAtStop).toBeGreaterThan(20_000);
    // Each victim was storing its share of the load when it died (HAProxy hides the kill from
    // most agents: only a request in flight on it, or a WebSocket it held, sees one).
    for (const k of kills) expect(k.ingestingPerS, `r${k.replica} before its kill`).toBeGreaterThan(0);
    expectNothingLost(r, diagnostics);
    for (const x of [...replicas, reference]) if (x) expectNoCrash(x);

    // Failovers: another replica took the lease each time, quickly, and never two at once.
    expect(kills.map((k) => k.takeoverMs !== undefined && k.newLeader !== k.replica)).toEqual([true, true]);
    for (const k of kills) expect(k.takeoverMs!).toBeLessThan(5_000);
    expect(kills[0]!.replica).not.toBe(kills[1]!.replica);
    expect(leaderWatch.overlaps).toBe(0);

    // The purge: 204, then nothing of the site in any table, right after and at the end; its
    // writers got only stored / token gone / site gone / load shed, never a 5xx or a dropped connection.
    expect(purgeStatus).toBe(204);
    expect(
      Object.values(purgeRollupsBefore).every((n) => n > 0),
      JSON.stringify(purgeRollupsBefore),
    ).toBe(true);
    const nothing = Object.fromEntries(Object.keys(leftAtEnd).map((k) => [k, 0]));
    expect(purgeLeftRightAfter).toEqual(nothing);
    expect(leftAtEnd).toEqual(nothing);
    for (const key of purgeAnswers.keys())
      expect(['HTTP 200', 'HTTP 401', 'HTTP 404', 'HTTP 429']).toContain(key);
    expect((purgeAnswers.get('HTTP 401') ?? 0) + (purgeAnswers.get('HTTP 404') ?? 0)).toBeGreaterThanOrEqual(
      PURGE_WRITERS * PURGE_ANSWERS_AFTER,
    );

    // Rotation: the old token refused by every replica within the bound, the new one accepted.
    expect(rotation.acked).toBe(true);
    expect(rotation.refusedEverywhereMs, JSON.stringify(rotation.oldTokenAnswers)).toBeDefined();
    expect(rotation.refusedEverywhereMs!).toBeLessThanOrEqual(TOKEN_REVOCATION_MS);
    expect(rotation.newTokenAnswers).toEqual(running().map(() => 200));

    // Alerts: one SiteDown per silence, each fired and resolved, evaluated across both failovers;
    // each transition announced once under an id of its own (retries may repeat an id, never a transition).
    expect(siteDown.length, timeline.join('; ')).toBe(SILENCES);
    expect(siteDown.every((e) => e.state === 'resolved' && e.fired_ms !== null)).toBe(true);
    siteDown.forEach((e, k) => {
      const s = silences[k]!;
      expect(e.fired_ms!, timeline[k]).toBeGreaterThanOrEqual(s.lastBeforeMs + SITE_DOWN_AFTER_S * 1000);
      expect(e.fired_ms!, timeline[k]).toBeLessThanOrEqual(s.firstAfterMs!);
      expect(e.resolved_ms!, timeline[k]).toBeGreaterThanOrEqual(
        s.firstAfterMs! + 2 * SITE_DOWN_AFTER_S * 1000,
      );
    });
    const transitionsAfter = (ms: number) =>
      siteDown.flatMap((e) => [e.fired_ms!, e.resolved_ms!]).filter((t) => t > ms).length;
    for (const k of kills)
      expect(transitionsAfter(k.atMs), `transitions after the kill of r${k.replica}`).toBeGreaterThan(0);
    expect(outbox.map((n) => n.outcome)).toEqual(outbox.map(() => 'delivered'));
    expect(webhook!.malformed).toEqual([]);
    expect([...idOf.keys()].sort()).toEqual([...expectedTransitions].sort());
    expect([...idOf.values()].map((ids) => ids.size)).toEqual(expectedTransitions.map(() => 1));
    expect([...transitionOf.values()].map((t) => t.size)).toEqual(expectedTransitions.map(() => 1));
    expect(deliveries.every((d) => d.headerNotificationId === String(d.notificationId))).toBe(true);
    expect(new Set(deliveries.map((d) => d.notificationId))).toEqual(new Set(outbox.map((n) => n.id)));
    expect(otherFired).toEqual([]);
    expect(webhook!.deliveries.length).toBe(deliveries.length);

    // History from the standby equals the primary's once caught up.
    expect(points.points?.length ?? 0).toBeGreaterThan(0);
    expect(seriesEqual).toBe(true);
    for (const lag of lags) expect(lag).toBeGreaterThanOrEqual(0);

    // Quiet, every replica's gauges are the same.
    expect(quiet, quiet.examples.join('; ')).toMatchObject({ agreed: true });

    // Under load the replicas report one fleet snapshot, the lease holder's (217955b): they agree
    // exactly within a few seconds, and replicas showing one snapshot (by its time) show identical
    // gauges. A follower may show the previous one, so not every round agrees; with a snapshot per
    // replica (before 217955b) 2 of 15 rounds did, by coincidence of refresh phases.
    expect(underLoad?.agreed, `gauges under load: ${underLoad?.examples.join('; ')}`).toBe(true);
    expect(underLoadShare.sameSnapshotPairs, JSON.stringify(underLoadShare)).toBeGreaterThan(0);
    expect(underLoadShare.sameSnapshotDiffering, underLoadShare.examples.join('; ')).toBe(0);
    // A rotated token ends its open WebSocket on whichever replica holds it (the change feed).
    expect(rotation.wsClosedMs, `open WebSocket after rotation: ${rotation.frameAfterWindow}`).toBeDefined();
    expect(rotation.wsClosedMs!).toBeLessThanOrEqual(TOKEN_REVOCATION_MS);
    expect(rotation.wsCloseCode).toBe(1008);
  }, 240_000);
});

/** Rows of a site in every table that holds site data (the sites row included). */
async function leftOf(db: pg.Client, siteId: number): Promise<Record<string, number>> {
  const tables = [
    'sites',
    'devices',
    'readings',
    'readings_extra',
    'device_latest',
    'rollup_site_1m',
    'rollup_site_1h',
    'rollup_device_1h',
    'rollup_dirty',
    'rollup_device_1m_staged',
    'rollup_dirty_hour',
    'alerts',
  ];
  const { rows } = await db.query<Record<string, number>>(
    `SELECT ${tables
      .map((t) => `(SELECT count(*)::int FROM ${t} WHERE ${t === 'sites' ? 'id' : 'site_id'} = $1) AS ${t}`)
      .join(', ')}`,
    [siteId],
  );
  return rows[0]!;
}
