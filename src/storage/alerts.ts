import {
  type ColumnType,
  type Generated,
  type Kysely,
  type RawBuilder,
  type Selectable,
  sql,
  type Transaction,
} from 'kysely';
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
/** `silenced`: a silence kept it from a webhook for good (docs/alerting.md, "Silences"). */
export type NotificationOutcome = 'delivered' | 'rejected' | 'abandoned' | 'silenced';
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
  acknowledged_at: NullableTimestamp;
  acknowledged_by: string | null;
  acknowledged_by_token_id: number | null;
  acknowledgement_comment: string | null;
}

export interface AlertSilencesTable {
  id: Generated<number>;
  uid: Generated<string>;
  site_id: number | null;
  alertname: string | null;
  starts_at: Timestamp;
  ends_at: Timestamp;
  comment: string;
  created_by: string;
  created_by_token_id: number | null;
  created_at: DefaultedTimestamp;
  expired_at: NullableTimestamp;
  expired_by: string | null;
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

/**
 * The alerting tables (migrations/2026-11-24T01-00-alerts.ts, 2026-12-02T01-00-alert-ack-silence.ts);
 * see docs/alerting.md.
 */
export type AlertTables = {
  alerts: AlertsTable;
  alert_notifications: AlertNotificationsTable;
  alert_delivery_attempts: AlertDeliveryAttemptsTable;
  alert_silences: AlertSilencesTable;
};

export type AlertRow = Selectable<AlertsTable>;
export type DeliveryAttemptRow = Selectable<AlertDeliveryAttemptsTable>;
export type SilenceRow = Selectable<AlertSilencesTable>;

type AlertsDb = Kysely<Database & AlertTables>;

function withAlerts(db: Kysely<Database>): AlertsDb {
  return db.withTables<AlertTables>();
}

/** An alert row with its site's name and kind, as lists and notifications need them. */
export interface AlertWithSite extends AlertRow {
  site_name: string;
  site_kind: SiteKind;
  /** Ids of the silences holding it now (open episodes only; a resolved one is never silenced). */
  silenced_by: number[];
}

/**
 * The ids of the silences holding the alert aliased `a` at the instant `at` (a column or a value),
 * as a subquery: a silence covers the alert when its site and alert name are the alert's or null
 * (every), and holds from `starts_at` (included) to its end (excluded), the earlier of `ends_at`
 * and `expired_at` (LEAST ignores a null). The same rule as `isSilenced` in
 * src/alerting/silences.ts; tests/alerting-silences.test.ts holds the two to agreement.
 */
function coveringSilences(at: RawBuilder<Date> | Date) {
  const instant = at instanceof Date ? sql`${at}::timestamptz` : at;
  return sql`
    SELECT z.id FROM alert_silences z
    WHERE (z.site_id IS NULL OR z.site_id = a.site_id)
      AND (z.alertname IS NULL OR z.alertname = a.alertname)
      AND z.starts_at <= ${instant} AND ${instant} < LEAST(z.ends_at, z.expired_at)`;
}

/** `silenced_by` of an alert aliased `a`, now: an int array, empty when nothing holds it. */
function silencedBy(nowMs: number) {
  return sql<number[]>`CASE WHEN a.state = 'resolved' THEN ARRAY[]::integer[] ELSE ARRAY(${coveringSilences(
    new Date(nowMs),
  )} ORDER BY z.id) END`;
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
  /** The episode resolved while a silence held it (honoured silences only; else false). */
  resolved_while_silenced: boolean;
  /** This receiver's firing announcement of the episode was dropped by a silence. */
  firing_dropped: boolean;
}

/**
 * Announcements due for one receiver, oldest first. One alert's announcements go out in order: a
 * row waits while an earlier one of the same alert and receiver is unfinished (in backoff).
 * With `honourSilences` (webhooks), announcements of alerts a silence holds now are left out, in
 * SQL, so a long silence never fills the batch and holds up everyone else's.
 */
export async function dueNotifications(
  db: Kysely<Database>,
  receiverKey: string,
  nowMs: number,
  limit: number,
  options: { honourSilences: boolean } = { honourSilences: false },
): Promise<DueNotification[]> {
  const honour = options.honourSilences;
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
      (honour
        ? sql<boolean>`(a.resolved_at IS NOT NULL AND EXISTS (${coveringSilences(sql`a.resolved_at`)}))`
        : sql<boolean>`false`
      ).as('resolved_while_silenced'),
      (honour
        ? sql<boolean>`EXISTS (
            SELECT 1 FROM alert_notifications f
            WHERE f.alert_id = n.alert_id AND f.receiver_key = n.receiver_key
              AND f.event = 'firing' AND f.outcome = 'silenced')`
        : sql<boolean>`false`
      ).as('firing_dropped'),
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
    .$if(honour, (q) => q.where(sql<boolean>`NOT EXISTS (${coveringSilences(new Date(nowMs))})`))
    .orderBy('n.id')
    .limit(limit)
    .execute();
  return rows.map(
    ({ notification_id, event, attempts, resolved_while_silenced, firing_dropped, ...alert }) => ({
      notification_id,
      event,
      attempts,
      // Honoured, nothing due is silenced now; not honoured (Alertmanager), the receiver judges.
      alert: { ...alert, silenced_by: [] },
      resolved_while_silenced: resolved_while_silenced === true,
      firing_dropped: firing_dropped === true,
    }),
  );
}

/** Finishes announcements a silence kept from their receiver for good (no attempt is made). */
export async function dropSilencedNotifications(
  db: Kysely<Database>,
  notificationIds: readonly number[],
  nowMs: number,
): Promise<void> {
  if (notificationIds.length === 0) return;
  await withAlerts(db)
    .updateTable('alert_notifications')
    .set({ outcome: 'silenced', finished_at: new Date(nowMs) })
    .where('id', 'in', [...notificationIds])
    .where('outcome', 'is', null)
    .execute();
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
  /** Only these sites (a reader restricted to some); undefined: every site. */
  siteIds?: readonly number[];
  limit: number;
  /** The instant `silenced_by` is judged at; default now. */
  nowMs?: number;
}

function alertsWithSite(db: Kysely<Database>, nowMs: number) {
  return withAlerts(db)
    .selectFrom('alerts as a')
    .innerJoin('sites as s', 's.id', 'a.site_id')
    .selectAll('a')
    .select(['s.name as site_name', 's.kind as site_kind', silencedBy(nowMs).as('silenced_by')]);
}

/** Alerts newest first, with their site and the silences holding them. */
export async function listAlerts(db: Kysely<Database>, filter: AlertFilter): Promise<AlertWithSite[]> {
  let query = alertsWithSite(db, filter.nowMs ?? Date.now());
  if (filter.state) query = query.where('a.state', '=', filter.state);
  if (filter.siteId !== undefined) query = query.where('a.site_id', '=', filter.siteId);
  if (filter.siteIds !== undefined) {
    if (filter.siteIds.length === 0) return [];
    query = query.where('a.site_id', 'in', filter.siteIds);
  }
  return query.orderBy('a.started_at', 'desc').orderBy('a.id', 'desc').limit(filter.limit).execute();
}

/** One alert with its site, or undefined. */
export async function findAlert(
  db: Kysely<Database>,
  id: number,
  nowMs = Date.now(),
): Promise<AlertWithSite | undefined> {
  return alertsWithSite(db, nowMs).where('a.id', '=', id).executeTakeFirst();
}

/** Who acknowledged an episode, when and why. */
export interface Acknowledgement {
  by: string;
  /** The named token's id; null for the admin token. */
  byTokenId: number | null;
  atMs: number;
  comment: string | null;
}

/**
 * Acknowledges a firing episode (`ack` null: takes the acknowledgement back). Only a firing row is
 * changed, in one statement, so an episode resolving at the same moment is never acknowledged
 * after the fact. The engine's own updates never touch these columns.
 */
export async function setAlertAcknowledgement(
  db: Kysely<Database>,
  id: number,
  ack: Acknowledgement | null,
): Promise<'done' | 'not_found' | 'not_firing'> {
  const result = await withAlerts(db)
    .updateTable('alerts')
    .set({
      acknowledged_at: ack ? new Date(ack.atMs) : null,
      acknowledged_by: ack?.by ?? null,
      acknowledged_by_token_id: ack?.byTokenId ?? null,
      acknowledgement_comment: ack?.comment ?? null,
    })
    .where('id', '=', id)
    .where('state', '=', 'firing')
    .executeTakeFirst();
  if (result.numUpdatedRows > 0n) return 'done';
  const row = await withAlerts(db).selectFrom('alerts').select('id').where('id', '=', id).executeTakeFirst();
  return row ? 'not_firing' : 'not_found';
}

/** A firing alert as the alerting metrics need it on replicas that do not evaluate. */
export interface FiringAlertRef {
  siteId: number;
  alertname: string;
  labels: Record<string, string>;
}

/** Every firing alert, from the database. */
export async function listFiringAlerts(db: Kysely<Database>): Promise<FiringAlertRef[]> {
  const rows = await withAlerts(db)
    .selectFrom('alerts')
    .select(['site_id', 'alertname', 'labels'])
    .where('state', '=', 'firing')
    .execute();
  return rows.map((r) => ({ siteId: r.site_id, alertname: r.alertname, labels: r.labels }));
}

/** The acknowledgements of firing alerts, by alert id, for the re-send to Alertmanager. */
export async function listFiringAcknowledgements(
  db: Kysely<Database>,
): Promise<Map<number, Acknowledgement>> {
  const rows = await withAlerts(db)
    .selectFrom('alerts')
    .select([
      'id',
      'acknowledged_at',
      'acknowledged_by',
      'acknowledged_by_token_id',
      'acknowledgement_comment',
    ])
    .where('state', '=', 'firing')
    .where('acknowledged_at', 'is not', null)
    .execute();
  const out = new Map<number, Acknowledgement>();
  for (const r of rows) {
    const ack = acknowledgementOf(r);
    if (ack) out.set(r.id, ack);
  }
  return out;
}

/** The acknowledgement columns of a row as one value, or null when it is not acknowledged. */
export function acknowledgementOf(
  row: Pick<
    AlertRow,
    'acknowledged_at' | 'acknowledged_by' | 'acknowledged_by_token_id' | 'acknowledgement_comment'
  >,
): Acknowledgement | null {
  if (row.acknowledged_at === null || row.acknowledged_by === null) return null;
  return {
    by: row.acknowledged_by,
    byTokenId: row.acknowledged_by_token_id,
    atMs: row.acknowledged_at.getTime(),
    comment: row.acknowledgement_comment,
  };
}

// --- Silences -------------------------------------------------------------------------------

/** A silence row with its site's name (null for a silence of every site). */
export interface SilenceWithSite extends SilenceRow {
  site_name: string | null;
}

function silencesWithSite(db: Kysely<Database>) {
  return withAlerts(db)
    .selectFrom('alert_silences as z')
    .leftJoin('sites as s', 's.id', 'z.site_id')
    .selectAll('z')
    .select('s.name as site_name');
}

export interface NewSilence {
  siteId: number | null;
  alertname: string | null;
  startsAtMs: number;
  endsAtMs: number;
  comment: string;
  createdBy: string;
  createdByTokenId: number | null;
}

export async function insertSilence(db: Kysely<Database>, input: NewSilence): Promise<SilenceWithSite> {
  const { id } = await withAlerts(db)
    .insertInto('alert_silences')
    .values({
      site_id: input.siteId,
      alertname: input.alertname,
      starts_at: new Date(input.startsAtMs),
      ends_at: new Date(input.endsAtMs),
      comment: input.comment,
      created_by: input.createdBy,
      created_by_token_id: input.createdByTokenId,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return silencesWithSite(db).where('z.id', '=', id).executeTakeFirstOrThrow();
}

export async function findSilence(db: Kysely<Database>, id: number): Promise<SilenceWithSite | undefined> {
  return silencesWithSite(db).where('z.id', '=', id).executeTakeFirst();
}

export interface SilenceFilter {
  /** Active: in force at `nowMs`; expired: ended by then. */
  state?: 'active' | 'expired';
  /** Silences that cover this site: its own and those of every site. */
  coveringSiteId?: number;
  /** Only silences of these sites and of every site (a reader limited to some sites); undefined: all. */
  visibleSiteIds?: readonly number[];
  nowMs: number;
  limit: number;
}

/** The end of the silence aliased `z`: the earlier of its planned end and its expiry. */
const silenceEnd = sql`LEAST(z.ends_at, z.expired_at)`;

/** Silences newest first. */
export async function listSilences(db: Kysely<Database>, filter: SilenceFilter): Promise<SilenceWithSite[]> {
  const now = new Date(filter.nowMs);
  let query = silencesWithSite(db);
  if (filter.state === 'active') {
    query = query.where('z.starts_at', '<=', now).where(sql<boolean>`${now}::timestamptz < ${silenceEnd}`);
  } else if (filter.state === 'expired') {
    // Silences start when created: one not in force has ended.
    query = query.where((eb) =>
      eb.or([eb('z.starts_at', '>', now), sql<boolean>`${now}::timestamptz >= ${silenceEnd}`]),
    );
  }
  const covering = filter.coveringSiteId;
  if (covering !== undefined) {
    query = query.where((eb) => eb.or([eb('z.site_id', 'is', null), eb('z.site_id', '=', covering)]));
  }
  const visible = filter.visibleSiteIds;
  if (visible !== undefined) {
    query = query.where((eb) =>
      visible.length === 0
        ? eb('z.site_id', 'is', null)
        : eb.or([eb('z.site_id', 'is', null), eb('z.site_id', 'in', [...visible])]),
    );
  }
  return query.orderBy('z.created_at', 'desc').orderBy('z.id', 'desc').limit(filter.limit).execute();
}

/** Silences in force at `nowMs`, with their site's name: what receivers honour and mirror. */
export async function listActiveSilences(db: Kysely<Database>, nowMs: number): Promise<SilenceWithSite[]> {
  const now = new Date(nowMs);
  return silencesWithSite(db)
    .where('z.starts_at', '<=', now)
    .where(sql<boolean>`${now}::timestamptz < ${silenceEnd}`)
    .orderBy('z.id')
    .execute();
}

/** Ends a silence now, recording who did; false when it had already ended (nothing changes). */
export async function expireSilence(
  db: Kysely<Database>,
  id: number,
  by: string,
  nowMs: number,
): Promise<boolean> {
  const now = new Date(nowMs);
  const result = await withAlerts(db)
    .updateTable('alert_silences')
    .set({ expired_at: now, expired_by: by })
    .where('id', '=', id)
    .where('expired_at', 'is', null)
    .where('ends_at', '>', now)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Which of `uids` name silences of this database (in any state). */
export async function knownSilenceUids(db: Kysely<Database>, uids: readonly string[]): Promise<Set<string>> {
  // Only well-formed uuids reach the query: a comment in Alertmanager is anyone's text.
  const wellFormed = [...new Set(uids)].filter((u) => UUID.test(u));
  if (wellFormed.length === 0) return new Set();
  const rows = await withAlerts(db)
    .selectFrom('alert_silences')
    .select('uid')
    .where('uid', 'in', wellFormed)
    .execute();
  return new Set(rows.map((r) => r.uid));
}

/** Deletes silences that ended before `beforeMs` (the alert history's retention). */
export async function pruneEndedSilences(db: Kysely<Database>, beforeMs: number): Promise<number> {
  const result = await withAlerts(db)
    .deleteFrom('alert_silences')
    .where(sql<boolean>`LEAST(ends_at, expired_at) < ${new Date(beforeMs)}::timestamptz`)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
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

/** The SQL form of `silencesOf` (src/alerting/silences.ts) for one alert at one instant: ids, ascending. */
export async function silencesHolding(
  db: Kysely<Database>,
  alert: { siteId: number; alertname: string },
  atMs: number,
): Promise<number[]> {
  const { rows } = await sql<{ id: number }>`
    SELECT c.id FROM (SELECT ${alert.siteId}::integer AS site_id, ${alert.alertname}::text AS alertname) a
    CROSS JOIN LATERAL (${coveringSilences(new Date(atMs))}) c
    ORDER BY c.id`.execute(db);
  return rows.map((r) => r.id);
}

/** One alert's announcements, oldest first, with what became of them: for operators and tests. */
export async function listNotifications(
  db: Kysely<Database>,
  alertId: number,
): Promise<Selectable<AlertNotificationsTable>[]> {
  return withAlerts(db)
    .selectFrom('alert_notifications')
    .selectAll()
    .where('alert_id', '=', alertId)
    .orderBy('id')
    .execute();
}
