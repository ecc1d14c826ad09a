import { createHash } from 'node:crypto';
import type { Logger } from '../log.ts';
import {
  type Acknowledgement,
  type AlertWithSite,
  type AttemptOutcome,
  acknowledgementOf,
  type DeliveryResult,
  type DueNotification,
  dropSilencedNotifications,
  dueNotifications,
  knownSilenceUids,
  listActiveSilences,
  listFiringAcknowledgements,
  markAlertsNotified,
  type ReceiverKind,
  type ReceiverRef,
  recordDeliveries,
} from '../storage/alerts.ts';
import type { Storage } from '../storage/database.ts';
import {
  type AlertmanagerSilence,
  announcementFate,
  type MirroredSilence,
  mirroredUid,
  planSilenceSync,
} from './silences.ts';
import { silenceOf, viewAlert } from './view.ts';

/** A firing alert as the engine holds it, for the periodic re-send to Alertmanager. */
export interface FiringAlert {
  id: number;
  siteId: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startedAtMs: number;
}

export interface RetryPolicy {
  /** Delay after the first failed attempt; doubles with each further one. */
  baseMs: number;
  maxMs: number;
  /** Attempts before an announcement is abandoned. */
  maxAttempts: number;
}

export const DEFAULT_RETRY: RetryPolicy = { baseMs: 1_000, maxMs: 300_000, maxAttempts: 10 };

/** Counts delivery outcomes; the metrics module implements it. */
export interface DeliveryObserver {
  delivered(receiver: ReceiverKind, outcome: AttemptOutcome): void;
}

export interface SenderOptions {
  storage: Storage;
  logger: Logger;
  alertmanagerUrls: readonly string[];
  webhookUrls: readonly string[];
  /** Firing alerts now, from the engine. */
  firing: () => FiringAlert[];
  /** hashwatt's own base URL, for Alertmanager's generatorURL; unset leaves it out. */
  baseUrl: () => string | undefined;
  /** How often firing alerts are re-sent to Alertmanager; their endsAt is 4 of these ahead. */
  resendMs: number;
  retry: RetryPolicy;
  requestTimeoutMs: number;
  /** How often each receiver looks for due announcements (besides being woken). */
  pollMs: number;
  observer?: DeliveryObserver;
}

/** A receiver URL named for the database: a digest (URLs may carry secrets) and its origin. */
export function receiverRef(receiver: ReceiverKind, url: string): ReceiverRef {
  return {
    receiver,
    key: createHash('sha256').update(url).digest('hex').slice(0, 32),
    origin: new URL(url).origin,
  };
}

/** Delay before attempt `attempt + 1` after `attempt` failed: exponential, capped. */
export function retryDelayMs(attempt: number, policy: RetryPolicy): number {
  return Math.min(policy.baseMs * 2 ** Math.max(0, attempt - 1), policy.maxMs);
}

/** 2xx delivered; 408, 429 and 5xx (and no answer) may succeed later; any other 4xx never will. */
export function classifyStatus(status: number | null): AttemptOutcome {
  if (status !== null && status >= 200 && status < 300) return 'delivered';
  if (status !== null && status >= 400 && status < 500 && status !== 408 && status !== 429) return 'rejected';
  return 'failed';
}

/** One Alertmanager alert (POST /api/v2/alerts); `endsAt` in the past or now means resolved. */
export interface AlertmanagerAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  generatorURL?: string;
}

/**
 * Annotations with the episode's acknowledgement, for Alertmanager (which has no such notion):
 * `acknowledged_by`, `acknowledged_at` and, when given, `acknowledgement_comment`.
 */
export function withAcknowledgement(
  annotations: Record<string, string>,
  ack: Acknowledgement | null | undefined,
): Record<string, string> {
  if (!ack) return annotations;
  return {
    ...annotations,
    acknowledged_by: ack.by,
    acknowledged_at: new Date(ack.atMs).toISOString(),
    ...(ack.comment !== null && ack.comment !== '' && { acknowledgement_comment: ack.comment }),
  };
}

export function alertmanagerAlert(
  alert: {
    siteId: number;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    acknowledgement?: Acknowledgement | null;
  },
  startsAtMs: number,
  endsAtMs: number,
  baseUrl: string | undefined,
): AlertmanagerAlert {
  return {
    labels: alert.labels,
    annotations: withAcknowledgement(alert.annotations, alert.acknowledgement),
    startsAt: new Date(startsAtMs).toISOString(),
    endsAt: new Date(endsAtMs).toISOString(),
    ...(baseUrl && { generatorURL: `${baseUrl}/api/v1/sites/${alert.siteId}/alerts` }),
  };
}

/** The JSON a webhook receives: one announcement; `notification_id` is the same on every retry. */
export function webhookPayload(n: DueNotification, sentAtMs: number) {
  return {
    version: 1,
    notification_id: n.notification_id,
    event: n.event,
    alert: viewAlert(n.alert),
    sent_at: new Date(sentAtMs).toISOString(),
  };
}

interface PostResult {
  status: number | null;
  error: string | null;
  durationMs: number;
}

async function postJson(
  url: string,
  body: unknown,
  timeoutMs: number,
  stop: AbortSignal,
  headers: Record<string, string> = {},
): Promise<PostResult> {
  const started = performance.now();
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'hashwatt', ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), stop]),
    });
    // Drain the body so the connection returns to the pool.
    await response.arrayBuffer().catch(() => undefined);
    const error = response.ok ? null : `HTTP ${response.status}`;
    return { status: response.status, error, durationMs: performance.now() - started };
  } catch (error) {
    const e = error as Error & { cause?: { code?: string } };
    const reason = e.name === 'TimeoutError' ? `timeout after ${timeoutMs} ms` : (e.cause?.code ?? e.message);
    return { status: null, error: reason, durationMs: performance.now() - started };
  }
}

function resultOf(
  n: DueNotification,
  post: PostResult,
  attemptedAtMs: number,
  policy: RetryPolicy,
): DeliveryResult {
  const attempt = n.attempts + 1;
  const outcome = classifyStatus(post.status);
  const finished =
    outcome === 'delivered'
      ? 'delivered'
      : outcome === 'rejected'
        ? 'rejected'
        : attempt >= policy.maxAttempts
          ? 'abandoned'
          : null;
  return {
    notificationId: n.notification_id,
    attempt,
    attemptedAtMs,
    durationMs: post.durationMs,
    outcome,
    statusCode: post.status,
    error: post.error,
    finished,
    nextAttemptAtMs: finished ? null : attemptedAtMs + post.durationMs + retryDelayMs(attempt, policy),
  };
}

/**
 * Delivers the outbox in the background, one lane per receiver URL so a slow or dead receiver
 * delays nobody else, and never the evaluation: the engine only writes rows and wakes the lanes.
 */
export class NotificationSender {
  readonly #lanes: Lane[];

  constructor(options: SenderOptions) {
    this.#lanes = [
      ...options.alertmanagerUrls.map((url) => new AlertmanagerLane(url, options)),
      ...options.webhookUrls.map((url) => new WebhookLane(url, options)),
    ];
  }

  /** The receivers announcements are queued for. */
  get receivers(): ReceiverRef[] {
    return this.#lanes.map((l) => l.ref);
  }

  start(): void {
    for (const lane of this.#lanes) lane.start();
  }

  /** New announcements are in the outbox. */
  wake(): void {
    for (const lane of this.#lanes) lane.wake();
  }

  /** Stops every lane: in-flight requests get `graceMs`, then are aborted (their rows stay due). */
  async stop(graceMs: number): Promise<void> {
    await Promise.all(this.#lanes.map((l) => l.stop(graceMs)));
  }
}

abstract class Lane {
  readonly url: string;
  readonly ref: ReceiverRef;
  protected readonly options: SenderOptions;
  protected abort = new AbortController();
  #running: Promise<void> | undefined;
  #stopped = false;
  #wake: (() => void) | undefined;
  #woken = false;
  #failures = 0;

  constructor(kind: ReceiverKind, url: string, options: SenderOptions) {
    this.url = url;
    this.ref = receiverRef(kind, url);
    this.options = options;
  }

  protected get stopped(): boolean {
    return this.#stopped;
  }

  start(): void {
    this.#stopped = false;
    if (this.abort.signal.aborted) this.abort = new AbortController();
    // A loop still winding down from a stop simply carries on.
    if (this.#running) return;
    const running = this.#loop();
    this.#running = running;
    void running.finally(() => {
      if (this.#running === running) this.#running = undefined;
    });
  }

  wake(): void {
    this.#woken = true;
    this.#wake?.();
  }

  /**
   * Stops the loop: an in-flight request gets `graceMs`, then is aborted. A pass stuck on an
   * unreachable database is not waited for beyond twice that: it fails once the database closes.
   */
  async stop(graceMs: number): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    const running = this.#running;
    if (!running) return;
    const abort = setTimeout(() => this.abort.abort(), graceMs);
    let giveUp: NodeJS.Timeout | undefined;
    await Promise.race([running, new Promise((resolve) => (giveUp = setTimeout(resolve, graceMs * 2)))]);
    clearTimeout(abort);
    clearTimeout(giveUp);
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      this.#woken = false;
      try {
        await this.pass();
        this.#failures = 0;
      } catch (error) {
        // The database is away: log once per outage, keep polling.
        if (this.#failures++ === 0)
          this.options.logger.warn(
            { err: String(error), receiver: this.ref.origin },
            'alert delivery failed',
          );
      }
      if (this.#stopped || this.#woken) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.pollMs);
        timer.unref();
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  protected abstract pass(): Promise<void>;

  protected count(outcome: AttemptOutcome): void {
    this.options.observer?.delivered(this.ref.receiver, outcome);
  }

  protected log(n: DueNotification, result: DeliveryResult): void {
    const fields = {
      receiver: this.ref.receiver,
      origin: this.ref.origin,
      alert_id: n.alert.id,
      alertname: n.alert.alertname,
      site: n.alert.site_name,
      event: n.event,
      attempt: result.attempt,
      status: result.statusCode,
      error: result.error,
    };
    if (result.outcome === 'delivered') this.options.logger.info(fields, 'alert notification delivered');
    else if (result.finished)
      this.options.logger.warn({ ...fields, outcome: result.finished }, 'alert notification given up');
    else this.options.logger.warn(fields, 'alert notification failed; will retry');
  }
}

/**
 * Alertmanager is told the state of alerts rather than events: every firing alert is re-sent every
 * `resendMs` with endsAt four of those ahead (if hashwatt dies, Alertmanager resolves them itself),
 * and a resolution is sent with endsAt = the resolve time. Outbox rows and re-sends of one URL share
 * this lane, so a re-send built before a resolution can never arrive after it.
 */
class AlertmanagerLane extends Lane {
  readonly #base: string;
  readonly #endpoint: string;
  #lastResendMs = Number.NEGATIVE_INFINITY;
  /** The active silences as last mirrored, and when the mirror is next checked regardless. */
  #syncedSilences: string | undefined;
  #nextSyncMs = Number.NEGATIVE_INFINITY;
  #syncFailures = 0;

  constructor(url: string, options: SenderOptions) {
    super('alertmanager', url, options);
    this.#base = url.replace(/\/+$/, '');
    this.#endpoint = `${this.#base}/api/v2/alerts`;
  }

  protected async pass(): Promise<void> {
    const { storage, resendMs, retry } = this.options;
    const now = Date.now();
    // Silences first: a silence made just before an alert fires is in Alertmanager before the alert.
    await this.#mirrorSilences(now);
    const due = await dueNotifications(storage.db, this.ref.key, now, 200);
    const resend = now - this.#lastResendMs >= resendMs;
    if (due.length === 0 && !resend) return;

    const baseUrl = this.options.baseUrl();
    const endsAtFiringMs = now + 4 * resendMs;
    // A resolved alert is sent resolved even by its (late) firing announcement: Alertmanager keeps state.
    const fromRow = (a: AlertWithSite) =>
      alertmanagerAlert(
        {
          siteId: a.site_id,
          labels: a.labels,
          annotations: a.annotations,
          acknowledgement: acknowledgementOf(a),
        },
        a.started_at.getTime(),
        a.resolved_at?.getTime() ?? endsAtFiringMs,
        baseUrl,
      );
    const body = due.map((n) => fromRow(n.alert));
    const resent: number[] = [];
    if (resend) {
      const queued = new Set(due.map((n) => n.alert.id));
      const firing = this.options.firing().filter((a) => !queued.has(a.id));
      // Acknowledgements are made on any replica: the database has them, the engine's memory not.
      const acks = firing.length > 0 ? await listFiringAcknowledgements(storage.db) : new Map();
      for (const a of firing) {
        body.push(
          alertmanagerAlert(
            { ...a, acknowledgement: acks.get(a.id) },
            a.startedAtMs,
            endsAtFiringMs,
            baseUrl,
          ),
        );
        resent.push(a.id);
      }
      this.#lastResendMs = now;
    }
    if (body.length === 0) return;

    const post = await postJson(this.#endpoint, body, this.options.requestTimeoutMs, this.abort.signal);
    const results = due.map((n) => resultOf(n, post, now, retry));
    await recordDeliveries(storage.db, results, Date.now());
    for (const [i, n] of due.entries()) this.log(n, results[i]!);
    if (classifyStatus(post.status) === 'delivered') {
      await markAlertsNotified(storage.db, resent, Date.now());
    } else if (resent.length > 0) {
      this.options.logger.warn(
        { origin: this.ref.origin, status: post.status, error: post.error, alerts: resent.length },
        'alertmanager re-send failed',
      );
    }
    this.count(classifyStatus(post.status));
  }

  /**
   * Keeps this Alertmanager's hashwatt silences equal to the active ones here (planSilenceSync):
   * at once when the set changes, else once a re-send interval (an Alertmanager restarted without
   * its data has lost them). An unreachable Alertmanager is retried with the delivery backoff.
   * Never throws for Alertmanager's sake: alerts still go out when silences cannot.
   */
  async #mirrorSilences(nowMs: number): Promise<void> {
    const { storage, resendMs, retry, requestTimeoutMs } = this.options;
    const rows = await listActiveSilences(storage.db, nowMs);
    const desired: MirroredSilence[] = rows.map((r) => ({
      ...silenceOf(r),
      uid: r.uid,
      siteName: r.site_name,
      comment: r.comment,
      createdBy: r.created_by,
    }));
    const key = desired.map((s) => `${s.uid}@${s.siteName}`).join(',');
    // After a failure, only once the backoff is over; else at once on a change, and every interval.
    const due =
      this.#syncFailures > 0
        ? nowMs >= this.#nextSyncMs
        : key !== this.#syncedSilences || nowMs >= this.#nextSyncMs;
    if (!due) return;
    try {
      const listed = await this.#request('GET', '/api/v2/silences', undefined, requestTimeoutMs);
      if (!Array.isArray(listed)) throw new Error('GET /api/v2/silences: not a list');
      // Alertmanager's own answer, in the shape its API documents (the fields read are checked below).
      const actual = (listed as AlertmanagerSilence[]).filter(
        (s) =>
          typeof s?.id === 'string' &&
          typeof s.comment === 'string' &&
          typeof s.endsAt === 'string' &&
          typeof s.status?.state === 'string' &&
          Array.isArray(s.matchers),
      );
      const uids = actual.map((s) => mirroredUid(s.comment)).filter((u) => u !== undefined);
      const known = await knownSilenceUids(storage.db, uids);
      const plan = planSilenceSync(desired, actual, known, nowMs);
      for (const id of plan.expire)
        await this.#request(
          'DELETE',
          `/api/v2/silence/${encodeURIComponent(id)}`,
          undefined,
          requestTimeoutMs,
        );
      for (const silence of plan.create)
        await this.#request('POST', '/api/v2/silences', silence, requestTimeoutMs);
      if (plan.create.length > 0 || plan.expire.length > 0)
        this.options.logger.info(
          { origin: this.ref.origin, created: plan.create.length, expired: plan.expire.length },
          'alertmanager silences mirrored',
        );
      if (this.#syncFailures > 0)
        this.options.logger.info({ origin: this.ref.origin }, 'alertmanager silences mirrored again');
      this.#syncedSilences = key;
      this.#syncFailures = 0;
      this.#nextSyncMs = nowMs + resendMs;
    } catch (error) {
      if (this.#syncFailures === 0)
        this.options.logger.warn(
          { origin: this.ref.origin, err: String(error) },
          'alertmanager silences could not be mirrored; will retry',
        );
      this.#syncFailures += 1;
      this.#nextSyncMs = nowMs + retryDelayMs(this.#syncFailures, retry);
    }
  }

  async #request(method: string, path: string, body: unknown, timeoutMs: number): Promise<unknown> {
    const response = await fetch(`${this.#base}${path}`, {
      method,
      headers: {
        'user-agent': 'hashwatt',
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
      signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), this.abort.signal]),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${text.slice(0, 200)}`);
    return text ? JSON.parse(text) : null;
  }
}

/** A generic webhook gets each announcement as its own JSON POST, in order per alert. */
class WebhookLane extends Lane {
  constructor(url: string, options: SenderOptions) {
    super('webhook', url, options);
  }

  protected async pass(): Promise<void> {
    const { storage, retry, requestTimeoutMs } = this.options;
    // Announcements of silenced alerts are not due here while the silence holds (announcementFate).
    const due = await dueNotifications(storage.db, this.ref.key, Date.now(), 50, { honourSilences: true });
    for (const n of due) {
      if (this.stopped) return;
      const fate = announcementFate({
        event: n.event,
        silencedNow: false,
        resolvedWhileSilenced: n.resolved_while_silenced,
        firingDropped: n.firing_dropped,
      });
      if (fate === 'drop') {
        await dropSilencedNotifications(storage.db, [n.notification_id], Date.now());
        this.options.logger.info(
          { receiver: this.ref.receiver, origin: this.ref.origin, alert_id: n.alert.id, event: n.event },
          'alert notification dropped: the episode resolved while silenced',
        );
        continue;
      }
      const attemptedAtMs = Date.now();
      const post = await postJson(
        this.url,
        webhookPayload(n, attemptedAtMs),
        requestTimeoutMs,
        this.abort.signal,
        {
          'x-hashwatt-event': n.event,
          'x-hashwatt-notification-id': String(n.notification_id),
        },
      );
      const result = resultOf(n, post, attemptedAtMs, retry);
      await recordDeliveries(storage.db, [result], Date.now());
      this.log(n, result);
      this.count(result.outcome);
    }
  }
}
