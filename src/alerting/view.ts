import {
  type AlertRowState,
  type AlertWithSite,
  acknowledgementOf,
  type SilenceWithSite,
} from '../storage/alerts.ts';
import type { SiteKind } from '../storage/schema.ts';
import { type Silence, type SilenceState, silenceEndMs, silenceState } from './silences.ts';

/** Who acknowledged an episode, when and why, as the API shows it. */
export interface AcknowledgementView {
  /** The named token's name, or "admin" for the admin token. */
  by: string;
  at: string;
  comment: string | null;
}

/** An alert as the API and webhooks show it. */
export interface AlertView {
  id: number;
  alertname: string;
  severity: string;
  state: AlertRowState;
  site: { id: number; name: string; kind: SiteKind };
  /** The measured value and its threshold, in the rule's unit (docs/alerting.md). */
  value: number | null;
  threshold: number | null;
  /** When the condition was first met (pending since). */
  started_at: string;
  fired_at: string | null;
  resolved_at: string | null;
  last_notified_at: string | null;
  summary: string | null;
  description: string | null;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Null until someone acknowledges the firing episode; kept on the episode once it resolves. */
  acknowledgement: AcknowledgementView | null;
  /** Ids of the silences holding the alert now (empty when none does, and for a resolved episode). */
  silenced_by: number[];
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function viewAlert(row: AlertWithSite): AlertView {
  const ack = acknowledgementOf(row);
  return {
    id: row.id,
    alertname: row.alertname,
    severity: row.severity,
    state: row.state,
    site: { id: row.site_id, name: row.site_name, kind: row.site_kind },
    value: row.value,
    threshold: row.threshold,
    started_at: row.started_at.toISOString(),
    fired_at: iso(row.fired_at),
    resolved_at: iso(row.resolved_at),
    last_notified_at: iso(row.last_notified_at),
    summary: row.annotations.summary ?? null,
    description: row.annotations.description ?? null,
    labels: row.labels,
    annotations: row.annotations,
    acknowledgement: ack && { by: ack.by, at: new Date(ack.atMs).toISOString(), comment: ack.comment },
    silenced_by: row.silenced_by,
  };
}

/** A silence as the API shows it. */
export interface SilenceView {
  id: number;
  /** `active` while in force, `expired` once ended (at `ends_at`, or early at `expired_at`). */
  state: SilenceState;
  /** Null: every site. */
  site: { id: number; name: string } | null;
  /** Null: every alert. */
  alertname: string | null;
  starts_at: string;
  /** The end it was created with. */
  ends_at: string;
  /** When it was expired early, and by whom; null otherwise. */
  expired_at: string | null;
  expired_by: string | null;
  /** When it stops (stopped) holding: the earlier of `ends_at` and `expired_at`. */
  effective_ends_at: string;
  comment: string;
  /** The named token's name, or "admin". */
  created_by: string;
  created_at: string;
}

/** The pure rules' form of a silence row (src/alerting/silences.ts). */
export function silenceOf(row: SilenceWithSite): Silence {
  return {
    id: row.id,
    siteId: row.site_id,
    alertname: row.alertname,
    startsAtMs: row.starts_at.getTime(),
    endsAtMs: row.ends_at.getTime(),
    expiredAtMs: row.expired_at?.getTime() ?? null,
  };
}

export function viewSilence(row: SilenceWithSite, nowMs: number): SilenceView {
  const silence = silenceOf(row);
  return {
    id: row.id,
    state: silenceState(silence, nowMs),
    site: row.site_id === null ? null : { id: row.site_id, name: row.site_name ?? '' },
    alertname: row.alertname,
    starts_at: row.starts_at.toISOString(),
    ends_at: row.ends_at.toISOString(),
    expired_at: iso(row.expired_at),
    expired_by: row.expired_by,
    effective_ends_at: new Date(silenceEndMs(silence)).toISOString(),
    comment: row.comment,
    created_by: row.created_by,
    created_at: row.created_at.toISOString(),
  };
}
