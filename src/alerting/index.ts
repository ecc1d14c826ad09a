import type { Registry } from 'prom-client';
import type { FleetReader } from '../fleet/index.ts';
import type { Logger } from '../log.ts';
import type { Storage } from '../storage/database.ts';
import { AlertEngine } from './engine.ts';
import { AdvisoryLockLease, type LeaderLease, singleProcessLease } from './leader.ts';
import { registerAlertMetrics } from './metrics.ts';
import { DEFAULT_RETRY, type RetryPolicy } from './notify.ts';

export { AlertEngine } from './engine.ts';
export { ALERT_LOCK } from './leader.ts';
export { alertRoutes } from './routes.ts';
export { ALERT_NAMES, ALERT_RULES, type AlertName } from './rules.ts';

export interface AlertingDeps {
  storage: Storage;
  fleet: FleetReader;
  logger: Logger;
  registry: Registry;
  /** Postgres: replicas elect the evaluator with an advisory lock. Unset (PGlite): this process evaluates. */
  databaseUrl: string | undefined;
  intervalMs: number;
  alertmanagerUrls: readonly string[];
  webhookUrls: readonly string[];
  retentionDays: number;
  /** The replica's job lease, shared with its other background work; default one of its own. */
  lease?: LeaderLease;
}

/** Knobs tests turn; production uses the defaults. */
export interface AlertingTuning {
  /** Overrides HASHWATT_ALERT_INTERVAL_S. */
  intervalMs?: number;
  /** Re-send of firing alerts to Alertmanager (default 60 s). */
  resendMs?: number;
  retry?: Partial<RetryPolicy>;
  requestTimeoutMs?: number;
  pollMs?: number;
  stopGraceMs?: number;
}

/** Builds the alert engine of one replica with its lease and metrics; call start() once serving. */
export function createAlerting(deps: AlertingDeps, tuning: AlertingTuning = {}): AlertEngine {
  const lease =
    deps.lease ??
    (deps.storage.backend === 'postgres' && deps.databaseUrl
      ? new AdvisoryLockLease(deps.databaseUrl, deps.logger)
      : singleProcessLease());
  let engine: AlertEngine | undefined;
  const observer = registerAlertMetrics(deps.registry, () => engine);
  engine = new AlertEngine({
    storage: deps.storage,
    fleet: deps.fleet,
    logger: deps.logger,
    lease,
    intervalMs: tuning.intervalMs ?? deps.intervalMs,
    alertmanagerUrls: deps.alertmanagerUrls,
    webhookUrls: deps.webhookUrls,
    retentionDays: deps.retentionDays,
    resendMs: tuning.resendMs ?? 60_000,
    retry: { ...DEFAULT_RETRY, ...tuning.retry },
    requestTimeoutMs: tuning.requestTimeoutMs ?? 10_000,
    pollMs: tuning.pollMs ?? 1_000,
    stopGraceMs: tuning.stopGraceMs ?? 2_000,
    observer,
  });
  return engine;
}
