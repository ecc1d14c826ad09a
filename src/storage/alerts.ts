import { type ColumnType, type Generated, type Kysely, type Selectable, sql, type Transaction } from 'kysely';
import type { Database, SiteKind } from './schema.ts';

type Timestamp = ColumnType<Date, Date | string, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null, Date | string | null>;
type DefaultedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
/** jsonb of string values: objects out, JSON text in. */
type JsonStrings = ColumnType<Record<string, string>, string | undefined, string>;

export const ALERT_ROW_STATES = ['pending', 'firing', 'resolved'] as const;
export type AlertRowState = (typeof ALERT_ROW_STATES)[number];
export type NotificationEvent = 'firing' | 'resolved';
export type ReceiverKind = 'alertmanager' | 'webhook';
export type NotificationOutcome = 'delivered' | 'rejected' | 'abandoned';
export type AttemptOutcome = 'delivered' | 'failed' | 'rejected';

export interface AlertsTable {
  id: Generated<number>;
  site_id: number;
  alertname: string;
  severity: string;
  state: AlertRowState;
  value: number | null;
  threshold: number | null;
  started_at: Timestamp;
  fired_at: NullableTimestamp;
  resolved_at: NullableTimestamp;
  clear_since: NullableTimestamp;
  evaluated_at: Timestamp;
  last_notified_at: NullableTimestamp;
  labels: JsonStrings;
  annotations: JsonStrings;
}

export interface AlertNotificationsTable {
  id: Generated<number>;
  alert_id: number;
  event: NotificationEvent;
  receiver: ReceiverKind;
  receiver_key: string;
  receiver_origin: string;
  created_at: DefaultedTimestamp;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: DefaultedTimestamp;
  outcome: NotificationOutcome | null;
  finished_at: NullableTimestamp;
}

export interface AlertDeliveryAttemptsTable {
  id: Generated<number>;
  notification_id: number;
  attempt: number;
  attempted_at: Timestamp;
  duration_ms: number;
  outcome: AttemptOutcome;
  status_code: number | null;
  error: string | null;
}

/** The alerting tables (migrations/2026-11-24T01-00-alerts.ts); see docs/alerting.md. */
export type AlertTables = {
  alerts: AlertsTable;
  alert_notifications: AlertNotificationsTable;
  alert_delivery_attempts: AlertDeliveryAttemptsTable;
};

export type AlertRow = Selectable<AlertsTable>;
export type DeliveryAttemptRow = Selectable<AlertDeliveryAttemptsTable>;

type AlertsDb = Kysely<Database & AlertTables>;

function withAlerts(db: Kysely<Database>): AlertsDb {
  return db.withTables<AlertTables>();
}

/** An alert row with its site's name and kind, as lists and notifications need them. */
export interface AlertWithSite extends AlertRow {
  site_name: string;
  site_kind: SiteKind;
}

/** The column values of an alert row the engine writes. */
export interface AlertValues {
  site_id: number;
  alertname: string;
  severity: string;
  state: AlertRowState;
  value: number | null;
  threshold: number | null;
  started_at: Date;
  fired_at: Date | null;
  resolved_at: Date | null;
  clear_since: Date | null;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** One change of one evaluation; `notify` puts an announcement in the outbox for every receiver. */
export type AlertWrite =
  | { op: 'insert'; values: AlertValues; notify: NotificationEvent | null }
  | { op: 'update'; id: number; values: AlertValues; notify: NotificationEvent | null }
  | { op: 'delete'; id: number };

/** A configured receiver, named by a digest of its URL (URLs may carry secrets). */
export interface ReceiverRef {
  receiver: ReceiverKind;
  key: string;
  origin: string;
}

/**
 * Proof of leadership checked inside the write transaction: the Postgres session `pid` must still
 * hold the advisory lock (classId, objId). A replica whose lock session died stops writing at once.
 */
export interface LeaderFence {
  classId: number;
  objId: number;
  pid: number;
}

export class LeadershipLostError extends Error {
  override name = 'LeadershipLostError';
}

/** The open (pending and firing) alerts: the engine's state after a start or a takeover. */
export async function loadOpenAlerts(db: Kysely<Database>): Promise<AlertRow[]> {
  return withAlerts(db)
    .selectFrom('alerts')
    .selectAll()
    .where('state', '<>', 'resolved')
    .orderBy('id')
    .execute();
}

/** True when the fence's session holds its advisory lock now. */
async function fenceHolds(trx: Transaction<Database & AlertTables>, fence: LeaderFence): Promise<boolean> {
  const { rows } = await sql<{ held: boolean }>`
    SELECT EXISTS (
      SELECT 1 FROM pg_locks
      WHERE locktype = 'advisory'
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND classid = ${fence.classId}::int4::oid AND objid = ${fence.objId}::int4::oid
        AND objsubid = 2 AND pid = ${fence.pid}::int4 AND granted
    ) AS held`.execute(trx);
  return rows[0]?.held === true;
}

function rowValues(v: AlertValues, evaluatedAt: Date) {
  return {
    site_id: v.site_id,
    alertname: v.alertname,
    severity: v.severity,
    state: v.state,
    value: v.value,
    threshold: v.threshold,
    started_at: v.started_at,
    fired_at: v.fired_at,
    resolved_at: v.resolved_at,
    clear_since: v.clear_since,
    evaluated_at: evaluatedAt,
    labels: JSON.stringify(v.labels),
    annotations: JSON.stringify(v.annotations),
  };
}

/**
 * Writes one evaluation's changes and their announcements in one transaction (the outbox pattern:
 * an alert never changes without its notification being queued). Returns the ids of inserted rows,
 * in the order of the inserts. Throws LeadershipLostError, writing nothing, when the fence fails.
 */
export async function writeAlertChanges(
  db: Kysely<Database>,
  writes: readonly AlertWrite[],
  options: { receivers: readonly ReceiverRef[]; evaluatedAtMs: number; fence?: LeaderFence },
): Promise<number[]> {
  const evaluatedAt = new Date(options.evaluatedAtMs);
  return withAlerts(db)
    .transaction()
    .execute(async (trx) => {
      if (options.fence && !(await fenceHolds(trx, options.fence))) {
        throw new LeadershipLostError('the alerting leader lock is no longer held by this replica');
      }
      const inserted: number[] = [];
      const announce = async (alertId: number, event: NotificationEvent | null) => {
        if (!event || options.receivers.length === 0) return;
        await trx
          .insertInto('alert_notifications')
          .values(
            options.receivers.map((r) => ({
              alert_id: alertId,
              event,
              receiver: r.receiver,
              receiver_key: r.key,
              receiver_origin: r.origin,
              next_attempt_at: evaluatedAt,
            })),
          )
          .execute();
      };
      for (const write of writes) {
        if (write.op === 'delete') {
          await trx.deleteFrom('alerts').where('id', '=', write.id).execute();
        } else if (write.op === 'insert') {
          const row = await trx
            .insertInto('alerts')
            .values(rowValues(write.values, evaluatedAt))
            .returning('id')
            .executeTakeFirstOrThrow();
          inserted.push(row.id);
          await announce(row.id, write.notify);
        } else {
          await trx
            .updateTable('alerts')
            .set(rowValues(write.values, evaluatedAt))
            .where('id', '=', write.id)
            .execute();
          await announce(write.id, write.notify);
        }
      }
      return inserted;
    });
}

/** A due announcement with the alert and site it is about, as a sender needs it. */
export interface DueNotification {
  notification_id: number;
  event: NotificationEvent;
  attempts: number;
  alert: AlertWithSite;
}

/**
 * Announcements due for one receiver, oldest first. One alert's announcements go out in order: a
 * row waits while an earlier one of the same alert and receiver is unfinished (in backoff).
 */
export async function dueNotifications(
  db: Kysely<Database>,
  receiverKey: string,
  nowMs: number,
  limit: number,
): Promise<DueNotification[]> {
  const rows = await withAlerts(db)
    .selectFrom('alert_notifications as n')
    .innerJoin('alerts as a', 'a.id', 'n.alert_id')
    .innerJoin('sites as s', 's.id', 'a.site_id')
    .selectAll('a')
    .select([
      'n.id as notification_id',
      'n.event as event',
      'n.attempts as attempts',
      's.name as site_name',
      's.kind as site_kind',
    ])
    .where('n.outcome', 'is', null)
    .where('n.receiver_key', '=', receiverKey)
    .where('n.next_attempt_at', '<=', new Date(nowMs))
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('alert_notifications as e')
            .select('e.id')
            .whereRef('e.alert_id', '=', 'n.alert_id')
            .whereRef('e.receiver_key', '=', 'n.receiver_key')
            .where('e.outcome', 'is', null)
            .whereRef('e.id', '<', 'n.id'),
        ),
      ),
    )
    .orderBy('n.id')
    .limit(limit)
    .execute();
  return rows.map(({ notification_id, event, attempts, ...alert }) => ({
    notification_id,
    event,
    attempts,
    alert,
  }));
}

/** One delivery attempt of one announcement and what becomes of the announcement. */
export interface DeliveryResult {
  notificationId: number;
  attempt: number;
  attemptedAtMs: number;
  durationMs: number;
  outcome: AttemptOutcome;
  statusCode: number | null;
  error: string | null;
  /** Set when the announcement is finished; otherwise it is retried at `nextAttemptAtMs`. */
  finished: NotificationOutcome | null;
  nextAttemptAtMs: number | null;
}

/** Records attempts and advances their announcements; delivered ones stamp their alert's last_notified_at. */
export async function recordDeliveries(
  db: Kysely<Database>,
  results: readonly DeliveryResult[],
  nowMs: number,
): Promise<void> {
  if (results.length === 0) return;
  const now = new Date(nowMs);
  await withAlerts(db)
    .transaction()
    .execute(async (trx) => {
      await trx
        .insertInto('alert_delivery_attempts')
        .values(
          results.map((r) => ({
            notification_id: r.notificationId,
            attempt: r.attempt,
            attempted_at: new Date(r.attemptedAtMs),
            duration_ms: Math.round(r.durationMs),
            outcome: r.outcome,
            status_code: r.statusCode,
            error: r.error,
          })),
        )
        .execute();
      for (const r of results) {
        await trx
          .updateTable('alert_notifications')
          .set({
            attempts: r.attempt,
            outcome: r.finished,
            finished_at: r.finished ? now : null,
            ...(r.nextAttemptAtMs !== null && { next_attempt_at: new Date(r.nextAttemptAtMs) }),
          })
          .where('id', '=', r.notificationId)
          .execute();
      }
      const delivered = results.filter((r) => r.outcome === 'delivered').map((r) => r.notificationId);
      if (delivered.length > 0) {
        await trx
          .updateTable('alerts')
          .set({ last_notified_at: now })
          .where('id', 'in', (eb) =>
            eb.selectFrom('alert_notifications').select('alert_id').where('id', 'in', delivered),
          )
          .execute();
      }
    });
}

/** Stamps alerts re-sent to Alertmanager while firing. */
export async function markAlertsNotified(db: Kysely<Database>, ids: readonly number[], atMs: number) {
  if (ids.length === 0) return;
  await withAlerts(db)
    .updateTable('alerts')
    .set({ last_notified_at: new Date(atMs) })
    .where('id', 'in', [...ids])
    .execute();
}

/** Announcements to receivers no longer configured can never be delivered: finish them as abandoned. */
export async function abandonUnknownReceivers(
  db: Kysely<Database>,
  configuredKeys: readonly string[],
  nowMs: number,
): Promise<number> {
  let query = withAlerts(db)
    .updateTable('alert_notifications')
    .set({ outcome: 'abandoned', finished_at: new Date(nowMs) })
    .where('outcome', 'is', null);
  if (configuredKeys.length > 0) query = query.where('receiver_key', 'not in', [...configuredKeys]);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export interface AlertFilter {
  state?: AlertRowState;
  siteId?: number;
  limit: number;
}

/** Alerts newest first, with their site. */
export async function listAlerts(db: Kysely<Database>, filter: AlertFilter): Promise<AlertWithSite[]> {
  let query = withAlerts(db)
    .selectFrom('alerts as a')
    .innerJoin('sites as s', 's.id', 'a.site_id')
    .selectAll('a')
    .select(['s.name as site_name', 's.kind as site_kind']);
  if (filter.state) query = query.where('a.state', '=', filter.state);
  if (filter.siteId !== undefined) query = query.where('a.site_id', '=', filter.siteId);
  return query.orderBy('a.started_at', 'desc').orderBy('a.id', 'desc').limit(filter.limit).execute();
}

/** Every firing alert's labels, for the alerts-firing gauge of replicas that do not evaluate. */
export async function listFiringLabels(db: Kysely<Database>): Promise<Record<string, string>[]> {
  const rows = await withAlerts(db)
    .selectFrom('alerts')
    .select('labels')
    .where('state', '=', 'firing')
    .execute();
  return rows.map((r) => r.labels);
}

/** Deletes resolved alerts (and their notifications and attempts) resolved before `beforeMs`. */
export async function pruneResolvedAlerts(db: Kysely<Database>, beforeMs: number): Promise<number> {
  const result = await withAlerts(db)
    .deleteFrom('alerts')
    .where('state', '=', 'resolved')
    .where('resolved_at', '<', new Date(beforeMs))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** A delivery attempt with what it delivered, for operators and tests. */
export interface DeliveryAttemptView extends DeliveryAttemptRow {
  alert_id: number;
  event: NotificationEvent;
  receiver: ReceiverKind;
  receiver_origin: string;
}

/** Delivery attempts, oldest first; of one alert when `alertId` is given. */
export async function listDeliveryAttempts(
  db: Kysely<Database>,
  alertId?: number,
): Promise<DeliveryAttemptView[]> {
  let query = withAlerts(db)
    .selectFrom('alert_delivery_attempts as d')
    .innerJoin('alert_notifications as n', 'n.id', 'd.notification_id')
    .selectAll('d')
    .select(['n.alert_id', 'n.event', 'n.receiver', 'n.receiver_origin']);
  if (alertId !== undefined) query = query.where('n.alert_id', '=', alertId);
  return query.orderBy('d.id').execute();
}
