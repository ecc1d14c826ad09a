/**
 * The agent's own health on a local `/metrics`, for the site's Prometheus: polls and failures per
 * collector and per target, spool depth and bytes, delivery counters and the last acknowledgement.
 * The agent's own Registry; gauges of current state are computed at scrape (collect()), counters
 * fed as things happen. Per-target series are bounded by the targets in site.yaml (and can be
 * turned off with `health.per_target: false` on very large sites).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { DeliveryCounters } from './delivery/counters.ts';
import type { SpoolStats } from './spool.ts';

/** What the agent knows about one target now. */
export interface TargetHealth {
  readonly collector: string;
  readonly target: string;
  up: boolean | null;
  polls: number;
  failures: number;
  lastSuccessMs: number | null;
  lastError: string | null;
  firmware: string | null;
  model: string | null;
}

export interface HealthSources {
  targets: () => Iterable<TargetHealth>;
  delivery: () => DeliveryCounters;
  spool: () => SpoolStats;
  spoolCapacityBytes: number;
  lastAckMs: () => number | null;
  transport: () => string;
  unauthorized: () => boolean;
  pollsActive: () => number;
  perTarget: boolean;
}

export interface AgentMetrics {
  registry: Registry;
  pollFinished(collector: string, ok: boolean, reason: string | null, seconds: number): void;
  pollSkipped(collector: string): void;
  repaired(repair: string): void;
  valueDropped(reason: string): void;
}

const LABEL_COLLECTOR = ['collector'] as const;

export function createAgentMetrics(sources: HealthSources): AgentMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'hashwatt_agent_' });
  const registers = [registry];

  const polls = new Counter({
    name: 'hashwatt_agent_polls_total',
    help: 'Polls finished, by collector and outcome (ok, failed).',
    labelNames: ['collector', 'outcome'] as const,
    registers,
  });
  const failures = new Counter({
    name: 'hashwatt_agent_poll_failures_total',
    help: 'Failed polls by collector and reason (refused, timeout, reset, truncated, malformed…).',
    labelNames: ['collector', 'reason'] as const,
    registers,
  });
  const duration = new Histogram({
    name: 'hashwatt_agent_poll_duration_seconds',
    help: 'Time one poll of one target took, failures included.',
    labelNames: LABEL_COLLECTOR,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const skipped = new Counter({
    name: 'hashwatt_agent_polls_skipped_total',
    help: 'Polls not started because the previous poll of the target was still queued or running.',
    labelNames: LABEL_COLLECTOR,
    registers,
  });
  const repairs = new Counter({
    name: 'hashwatt_agent_reply_repairs_total',
    help: 'Malformed device replies repaired, by repair (trailing_comma, missing_comma, non_finite…).',
    labelNames: ['repair'] as const,
    registers,
  });
  const dropped = new Counter({
    name: 'hashwatt_agent_values_dropped_total',
    help: 'Values left out of readings because the service would refuse them (out_of_range, sentinel…).',
    labelNames: ['reason'] as const,
    registers,
  });

  new Gauge({
    name: 'hashwatt_agent_targets',
    help: 'Targets configured, and those whose last poll failed (state="down"), by collector.',
    labelNames: ['collector', 'state'] as const,
    registers,
    collect() {
      this.reset();
      const counts = new Map<string, { up: number; down: number; unknown: number }>();
      for (const t of sources.targets()) {
        const c = counts.get(t.collector) ?? { up: 0, down: 0, unknown: 0 };
        if (t.up === null) c.unknown++;
        else if (t.up) c.up++;
        else c.down++;
        counts.set(t.collector, c);
      }
      for (const [collector, c] of counts) {
        this.set({ collector, state: 'up' }, c.up);
        this.set({ collector, state: 'down' }, c.down);
        this.set({ collector, state: 'unknown' }, c.unknown);
      }
    },
  });
  if (sources.perTarget) {
    new Gauge({
      name: 'hashwatt_agent_target_up',
      help: 'Whether the last poll of the target succeeded (1) or failed (0).',
      labelNames: ['collector', 'target'] as const,
      registers,
      collect() {
        this.reset();
        for (const t of sources.targets())
          if (t.up !== null) this.set({ collector: t.collector, target: t.target }, t.up ? 1 : 0);
      },
    });
    new Counter({
      name: 'hashwatt_agent_target_poll_failures_total',
      help: 'Failed polls of the target since the agent started.',
      labelNames: ['collector', 'target'] as const,
      registers,
      collect() {
        this.reset();
        for (const t of sources.targets()) this.inc({ collector: t.collector, target: t.target }, t.failures);
      },
    });
    new Gauge({
      name: 'hashwatt_agent_target_last_success_timestamp_seconds',
      help: 'When the target last answered a poll.',
      labelNames: ['collector', 'target'] as const,
      registers,
      collect() {
        this.reset();
        for (const t of sources.targets())
          if (t.lastSuccessMs !== null)
            this.set({ collector: t.collector, target: t.target }, t.lastSuccessMs / 1000);
      },
    });
  }

  new Gauge({
    name: 'hashwatt_agent_polls_active',
    help: 'Polls running now.',
    registers,
    collect() {
      this.set(sources.pollsActive());
    },
  });
  new Counter({
    name: 'hashwatt_agent_readings_total',
    help: 'Readings by delivery stage since start: read (put in the spool), sent (every transmission), acknowledged, duplicates, rejected, retried, dropped.',
    labelNames: ['stage'] as const,
    registers,
    collect() {
      this.reset();
      const c = sources.delivery();
      const s = sources.spool();
      this.inc({ stage: 'read' }, c.generated);
      this.inc({ stage: 'sent' }, c.sent);
      this.inc({ stage: 'acknowledged' }, c.acknowledged);
      this.inc({ stage: 'duplicates' }, c.duplicates);
      this.inc({ stage: 'rejected' }, c.rejected);
      this.inc({ stage: 'retried' }, c.retried);
      this.inc({ stage: 'dropped' }, s.dropped);
    },
  });
  new Counter({
    name: 'hashwatt_agent_delivery_failures_total',
    help: 'Failed delivery attempts since start (network errors, 429/5xx, lost connections).',
    registers,
    collect() {
      this.reset();
      this.inc(sources.delivery().failures);
    },
  });
  const spoolGauge = (name: string, help: string, read: (s: SpoolStats) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(sources.spool()));
      },
    });
  const spoolCounter = (name: string, help: string, read: (s: SpoolStats) => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read(sources.spool()));
      },
    });
  spoolGauge(
    'hashwatt_agent_spool_readings',
    'Readings in the spool not yet acknowledged.',
    (s) => s.readings,
  );
  spoolGauge('hashwatt_agent_spool_bytes', 'Bytes of spool segment files.', (s) => s.bytes);
  spoolGauge('hashwatt_agent_spool_segments', 'Spool segment files.', (s) => s.segments);
  spoolGauge(
    'hashwatt_agent_spool_recovered_readings',
    'Readings found unacknowledged in the spool at start (resent).',
    (s) => s.recovered,
  );
  spoolCounter(
    'hashwatt_agent_spool_dropped_readings_total',
    'Readings dropped because the spool was full (oldest first), since start.',
    (s) => s.dropped,
  );
  spoolCounter(
    'hashwatt_agent_spool_durable_readings_total',
    'Readings appended since start that are fdatasync’d to disk.',
    (s) => s.durable,
  );
  spoolCounter(
    'hashwatt_agent_spool_write_errors_total',
    'Spool writes that failed (disk full, I/O error).',
    (s) => s.writeErrors,
  );
  new Gauge({
    name: 'hashwatt_agent_spool_capacity_bytes',
    help: 'The spool bound (spool.max_bytes).',
    registers,
    collect() {
      this.set(sources.spoolCapacityBytes);
    },
  });
  new Gauge({
    name: 'hashwatt_agent_last_ack_timestamp_seconds',
    help: 'When hashwatt last acknowledged readings (0: never since start).',
    registers,
    collect() {
      this.set((sources.lastAckMs() ?? 0) / 1000);
    },
  });
  new Gauge({
    name: 'hashwatt_agent_transport',
    help: 'The transport carrying readings now (1 for the one in use): ws, or http (configured, or the fallback).',
    labelNames: ['transport'] as const,
    registers,
    collect() {
      this.reset();
      this.set({ transport: sources.transport() }, 1);
    },
  });
  new Gauge({
    name: 'hashwatt_agent_unauthorized',
    help: '1 while hashwatt refuses the site token (rotated, or the site deleted): readings are kept in the spool.',
    registers,
    collect() {
      this.set(sources.unauthorized() ? 1 : 0);
    },
  });

  return {
    registry,
    pollFinished(collector, ok, reason, seconds) {
      polls.inc({ collector, outcome: ok ? 'ok' : 'failed' });
      if (!ok) failures.inc({ collector, reason: reason ?? 'unknown' });
      duration.observe({ collector }, seconds);
    },
    pollSkipped(collector) {
      skipped.inc({ collector });
    },
    repaired(repair) {
      repairs.inc({ repair });
    },
    valueDropped(reason) {
      dropped.inc({ reason });
    },
  };
}

/** Serves `/metrics` (and `/healthz`) on the configured address; resolves with the URL. */
export async function serveHealth(
  registry: Registry,
  listen: { host: string; port: number },
): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (req.method === 'GET' && (url === '/metrics' || url.startsWith('/metrics?'))) {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        (error: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`${error.message}\n`);
        },
      );
      return;
    }
    if (req.method === 'GET' && url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found: /metrics\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
