import { OTLPMetricExporter as OtlpJsonExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OtlpProtobufExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  MeterProvider,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../../src/service.ts';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import { FaultProxy } from '../support/fault-proxy.ts';
import { adminRequest, createSite, startTestService } from '../support/service.ts';
import { instantKey, readCounter, readSiteDevices, readSiteInstants } from './support/hashwatt-state.ts';

// The OpenTelemetry JS SDK (MeterProvider, PeriodicExportingMetricReader) exporting to hashwatt
// with the official OTLP/HTTP exporters, protobuf and JSON, as a GPU host agent would: the
// semantic conventions' hw.* metrics, one of hashwatt's own names, and a fault proxy in between
// that is transparent until a test arms it.

const METRICS_PATH = '/v1/metrics';
const MODEL = 'NVIDIA H100 80GB HBM3';
/** ExportResultCode.SUCCESS (@opentelemetry/core), the code of an export that was accepted. */
const EXPORT_SUCCESS = 0;

type Exported = Parameters<PushMetricExporter['export']>;

/**
 * Passes every export on to the real exporter and keeps what went out (the SDK's timestamps are
 * its own: the test learns them here) and how it ended. `rewrite` changes the data first.
 */
class RecordingExporter implements PushMetricExporter {
  readonly exports: { metrics: ResourceMetrics; code: number }[] = [];
  readonly #inner: PushMetricExporter;
  readonly #rewrite: (metrics: ResourceMetrics) => ResourceMetrics;

  constructor(inner: PushMetricExporter, rewrite: (metrics: ResourceMetrics) => ResourceMetrics = (m) => m) {
    this.#inner = inner;
    this.#rewrite = rewrite;
  }

  export(metrics: Exported[0], done: Exported[1]): void {
    const sent = this.#rewrite(metrics);
    this.#inner.export(sent, (result) => {
      this.exports.push({ metrics: sent, code: result.code });
      done(result);
    });
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  selectAggregationTemporality: PushMetricExporter['selectAggregationTemporality'] = (type) =>
    this.#inner.selectAggregationTemporality!(type);
}

/** One GPU host's agent: its meters, readings recorded once, and a reader that exports on flush. */
function startAgent(host: string, exporter: RecordingExporter) {
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'host.name': host, 'service.name': 'gpu-agent' }),
    // Exports only when the test flushes: the interval is far beyond the test.
    readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 600_000 })],
  });
  const meter = provider.getMeter('e2e-gpu-agent');
  const power = meter.createGauge('hw.power', { unit: 'W' });
  const utilization = meter.createGauge('hw.gpu.utilization', { unit: '1' });
  const memory = meter.createGauge('hw.gpu.memory.usage', { unit: 'By' });
  const temperature = meter.createGauge('hw.temperature', { unit: 'Cel' });
  const energy = meter.createCounter('hw.energy', { unit: 'J' });
  const smClock = meter.createGauge('gpu_sm_clock_mhz', { unit: 'MHz' });
  for (const index of [0, 1]) {
    const gpu = { 'hw.id': `gpu${index}`, 'hw.type': 'gpu', 'hw.model': MODEL };
    power.record(512.25 - 23.75 * index, gpu);
    utilization.record(0.875 - 0.375 * index, gpu);
    memory.record(42_949_672_960 + 1_073_741_824 * index, gpu);
    energy.add(1_234_567.5 + 765_432.5 * index, gpu);
    smClock.record(1980 - 15 * index, gpu);
    // GPU sensors are host-level readings in hashwatt (the host's hottest), of a host of kind `other`.
    temperature.record(61 + 3.5 * index, { ...gpu, 'hashwatt.kind': 'other' });
  }
  // Another task than "general": unmapped, counted.
  utilization.record(0.125, { 'hw.id': 'gpu0', 'hw.type': 'gpu', 'hw.gpu.task': 'encoder' });
  return provider;
}

const attribute = (attributes: Record<string, unknown>, name: string) =>
  typeof attributes[name] === 'string' ? (attributes[name] as string) : undefined;

/**
 * What hashwatt must store for what was exported (docs/protocols/otlp.md), as
 * (device, µs) → column → value, and how many points are unmapped. `real` columns rounded.
 */
function expectedOf(exported: readonly ResourceMetrics[]) {
  const cells = new Map<string, Record<string, number>>();
  let unmapped = 0;
  const put = (device: string, tsUs: number, column: string, value: number, combine?: 'max') => {
    const key = instantKey(device, tsUs);
    const values = cells.get(key) ?? {};
    values[column] = combine === 'max' && column in values ? Math.max(values[column]!, value) : value;
    cells.set(key, values);
  };
  for (const rm of exported) {
    const host = attribute(rm.resource.attributes, 'host.name')!;
    for (const point of rm.scopeMetrics.flatMap((s) =>
      s.metrics.flatMap((m) => m.dataPoints.map((p) => ({ name: m.descriptor.name, p }))),
    )) {
      const { name, p } = point;
      const value = p.value as number;
      // time_unix_nano floored to the microsecond.
      const tsUs = p.endTime[0] * 1_000_000 + Math.floor(p.endTime[1] / 1000);
      const device = `${host}/${attribute(p.attributes, 'hw.id')}`;
      if (name === 'hw.power') put(device, tsUs, 'power_w', value);
      else if (name === 'hw.gpu.memory.usage') put(device, tsUs, 'gpu_mem_used_bytes', value);
      else if (name === 'hw.energy') put(device, tsUs, 'energy_j_total', value);
      else if (name === 'gpu_sm_clock_mhz') put(device, tsUs, 'gpu_sm_clock_mhz', value);
      else if (name === 'hw.temperature') put(host, tsUs, 'temp_c', Math.fround(value), 'max');
      else if (name === 'hw.gpu.utilization' && attribute(p.attributes, 'hw.gpu.task') === undefined)
        put(device, tsUs, 'gpu_util_pct', Math.fround(value * 100));
      else unmapped++;
    }
  }
  return { cells, unmapped };
}

/** Sub-microsecond digits on every point's time, as a Collector forwarding ns timestamps sends them. */
function withNanoseconds(metrics: ResourceMetrics): ResourceMetrics {
  return {
    ...metrics,
    scopeMetrics: metrics.scopeMetrics.map((s) => ({
      ...s,
      metrics: s.metrics.map((m) => ({
        ...m,
        // The SDK's collection time is whole milliseconds: + 999 ns must floor, not round, to the µs.
        dataPoints: m.dataPoints.map((p) => ({ ...p, endTime: [p.endTime[0], p.endTime[1] + 999] })),
      })),
    })) as ResourceMetrics['scopeMetrics'],
  };
}

describe('the OpenTelemetry JS SDK exporting OTLP/HTTP to hashwatt', () => {
  let db: TestDatabase;
  let service: RunningService;
  let proxy: FaultProxy;
  let siteId: number;
  let token: string;
  const siteName = 'e2e-otlp';
  const providers: MeterProvider[] = [];

  const exporterOptions = () => ({
    url: `${proxy.url}${METRICS_PATH}`,
    headers: { authorization: `Bearer ${token}` },
    timeoutMillis: 15_000,
  });
  const duplicates = () =>
    readCounter(service.url, 'hashwatt_samples_duplicate_total', { transport: 'otlp' });

  /** Exports one collection of a new agent for `host`; returns what went out and how it ended. */
  async function exportOnce(host: string, recording: RecordingExporter) {
    const provider = startAgent(host, recording);
    providers.push(provider);
    await provider.forceFlush();
    expect(recording.exports.map((e) => e.code)).toEqual([EXPORT_SUCCESS]);
    return recording.exports.map((e) => e.metrics);
  }

  /** The stored instants of one host's devices. */
  async function storedOf(host: string) {
    const all = await readSiteInstants(service.storage.db, siteId);
    return new Map(
      [...all]
        .filter(([, i]) => i.device === host || i.device.startsWith(`${host}/`))
        .map(([k, i]) => [k, i]),
    );
  }

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await startTestService(db);
    const created = await createSite(service.url, siteName, 'ai', 100);
    siteId = created.site.id;
    token = created.token;
    proxy = await FaultProxy.start(service.url);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(providers.map((p) => p.shutdown().catch(() => {})));
    await proxy?.close();
    await service?.stop();
    await db?.dispose();
  });

  it('stores hw.* gauges and sums exported as protobuf, as the SDK recorded them', async () => {
    const recording = new RecordingExporter(new OtlpProtobufExporter(exporterOptions()));
    const exported = await exportOnce('otlp-node-01', recording);
    const [request] = proxy.exchanges.filter((e) => e.path === METRICS_PATH);
    expect(request).toMatchObject({
      upstreamStatus: 200,
      headers: expect.objectContaining({ 'content-type': 'application/x-protobuf' }),
    });

    const expected = expectedOf(exported);
    const stored = await storedOf('otlp-node-01');
    expect(new Map([...stored].map(([k, i]) => [k, i.values]))).toEqual(expected.cells);
    for (const instant of stored.values()) expect(instant.rows.readings).toBe(1);
    // The values, spelled out: ratio × 100, the hotter of the two GPU sensors for the host.
    const [gpu0] = [...stored.values()].filter((i) => i.device === 'otlp-node-01/gpu0');
    expect(gpu0?.values).toEqual({
      power_w: 512.25,
      gpu_util_pct: 87.5,
      gpu_mem_used_bytes: 42_949_672_960,
      energy_j_total: 1_234_567.5,
      gpu_sm_clock_mhz: 1980,
    });
    expect([...stored.values()].find((i) => i.device === 'otlp-node-01')?.values).toEqual({ temp_c: 64.5 });

    const devices = await readSiteDevices(service.storage.db, siteId);
    expect(devices.get('otlp-node-01/gpu0')).toEqual({ kind: 'gpu', model: MODEL });
    expect(devices.get('otlp-node-01/gpu1')).toEqual({ kind: 'gpu', model: MODEL });
    expect(devices.get('otlp-node-01')).toMatchObject({ kind: 'other' });

    expect(expected.unmapped).toBe(1);
    const unmapped = await adminRequest(service.url, 'GET', `/api/v1/sites/${siteId}/unmapped`);
    expect(await unmapped.json()).toMatchObject({
      total: 1,
      names: [{ protocol: 'otlp', name: 'hw.gpu.utilization' }],
    });
    expect(
      await readCounter(service.url, 'hashwatt_ingest_unmapped_total', { site: siteName, protocol: 'otlp' }),
    ).toBe(1);
    expect(await duplicates()).toBe(0);
  });

  it('stores the same exported as JSON, nanosecond times floored to the microsecond', async () => {
    const recording = new RecordingExporter(new OtlpJsonExporter(exporterOptions()), withNanoseconds);
    const exported = await exportOnce('otlp-node-02', recording);
    const request = proxy.exchanges.filter((e) => e.path === METRICS_PATH).at(-1)!;
    expect(request.headers['content-type']).toBe('application/json');
    expect(request.upstreamStatus).toBe(200);
    // The body carries the nanoseconds; hashwatt keeps the microsecond below them.
    expect(request.body.toString('utf8')).toMatch(/"timeUnixNano":"\d+999"/);

    const stored = await storedOf('otlp-node-02');
    expect(new Map([...stored].map(([k, i]) => [k, i.values]))).toEqual(expectedOf(exported).cells);
  });

  it('retries an export whose answer was lost (503 + Retry-After), and hashwatt stores it once', async () => {
    proxy.loseAnswers({ path: METRICS_PATH, count: 1 });
    const duplicatesBefore = await duplicates();
    const recording = new RecordingExporter(new OtlpProtobufExporter(exporterOptions()));
    const exported = await exportOnce('otlp-node-03', recording);

    const [lost, resent] = proxy.exchanges.filter((e) => e.path === METRICS_PATH).slice(-2);
    expect([lost, resent].map((e) => [e!.upstreamStatus, e!.answeredStatus, e!.answerLost])).toEqual([
      [200, 503, true],
      [200, 200, false],
    ]);
    expect(resent!.bodySha256).toBe(lost!.bodySha256);

    const expected = expectedOf(exported);
    const stored = await storedOf('otlp-node-03');
    expect(new Map([...stored].map(([k, i]) => [k, i.values]))).toEqual(expected.cells);
    for (const instant of stored.values()) expect(instant.rows.readings).toBe(1);
    // Every sample of the resend was already stored.
    const samples = [...expected.cells.values()].reduce((n, values) => n + Object.keys(values).length, 0);
    expect((await duplicates()) - duplicatesBefore).toBe(samples);
  });
});
