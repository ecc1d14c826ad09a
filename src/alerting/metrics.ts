import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { FiringAlertRef, ReceiverKind } from '../storage/alerts.ts';
import type { AlertObserver } from './engine.ts';
import { isSilenced, type Silence } from './silences.ts';

const FIRING_LABELS = ['alertname', 'site', 'severity'] as const;

/** What the alerting metrics read at scrape time. */
export interface AlertMetricsSource {
  isLeader: boolean;
  currentFiring(): Promise<FiringAlertRef[]>;
  activeSilences(nowMs?: number): Promise<Silence[]>;
}

const labelsOf = (l: Record<string, string>) => ({
  alertname: l.alertname ?? '',
  site: l.site ?? '',
  severity: l.severity ?? '',
});

/**
 * Registers the alerting metrics on hashwatt's registry and returns the observer that feeds the
 * counters. `source` is read lazily, at scrape time.
 */
export function registerAlertMetrics(
  registry: Registry,
  source: () => AlertMetricsSource | undefined,
): AlertObserver {
  const registers = [registry];
  new Gauge({
    name: 'hashwatt_alerts_firing',
    help: 'Built-in alert engine: 1 per firing alert (every replica reports the same, from the database).',
    labelNames: FIRING_LABELS,
    registers,
    async collect() {
      const firing = (await source()?.currentFiring()) ?? [];
      this.reset();
      for (const a of firing) this.inc(labelsOf(a.labels));
    },
  });
  // A gauge of its own rather than a `silenced` label on hashwatt_alerts_firing: a silence starting
  // or ending would otherwise end one series and begin another, and `for` clauses on the firing
  // series would start again. `hashwatt_alerts_firing unless hashwatt_alerts_silenced` is what pages.
  new Gauge({
    name: 'hashwatt_alerts_silenced',
    help: 'Built-in alert engine: 1 per firing alert that a silence holds now (its notifications are suppressed).',
    labelNames: FIRING_LABELS,
    registers,
    async collect() {
      const engine = source();
      this.reset();
      if (!engine) return;
      const nowMs = Date.now();
      const [firing, silences] = await Promise.all([engine.currentFiring(), engine.activeSilences(nowMs)]);
      if (silences.length === 0) return;
      for (const a of firing) if (isSilenced(a, silences, nowMs)) this.inc(labelsOf(a.labels));
    },
  });
  new Gauge({
    name: 'hashwatt_alert_silences_active',
    help: 'Alert silences in force now (every site or one, every alert or one).',
    registers,
    async collect() {
      this.set((await source()?.activeSilences())?.length ?? 0);
    },
  });
  new Gauge({
    name: 'hashwatt_alerting_leader',
    help: '1 on the replica that evaluates alerts (holds the advisory lock), 0 on the others.',
    registers,
    collect() {
      this.set(source()?.isLeader ? 1 : 0);
    },
  });
  const evaluationSeconds = new Histogram({
    name: 'hashwatt_alert_evaluation_duration_seconds',
    help: 'Time to evaluate every alert rule on every site and write the changes.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  const evaluationFailures = new Counter({
    name: 'hashwatt_alert_evaluation_failures_total',
    help: 'Alert evaluations that failed (database unavailable, leadership lost).',
    registers,
  });
  const deliveries = new Counter({
    name: 'hashwatt_alert_notifications_total',
    help: 'Alert notification attempts by receiver (alertmanager, webhook) and outcome (delivered, failed, rejected).',
    labelNames: ['receiver', 'outcome'] as const,
    registers,
  });
  for (const receiver of ['alertmanager', 'webhook'] as ReceiverKind[]) {
    for (const outcome of ['delivered', 'failed', 'rejected']) deliveries.inc({ receiver, outcome }, 0);
  }
  return {
    evaluated: (seconds) => evaluationSeconds.observe(seconds),
    evaluationFailed: () => evaluationFailures.inc(),
    delivered: (receiver, outcome) => deliveries.inc({ receiver, outcome }),
  };
}
