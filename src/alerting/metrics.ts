import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ReceiverKind } from '../storage/alerts.ts';
import type { AlertObserver } from './engine.ts';

const FIRING_LABELS = ['alertname', 'site', 'severity'] as const;

/** What the alerting metrics read at scrape time. */
export interface AlertMetricsSource {
  isLeader: boolean;
  firingLabels(): Promise<Record<string, string>[]>;
}

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
      const labels = (await source()?.firingLabels()) ?? [];
      this.reset();
      for (const l of labels) {
        this.inc({ alertname: l.alertname ?? '', site: l.site ?? '', severity: l.severity ?? '' });
      }
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
