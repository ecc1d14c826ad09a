import type { AlertRowState, AlertWithSite } from '../storage/alerts.ts';
import type { SiteKind } from '../storage/schema.ts';

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
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function viewAlert(row: AlertWithSite): AlertView {
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
  };
}
