import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { FleetReader } from '../fleet/index.ts';
import type { MetricsEndpoint } from '../http/app.ts';
import type { LatestStateObserver, LatestStateWriter } from '../ingest/latest-state.ts';
import type { IngestObserver, Transport } from '../ingest/pipeline.ts';
import type { GroupCommitWriter, WriterObserver } from '../ingest/writer.ts';
import type { Storage } from '../storage/database.ts';
import { registerDeviceGauges } from './device-gauges.ts';
import { registerFleetGauges } from './fleet-gauges.ts';

export interface MetricsDeps {
  fleet: FleetReader;
  storage: Storage;
  writer: () => GroupCommitWriter | undefined;
  latest: () => LatestStateWriter | undefined;
  streams: () => number;
  ready: () => Promise<boolean>;
  /** Per-device series for sites with at most this many devices; 0 turns them off. */
  perDeviceMax?: number;
}

export interface Metrics {
  registry: Registry;
  ingestObserver: IngestObserver;
  writerObserver: WriterObserver;
  latestObserver: LatestStateObserver;
  endpoint: MetricsEndpoint;
}

/** hashwatt's own registry: service health fed by observers, fleet gauges computed at scrape. */
export function createMetrics(deps: MetricsDeps): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const readings = new Counter({
    name: 'hashwatt_readings_ingested_total',
    help: 'Readings received, by transport and outcome (accepted, duplicate, rejected).',
    labelNames: ['transport', 'outcome'] as const,
    registers,
  });
  const samples = new Counter({
    name: 'hashwatt_samples_ingested_total',
    help: 'Metric values (samples) in accepted readings.',
    labelNames: ['transport'] as const,
    registers,
  });
  const rejected = new Counter({
    name: 'hashwatt_readings_rejected_total',
    help: 'Rejected readings by reason (the rejection code).',
    labelNames: ['transport', 'reason'] as const,
    registers,
  });
  const duplicateSamples = new Counter({
    name: 'hashwatt_samples_duplicate_total',
    help: 'Samples received that were already stored (a retry, or a metric repeated for its device and instant).',
    labelNames: ['transport'] as const,
    registers,
  });
  const unmapped = new Counter({
    name: 'hashwatt_ingest_unmapped_total',
    help: 'Series (remote_write), fields (line protocol) or data points (OTLP) with no mapping: counted, not stored. Names per site at GET /api/v1/sites/:id/unmapped.',
    labelNames: ['site', 'protocol'] as const,
    registers,
  });
  const requests = new Counter({
    name: 'hashwatt_ingest_requests_total',
    help: 'Ingest requests (HTTP) and frames (WebSocket) answered, by status.',
    labelNames: ['transport', 'status'] as const,
    registers,
  });
  const requestSeconds = new Histogram({
    name: 'hashwatt_ingest_request_duration_seconds',
    help: 'Time from receiving a request or frame to answering it (after commit).',
    labelNames: ['transport'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const batchReadings = new Histogram({
    name: 'hashwatt_write_batch_readings',
    help: 'Readings per group-commit transaction.',
    buckets: [1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 20000],
    registers,
  });
  const batchRequests = new Histogram({
    name: 'hashwatt_write_batch_requests',
    help: 'Requests and frames sharing one group-commit transaction.',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers,
  });
  const batchSeconds = new Histogram({
    name: 'hashwatt_write_batch_duration_seconds',
    help: 'Duration of a group-commit transaction, commit included.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  const batchFailures = new Counter({
    name: 'hashwatt_write_batches_failed_total',
    help: 'Group-commit transactions that failed, by reason (unavailable, error).',
    labelNames: ['reason'] as const,
    registers,
  });
  for (const reason of ['unavailable', 'error']) batchFailures.inc({ reason }, 0);
  for (const transport of ['http', 'ws'] as const) {
    for (const outcome of ['accepted', 'duplicate', 'rejected']) readings.inc({ transport, outcome }, 0);
    samples.inc({ transport }, 0);
    requestSeconds.zero({ transport });
  }

  new Gauge({
    name: 'hashwatt_write_queue_readings',
    help: 'Readings admitted and not yet committed.',
    registers,
    collect() {
      this.set(deps.writer()?.depth.readings ?? 0);
    },
  });
  new Gauge({
    name: 'hashwatt_write_queue_limit_readings',
    help: 'Readings the write queue admits before refusing (429): about half a second of work at the measured commit rate.',
    registers,
    collect() {
      this.set(deps.writer()?.queueLimit ?? 0);
    },
  });
  new Gauge({
    name: 'hashwatt_write_queue_bytes',
    help: 'Request bytes admitted and not yet committed.',
    registers,
    collect() {
      this.set(deps.writer()?.depth.bytes ?? 0);
    },
  });
  new Gauge({
    name: 'hashwatt_write_transactions_in_flight',
    help: 'Group-commit transactions under way.',
    registers,
    collect() {
      this.set(deps.writer()?.depth.transactions ?? 0);
    },
  });
  new Gauge({
    name: 'hashwatt_latest_state_lag_seconds',
    help: 'How far the written latest state of devices trails committed readings (0 when caught up).',
    registers,
    collect() {
      this.set(deps.latest()?.lagSeconds() ?? 0);
    },
  });
  new Gauge({
    name: 'hashwatt_latest_state_pending_devices',
    help: 'Devices whose latest state is committed as readings but not yet written to device_latest.',
    registers,
    collect() {
      this.set(deps.latest()?.pendingDevices ?? 0);
    },
  });
  const latestFlushes = new Counter({
    name: 'hashwatt_latest_state_flushes_total',
    help: 'Latest-state flushes by outcome (ok, error); a failed flush is retried with the next.',
    labelNames: ['outcome'] as const,
    registers,
  });
  const latestFlushSeconds = new Histogram({
    name: 'hashwatt_latest_state_flush_duration_seconds',
    help: 'Time to write one flush of latest state.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  new Gauge({
    name: 'hashwatt_websocket_connections',
    help: 'Open agent WebSocket connections.',
    registers,
    collect() {
      this.set(deps.streams());
    },
  });
  new Gauge({
    name: 'hashwatt_db_pool_connections',
    help: 'Database pool connections by state (total, idle, waiting); 1 total for embedded PGlite.',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const stats = deps.storage.poolStats() ?? { total: 1, idle: 0, waiting: 0 };
      this.set({ state: 'total' }, stats.total);
      this.set({ state: 'idle' }, stats.idle);
      this.set({ state: 'waiting' }, stats.waiting);
    },
  });
  new Gauge({
    name: 'hashwatt_ready',
    help: '1 when the service is ready (database reachable, migrations applied).',
    registers,
    async collect() {
      this.set((await deps.ready()) ? 1 : 0);
    },
  });
  registerFleetGauges(registry, deps.fleet);
  if (deps.perDeviceMax) registerDeviceGauges(registry, deps.storage, deps.fleet.defaults, deps.perDeviceMax);

  const ingestObserver: IngestObserver = {
    batchIngested({
      transport,
      accepted,
      acceptedSamples,
      duplicates,
      duplicateSamples: repeated,
      rejected: rejections,
    }) {
      readings.inc({ transport, outcome: 'accepted' }, accepted);
      readings.inc({ transport, outcome: 'duplicate' }, duplicates);
      readings.inc({ transport, outcome: 'rejected' }, rejections.length);
      samples.inc({ transport }, acceptedSamples);
      duplicateSamples.inc({ transport }, repeated);
      for (const r of rejections) rejected.inc({ transport, reason: r.code });
    },
    unmapped(site, protocol, count) {
      unmapped.inc({ site: site.name, protocol }, count);
    },
    requestCompleted(transport: Transport, status: number, seconds: number) {
      requests.inc({ transport, status: String(status) });
      requestSeconds.observe({ transport }, seconds);
    },
  };
  const writerObserver: WriterObserver = {
    batchCommitted(n, requestCount, seconds) {
      batchReadings.observe(n);
      batchRequests.observe(requestCount);
      batchSeconds.observe(seconds);
    },
    batchFailed(reason) {
      batchFailures.inc({ reason });
    },
  };
  const latestObserver: LatestStateObserver = {
    flushed(_devices, seconds) {
      latestFlushes.inc({ outcome: 'ok' });
      latestFlushSeconds.observe(seconds);
    },
    flushFailed() {
      latestFlushes.inc({ outcome: 'error' });
    },
  };
  return {
    registry,
    ingestObserver,
    writerObserver,
    latestObserver,
    endpoint: { contentType: registry.contentType, render: () => registry.metrics() },
  };
}
