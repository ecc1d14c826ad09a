import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HashwattProcess } from './process.ts';

/** A /metrics page as series text (name and labels, exactly as exposed) → value. */
export type MetricSamples = Map<string, number>;

/** Scrapes a replica's /metrics; throws when it does not answer within `timeoutMs`. */
export async function scrapeMetrics(url: string, timeoutMs = 3_000): Promise<MetricSamples> {
  const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new Error(`${url}/metrics answered ${response.status}`);
  const samples: MetricSamples = new Map();
  for (const line of (await response.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** Whether a replica says it holds the job lease (`hashwatt_alerting_leader 1`); false when it does not answer. */
export async function isLeader(url: string): Promise<boolean> {
  try {
    return (await scrapeMetrics(url, 1_000)).get('hashwatt_alerting_leader') === 1;
  } catch {
    return false;
  }
}

/** The per-site fleet gauges of a scrape: every `hashwatt_site_*` series. */
export function siteGauges(samples: MetricSamples): MetricSamples {
  return new Map([...samples].filter(([series]) => series.startsWith('hashwatt_site_')));
}

/** Series where two scrapes differ (missing on one side counts), with both values; empty when equal. */
export function gaugeDifferences(
  a: MetricSamples,
  b: MetricSamples,
): { series: string; a: number | undefined; b: number | undefined }[] {
  const out: { series: string; a: number | undefined; b: number | undefined }[] = [];
  for (const series of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(series);
    const y = b.get(series);
    // NaN is how prom-client exposes a ratio with no denominator; equal NaNs agree.
    if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
    out.push({ series, a: x, b: y });
  }
  return out;
}

export interface GaugeAgreement {
  agreed: boolean;
  /** Rounds of simultaneous scrapes taken. */
  attempts: number;
  waitedMs: number;
  /** Series the last round found different between the first replica and another one. */
  differing: number;
  /** Site gauges compared per replica (last round). */
  compared: number;
  examples: string[];
}

/**
 * Scrapes every replica at the same moment (all requests in flight together) and compares their
 * `hashwatt_site_*` gauges, again every `everyMs` until they agree exactly or `timeoutMs` passes.
 * A fleet snapshot that changes between two replicas' scrapes is given further rounds; replicas
 * that compute their own snapshots under a changing load never agree.
 */
export async function waitForGaugeAgreement(
  urls: readonly string[],
  timeoutMs: number,
  everyMs = 200,
): Promise<GaugeAgreement> {
  const started = performance.now();
  let attempts = 0;
  for (;;) {
    attempts++;
    const scrapes = (await Promise.all(urls.map((u) => scrapeMetrics(u)))).map(siteGauges);
    const [first, ...others] = scrapes as [MetricSamples, ...MetricSamples[]];
    const differences = others.flatMap((other, i) =>
      gaugeDifferences(first, other).map((d) => ({ ...d, replica: i + 1 })),
    );
    const waitedMs = Math.round(performance.now() - started);
    if (differences.length === 0 || waitedMs >= timeoutMs) {
      return {
        agreed: differences.length === 0 && first.size > 0,
        attempts,
        waitedMs,
        differing: new Set(differences.map((d) => d.series)).size,
        compared: first.size,
        examples: differences.slice(0, 4).map((d) => `${d.series}: ${d.a} vs ${d.b} (replica ${d.replica})`),
      };
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Snapshots taken within this of each other are taken for one (refreshes are ≥ 1 s apart). */
const SAME_SNAPSHOT_MS = 150;

export interface GaugeSampling {
  rounds: number;
  /** Rounds in which every replica's site gauges were identical. */
  agreed: number;
  /** Pairs of replicas (over all rounds) whose scrapes came from one snapshot, by its time. */
  sameSnapshotPairs: number;
  /** Of those, pairs whose site gauges differed: a snapshot that is not one. Must be 0. */
  sameSnapshotDiffering: number;
  examples: string[];
}

/**
 * Simultaneous scrapes of every replica, one round every `everyMs` for `durationMs`. Each scrape's
 * snapshot is dated by `hashwatt_fleet_snapshot_age_seconds` (taken at = received − age): with the
 * lease holder's snapshot shared, replicas that show one snapshot must show identical gauges, and
 * a follower may show the one before (it reads the stored snapshot at its own refresh). With a
 * snapshot per replica two rarely share a time, and when they do their values need not match.
 */
export async function sampleGaugeAgreement(
  urls: readonly string[],
  durationMs: number,
  everyMs = 200,
): Promise<GaugeSampling> {
  const deadline = performance.now() + durationMs;
  const out: GaugeSampling = {
    rounds: 0,
    agreed: 0,
    sameSnapshotPairs: 0,
    sameSnapshotDiffering: 0,
    examples: [],
  };
  while (performance.now() < deadline) {
    const scrapes = await Promise.all(
      urls.map(async (u) => {
        const samples = await scrapeMetrics(u);
        const takenAtMs =
          Date.now() - (samples.get('hashwatt_fleet_snapshot_age_seconds') ?? Number.NaN) * 1000;
        return { gauges: siteGauges(samples), takenAtMs };
      }),
    );
    out.rounds++;
    let all = true;
    for (let i = 0; i < scrapes.length; i++) {
      for (let j = i + 1; j < scrapes.length; j++) {
        const differences = gaugeDifferences(scrapes[i]!.gauges, scrapes[j]!.gauges);
        if (differences.length > 0) all = false;
        if (Math.abs(scrapes[i]!.takenAtMs - scrapes[j]!.takenAtMs) > SAME_SNAPSHOT_MS) continue;
        out.sameSnapshotPairs++;
        if (differences.length === 0) continue;
        out.sameSnapshotDiffering++;
        if (out.examples.length < 4)
          out.examples.push(
            `${differences[0]!.series}: ${differences[0]!.a} vs ${differences[0]!.b} (${i}, ${j})`,
          );
      }
    }
    if (all) out.agreed++;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  return out;
}

/** One POST the webhook receiver got, as hashwatt sent it. */
export interface WebhookDelivery {
  receivedAtMs: number;
  notificationId: number;
  /** `x-hashwatt-notification-id`: must equal the body's. */
  headerNotificationId: string | undefined;
  event: string;
  alertId: number;
  alertname: string;
  siteName: string;
}

/**
 * The webhook receiver of HASHWATT_WEBHOOK_URLS: an HTTP server in the test that answers 204 and
 * records every announcement. Delivery is at least once, so one notification may arrive more than
 * once (a retry, or a sender that died before it recorded the delivery); receivers deduplicate by
 * `notification_id`.
 */
export class WebhookReceiver {
  readonly url: string;
  readonly deliveries: WebhookDelivery[] = [];
  /** Bodies that were not an announcement of the documented shape. */
  readonly malformed: string[] = [];
  readonly #server: Server;

  private constructor(server: Server) {
    this.#server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/hashwatt`;
  }

  static async start(): Promise<WebhookReceiver> {
    let receiver: WebhookReceiver | undefined;
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          const body = JSON.parse(text) as {
            notification_id: number;
            event: string;
            alert: { id: number; alertname: string; site: { name: string } };
          };
          const header = request.headers['x-hashwatt-notification-id'];
          receiver?.deliveries.push({
            receivedAtMs: Date.now(),
            notificationId: body.notification_id,
            headerNotificationId: typeof header === 'string' ? header : undefined,
            event: body.event,
            alertId: body.alert.id,
            alertname: body.alert.alertname,
            siteName: body.alert.site.name,
          });
        } catch {
          receiver?.malformed.push(text.slice(0, 300));
        }
        response.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    receiver = new WebhookReceiver(server);
    return receiver;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Who held the lease, sampled: the moments a replica was first seen as the leader. */
export interface LeaderChange {
  atMs: number;
  replica: number;
}

/**
 * Samples every running replica's `hashwatt_alerting_leader` every `everyMs`, so a test can say
 * when a lease passed to whom after a kill, and that two replicas never both said they held it.
 */
export class LeaderWatch {
  readonly changes: LeaderChange[] = [];
  /** Samples in which more than one replica reported itself the leader. */
  overlaps = 0;
  #stopped = false;
  readonly #loop: Promise<void>;

  constructor(replicas: readonly HashwattProcess[], everyMs = 200) {
    this.#loop = (async () => {
      let current: number | undefined;
      while (!this.#stopped) {
        const leaders = await Promise.all(replicas.map((r) => (r.running ? isLeader(r.url) : false)));
        const holding = leaders.flatMap((l, i) => (l ? [i] : []));
        if (holding.length > 1) this.overlaps++;
        if (holding.length === 1 && holding[0] !== current) {
          current = holding[0]!;
          this.changes.push({ atMs: Date.now(), replica: current });
        }
        await new Promise((resolve) => setTimeout(resolve, everyMs));
      }
    })();
  }

  /** The first replica seen leading after `afterMs` (epoch ms), and when. */
  firstLeaderAfter(afterMs: number): LeaderChange | undefined {
    return this.changes.find((c) => c.atMs > afterMs);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }
}
