import type { FleetReader, FleetSnapshot } from '../fleet/index.ts';
import type { Logger } from '../log.ts';
import {
  type AlertRow,
  type AlertValues,
  type AlertWrite,
  abandonUnknownReceivers,
  type FiringAlertRef,
  LeadershipLostError,
  listActiveSilences,
  listFiringAlerts,
  loadOpenAlerts,
  pruneEndedSilences,
  pruneResolvedAlerts,
  writeAlertChanges,
} from '../storage/alerts.ts';
import type { Storage } from '../storage/database.ts';
import {
  type AlertChange,
  type AlertDraft,
  type AlertLabels,
  alertKey,
  type OpenAlert,
  planEvaluation,
} from './evaluate.ts';
import type { LeaderLease } from './leader.ts';
import { type DeliveryObserver, type FiringAlert, NotificationSender, type RetryPolicy } from './notify.ts';
import { findRule } from './rules.ts';
import type { Silence } from './silences.ts';
import { silenceOf } from './view.ts';

/** What the engine reports about itself; the alerting metrics implement it. */
export interface AlertObserver extends DeliveryObserver {
  evaluated(seconds: number): void;
  evaluationFailed(): void;
}

export interface AlertEngineOptions {
  storage: Storage;
  fleet: FleetReader;
  logger: Logger;
  lease: LeaderLease;
  intervalMs: number;
  alertmanagerUrls: readonly string[];
  webhookUrls: readonly string[];
  /** Resolved alerts older than this are deleted with their notifications. */
  retentionDays: number;
  resendMs: number;
  retry: RetryPolicy;
  requestTimeoutMs: number;
  pollMs: number;
  /** How long a stop waits for in-flight notifications before aborting them (they stay queued). */
  stopGraceMs: number;
  observer?: AlertObserver;
}

const PRUNE_EVERY_MS = 3_600_000;

/**
 * The built-in alerting engine: every interval the replica holding the lease evaluates every rule
 * on every site (src/alerting/rules.ts) from the fleet snapshot, writes the transitions and their
 * announcements in one transaction, and keeps the open alerts in memory. Announcements go out in
 * the background (NotificationSender); nothing here waits for a receiver.
 */
export class AlertEngine {
  readonly #o: AlertEngineOptions;
  readonly #sender: NotificationSender;
  #open = new Map<string, OpenAlert>();
  #leader = false;
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> | undefined;
  #started = false;
  #stopped = false;
  #listeningSinceMs = 0;
  #baseUrl: string | undefined;
  #lastPruneMs = 0;
  #failing = false;

  constructor(options: AlertEngineOptions) {
    this.#o = options;
    this.#sender = new NotificationSender({
      storage: options.storage,
      logger: options.logger,
      alertmanagerUrls: options.alertmanagerUrls,
      webhookUrls: options.webhookUrls,
      firing: () => this.firingAlerts(),
      baseUrl: () => this.#baseUrl,
      resendMs: options.resendMs,
      retry: options.retry,
      requestTimeoutMs: options.requestTimeoutMs,
      pollMs: options.pollMs,
      observer: options.observer,
    });
  }

  /** True while this replica evaluates (always on embedded PGlite). */
  get isLeader(): boolean {
    return this.#leader;
  }

  /**
   * Starts evaluating every interval. `baseUrl` is hashwatt's own, for links in notifications.
   * Silence before this moment is not held against a site (hashwatt was not listening).
   */
  start(baseUrl?: string): void {
    if (this.#started) return;
    this.#started = true;
    this.#baseUrl = baseUrl;
    this.#listeningSinceMs = Date.now();
    this.#schedule(0);
  }

  /** Stops evaluating, lets in-flight notifications finish (what does not stays queued), gives up the lease. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    // A tick stuck on an unreachable database (connect timeouts are seconds) must not hold up the
    // shutdown; closing the database fails it, and its error is caught like any other.
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#o.stopGraceMs);
    });
    await Promise.race([this.#tick, grace]);
    clearTimeout(timer);
    await this.#sender.stop(this.#o.stopGraceMs);
    this.#leader = false;
    await this.#o.lease.release();
  }

  /** Firing alerts as this replica holds them (empty unless it is the leader). */
  firingAlerts(): FiringAlert[] {
    const out: FiringAlert[] = [];
    for (const a of this.#open.values()) {
      if (a.episode.state !== 'firing') continue;
      out.push({
        id: a.id,
        siteId: a.siteId,
        labels: a.labels,
        annotations: a.annotations,
        startedAtMs: a.episode.pendingSinceMs,
      });
    }
    return out;
  }

  /** Every firing alert: from memory on the leader, from the database elsewhere. */
  async currentFiring(): Promise<FiringAlertRef[]> {
    if (this.#leader) {
      return this.firingAlerts().map((a) => ({
        siteId: a.siteId,
        alertname: a.labels.alertname ?? '',
        labels: a.labels,
      }));
    }
    return listFiringAlerts(this.#o.storage.db);
  }

  /** The silences in force now, from the database (they are made on any replica). */
  async activeSilences(nowMs = Date.now()): Promise<Silence[]> {
    return (await listActiveSilences(this.#o.storage.db, nowMs)).map(silenceOf);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      const started = Date.now();
      this.#tick = this.#runTick().finally(() => {
        this.#tick = undefined;
        this.#schedule(Math.max(0, this.#o.intervalMs - (Date.now() - started)));
      });
    }, delayMs);
    // The HTTP server keeps a running service alive; a stopped one must not be held by its engine.
    this.#timer.unref();
  }

  async #runTick(): Promise<void> {
    try {
      const leader = await this.#o.lease.check();
      if (this.#stopped) return;
      if (!leader) {
        if (this.#leader) await this.#stepDown('lease lost');
        return;
      }
      if (!this.#leader) await this.#takeOver();
      if (!this.#leader) return;
      await this.#evaluate();
      await this.#prune();
      if (this.#failing) this.#o.logger.info('alert evaluation recovered');
      this.#failing = false;
    } catch (error) {
      this.#o.observer?.evaluationFailed();
      if (error instanceof LeadershipLostError) {
        await this.#stepDown(error.message);
        return;
      }
      // One line per outage, not one per interval.
      if (!this.#failing) this.#o.logger.warn({ err: String(error) }, 'alert evaluation failed');
      this.#failing = true;
      if (isUniqueViolation(error)) this.#leader = false; // state diverged from the database: reload
    }
  }

  /** Becomes the evaluator: the open alerts come from the database, so nothing is announced twice. */
  async #takeOver(): Promise<void> {
    const rows = await loadOpenAlerts(this.#o.storage.db);
    const open = new Map<string, OpenAlert>();
    for (const row of rows) {
      const alert = openAlertOf(row);
      if (alert) open.set(alertKey(alert.siteId, alert.alertname), alert);
    }
    const abandoned = await abandonUnknownReceivers(
      this.#o.storage.db,
      this.#sender.receivers.map((r) => r.key),
      Date.now(),
    );
    // A stop that gave up waiting for this tick has already stopped the sender: stay stopped.
    if (this.#stopped) return;
    this.#open = open;
    this.#leader = true;
    this.#o.logger.info(
      { open: open.size, abandoned_notifications: abandoned || undefined },
      'alerting: evaluating; open alerts loaded',
    );
    this.#sender.start();
  }

  async #stepDown(reason: string): Promise<void> {
    this.#o.logger.warn({ reason }, 'alerting: no longer the evaluator');
    this.#leader = false;
    this.#open = new Map();
    await this.#sender.stop(this.#o.stopGraceMs);
  }

  async #evaluate(): Promise<void> {
    const started = performance.now();
    const snapshot = await this.#snapshot();
    const nowMs = snapshot.takenAtMs;
    const changes = planEvaluation(snapshot.sites, this.#open, {
      nowMs,
      listeningSinceMs: this.#listeningSinceMs,
    });
    const writes = changes.flatMap(writeOf);
    const ids =
      writes.length === 0
        ? []
        : await writeAlertChanges(this.#o.storage.db, writes, {
            receivers: this.#sender.receivers,
            evaluatedAtMs: nowMs,
            fence: this.#o.lease.fence,
          });
    let inserted = 0;
    let announced = false;
    for (const change of changes) {
      if (change.op === 'open') {
        const alert: OpenAlert = { ...change.draft, id: ids[inserted++]! };
        this.#open.set(alertKey(alert.siteId, alert.alertname), alert);
      } else if (change.op === 'update') {
        this.#open.set(alertKey(change.alert.siteId, change.alert.alertname), change.alert);
      } else {
        this.#open.delete(alertKey(change.alert.siteId, change.alert.alertname));
      }
      announced ||= this.#logChange(change);
    }
    if (announced) this.#sender.wake();
    this.#o.observer?.evaluated((performance.now() - started) / 1000);
  }

  /**
   * The fleet snapshot, no older than a quarter of the interval (at least 1 s): the background
   * refresh slows down on large fleets, and a site's silence is measured at the snapshot's time.
   */
  async #snapshot(): Promise<FleetSnapshot> {
    const snapshot = await this.#o.fleet.read();
    const maxAgeMs = Math.max(1_000, this.#o.intervalMs / 4);
    return Date.now() - snapshot.takenAtMs > maxAgeMs ? this.#o.fleet.refresh() : snapshot;
  }

  /** Logs firing and resolution; true when the change was announced to receivers. */
  #logChange(change: AlertChange): boolean {
    if (change.op === 'resolve') {
      this.#o.logger.info({ ...logFields(change.alert) }, 'alert resolved');
      return true;
    }
    if ((change.op === 'open' || change.op === 'update') && change.notify === 'firing') {
      const alert = change.op === 'open' ? change.draft : change.alert;
      this.#o.logger.info({ ...logFields(alert), summary: alert.annotations.summary }, 'alert firing');
      return true;
    }
    return false;
  }

  async #prune(): Promise<void> {
    const now = Date.now();
    if (now - this.#lastPruneMs < PRUNE_EVERY_MS) return;
    this.#lastPruneMs = now;
    const before = now - this.#o.retentionDays * 86_400_000;
    const pruned = await pruneResolvedAlerts(this.#o.storage.db, before);
    // Ended silences are history of the same kind, kept as long.
    const silences = await pruneEndedSilences(this.#o.storage.db, before);
    if (pruned > 0 || silences > 0)
      this.#o.logger.info({ pruned, pruned_silences: silences }, 'resolved alerts pruned');
  }
}

function logFields(a: AlertDraft) {
  return { alertname: a.alertname, site: a.labels.site, severity: a.severity, value: a.episode.value };
}

function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '23505';
}

function valuesOf(a: AlertDraft, resolvedAtMs: number | null): AlertValues {
  const e = a.episode;
  return {
    site_id: a.siteId,
    alertname: a.alertname,
    severity: a.severity,
    state: resolvedAtMs !== null ? 'resolved' : e.state,
    value: e.value,
    threshold: a.threshold,
    started_at: new Date(e.pendingSinceMs),
    fired_at: e.firedAtMs === null ? null : new Date(e.firedAtMs),
    resolved_at: resolvedAtMs === null ? null : new Date(resolvedAtMs),
    clear_since: e.clearSinceMs === null ? null : new Date(e.clearSinceMs),
    labels: a.labels,
    annotations: a.annotations,
  };
}

function writeOf(change: AlertChange): AlertWrite[] {
  switch (change.op) {
    case 'open':
      return [{ op: 'insert', values: valuesOf(change.draft, null), notify: change.notify }];
    case 'update':
      return [
        { op: 'update', id: change.alert.id, values: valuesOf(change.alert, null), notify: change.notify },
      ];
    case 'resolve':
      return [
        {
          op: 'update',
          id: change.alert.id,
          values: valuesOf(change.alert, change.resolvedAtMs),
          notify: 'resolved',
        },
      ];
    case 'cancel':
      return [{ op: 'delete', id: change.alert.id }];
    case 'forget':
      return [];
  }
}

/** An open alerts row as the engine holds it; rows of rules this version does not know are skipped. */
function openAlertOf(row: AlertRow): OpenAlert | undefined {
  const rule = findRule(row.alertname);
  if (!rule || row.state === 'resolved') return undefined;
  return {
    id: row.id,
    siteId: row.site_id,
    alertname: rule.name,
    severity: rule.severity,
    episode: {
      state: row.state,
      pendingSinceMs: row.started_at.getTime(),
      firedAtMs: row.fired_at?.getTime() ?? null,
      clearSinceMs: row.clear_since?.getTime() ?? null,
      value: row.value,
    },
    threshold: row.threshold,
    labels: row.labels as AlertLabels,
    annotations: row.annotations,
  };
}
