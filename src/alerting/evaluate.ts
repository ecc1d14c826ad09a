import type { SiteState } from '../fleet/site-state.ts';
import type { SiteKind } from '../storage/schema.ts';
import {
  ALERT_RULES,
  type AlertName,
  type AlertRule,
  type Annotations,
  type RuleContext,
  type Severity,
} from './rules.ts';
import { type AlertEpisode, stepAlert } from './state-machine.ts';

/** The labels that identify an alert in Alertmanager; the same as the Prometheus rules' (by site, kind). */
export interface AlertLabels {
  alertname: AlertName;
  site: string;
  kind: SiteKind;
  severity: Severity;
  [name: string]: string;
}

/** An open (pending or firing) alert of one site, as the engine holds it and the alerts table stores it. */
export interface OpenAlert {
  /** Row id in the alerts table. */
  id: number;
  siteId: number;
  alertname: AlertName;
  severity: Severity;
  episode: AlertEpisode;
  threshold: number | null;
  /** Fixed when the episode opens, so its resolution reaches the same Alertmanager alert after a rename. */
  labels: AlertLabels;
  /** From the last evaluation that found the condition met. */
  annotations: Annotations;
}

export type AlertDraft = Omit<OpenAlert, 'id'>;

/** What one evaluation changes; the engine writes these in one transaction, then applies them in memory. */
export type AlertChange =
  | { op: 'open'; draft: AlertDraft; notify: 'firing' | null }
  | { op: 'update'; alert: OpenAlert; notify: 'firing' | null }
  | { op: 'resolve'; alert: OpenAlert; resolvedAtMs: number }
  | { op: 'cancel'; alert: OpenAlert }
  /** The site is gone (deleted): its rows went with it. */
  | { op: 'forget'; alert: OpenAlert };

export function alertKey(siteId: number, alertname: string): string {
  return `${siteId}/${alertname}`;
}

/**
 * Evaluates every rule on every site against the open alerts and returns the changes. Pure: the
 * same snapshot and open alerts give the same changes.
 */
export function planEvaluation(
  sites: readonly SiteState[],
  open: ReadonlyMap<string, OpenAlert>,
  context: RuleContext,
  rules: readonly AlertRule[] = ALERT_RULES,
): AlertChange[] {
  const changes: AlertChange[] = [];
  const seenSites = new Set<number>();
  for (const site of sites) {
    seenSites.add(site.siteId);
    for (const rule of rules) {
      const change = planRule(site, rule, open.get(alertKey(site.siteId, rule.name)), context);
      if (change) changes.push(change);
    }
  }
  for (const alert of open.values()) {
    if (!seenSites.has(alert.siteId)) changes.push({ op: 'forget', alert });
  }
  return changes;
}

function planRule(
  site: SiteState,
  rule: AlertRule,
  prev: OpenAlert | undefined,
  context: RuleContext,
): AlertChange | null {
  const result = rule.evaluate(site, context);
  const timing = { forMs: rule.forMs(site.thresholds), resolveHoldMs: rule.resolveHoldMs(site.thresholds) };
  const step = stepAlert(prev?.episode ?? null, result.condition, result.value, context.nowMs, timing);
  const notify = step.events.includes('firing') ? 'firing' : null;
  const annotations = result.condition === 'met' ? result.annotations : (prev?.annotations ?? {});
  const threshold = result.threshold ?? prev?.threshold ?? null;

  if (!prev) {
    if (!step.next) return null;
    const labels: AlertLabels = {
      alertname: rule.name,
      site: site.name,
      kind: site.kind,
      severity: rule.severity,
    };
    return {
      op: 'open',
      draft: {
        siteId: site.siteId,
        alertname: rule.name,
        severity: rule.severity,
        episode: step.next,
        threshold,
        labels,
        annotations,
      },
      notify,
    };
  }
  if (step.events.includes('resolved')) {
    return {
      op: 'resolve',
      alert: { ...prev, episode: { ...prev.episode, value: result.value } },
      resolvedAtMs: context.nowMs,
    };
  }
  if (step.events.includes('cancelled')) return { op: 'cancel', alert: prev };
  // step.next is set: only resolve and cancel close an open episode.
  return { op: 'update', alert: { ...prev, episode: step.next!, threshold, annotations }, notify };
}
