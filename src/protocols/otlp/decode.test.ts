import { JsonMetricsSerializer, ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  MeterProvider,
  MetricReader,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeOtlp, decodeOtlpJson, decodeOtlpProtobuf, readNanosAsMicros } from './index.ts';

/** Collects on demand: the SDK's own pipeline produces the ResourceMetrics the serializers take. */
class CollectingReader extends MetricReader {
  constructor(temporality: AggregationTemporality = AggregationTemporality.CUMULATIVE) {
    super({ aggregationTemporalitySelector: () => temporality });
  }
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

type Record = (provider: MeterProvider) => void;

/** Real OTLP request bytes, both encodings, from the official OpenTelemetry JS SDK. */
async function request(
  record: Record,
  temporality?: AggregationTemporality,
): Promise<{ proto: Uint8Array; json: Uint8Array }> {
  const reader = new CollectingReader(temporality);
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'host.name': 'gpu-node-07', 'service.name': 'gpu-agent' }),
    readers: [reader],
  });
  record(provider);
  const { resourceMetrics, errors } = await reader.collect();
  expect(errors).toEqual([]);
  await provider.shutdown();
  return serialize(resourceMetrics);
}

function serialize(rm: ResourceMetrics): { proto: Uint8Array; json: Uint8Array } {
  const proto = ProtobufMetricsSerializer.serializeRequest(rm);
  const json = JsonMetricsSerializer.serializeRequest(rm);
  if (proto === undefined || json === undefined) throw new Error('serializer returned nothing');
  return { proto, json };
}

const gpuRecord: Record = (provider) => {
  const meter = provider.getMeter('hashwatt-test');
  const power = meter.createGauge('hw.power', { unit: 'W' });
  const util = meter.createGauge('hw.gpu.utilization', { unit: '1' });
  const energy = meter.createCounter('hw.energy', { unit: 'J' });
  const temp = meter.createGauge('hw.temperature', { unit: 'Cel' });
  const fan = meter.createGauge('hw.fan.speed', { unit: 'rpm' });
  const own = meter.createGauge('chip_temp_c');
  const unknown = meter.createGauge('process.cpu.utilization');
  const hist = meter.createHistogram('http.server.duration');
  for (const gpu of ['0', '3']) {
    power.record(600 + Number(gpu), { 'hw.id': `gpu${gpu}`, 'hw.type': 'gpu', 'hw.model': 'NVIDIA H100' });
    util.record(0.97, { 'hw.id': `gpu${gpu}`, 'hw.type': 'gpu', 'hw.gpu.task': 'general' });
    util.record(0.1, { 'hw.id': `gpu${gpu}`, 'hw.type': 'gpu', 'hw.gpu.task': 'decoder' });
    energy.add(1_000_000, { 'hw.id': `gpu${gpu}`, 'hw.type': 'gpu' });
  }
  temp.record(41, { 'hw.id': 'inlet', 'hw.type': 'temperature' });
  temp.record(67, { 'hw.id': 'cpu0', 'hw.type': 'temperature' });
  fan.record(9000, { 'hw.id': 'fan1', 'hw.type': 'fan' });
  fan.record(9600, { 'hw.id': 'fan2', 'hw.type': 'fan' });
  own.record(72, { device: 's21-017', kind: 'asic', index: '2' });
  unknown.record(0.5);
  hist.record(12);
  hist.record(40);
};

const summarize = (r: ReturnType<typeof decodeOtlpProtobuf>) =>
  Object.fromEntries(
    r.samples.map((s) => [
      `${s.device} ${s.kind ?? '-'} ${s.metric}${s.index === undefined ? '' : `[${s.index}]`}`,
      s.value,
    ]),
  );

describe('decodeOtlp: requests from the OpenTelemetry JS SDK', () => {
  it('maps hardware semantic conventions and hashwatt names, the same from protobuf and JSON', async () => {
    const { proto, json } = await request(gpuRecord);
    const p = decodeOtlpProtobuf(proto);
    const j = decodeOtlpJson(json);
    expect(p.fatal).toBeUndefined();
    expect(j.fatal).toBeUndefined();
    expect(summarize(p)).toEqual({
      'gpu-node-07/gpu0 gpu power_w': 600,
      'gpu-node-07/gpu3 gpu power_w': 603,
      'gpu-node-07/gpu0 gpu gpu_util_pct': 97,
      'gpu-node-07/gpu3 gpu gpu_util_pct': 97,
      'gpu-node-07/gpu0 gpu energy_j_total': 1_000_000,
      'gpu-node-07/gpu3 gpu energy_j_total': 1_000_000,
      'gpu-node-07 - temp_c': 67,
      'gpu-node-07 - fan_speed_rpm[fan1]': 9000,
      'gpu-node-07 - fan_speed_rpm[fan2]': 9600,
      'gpu-node-07 - fan_rpm': 9300,
      'gpu-node-07/s21-017 asic chip_temp_c[2]': 72,
    });
    expect(p.samples).toEqual(j.samples);
    expect(p.samples.find((s) => s.metric === 'power_w')?.model).toBe('NVIDIA H100');
    // The SDK stamps real time: microseconds, the same in both encodings.
    expect(
      p.samples.every((s) => Number.isSafeInteger(s.tsUs) && s.tsMs === Math.floor(s.tsUs! / 1000)),
    ).toBe(true);
    for (const r of [p, j]) {
      expect(r.problems.map((x) => x.code)).toEqual(['unsupported_metric_type']);
      expect(r.rejectedDataPoints).toBe(1); // the histogram's one data point
      expect(r.unmappedNames).toEqual(['hw.gpu.utilization', 'process.cpu.utilization']);
      expect(r.dataPoints).toBe(2 + 4 + 2 + 2 + 2 + 1 + 1 + 1);
    }
  });

  it('rejects delta sums as unsupported, counting their points', async () => {
    const { proto } = await request((provider) => {
      provider.getMeter('t').createCounter('hw.energy').add(5, { 'hw.id': 'gpu0' });
    }, AggregationTemporality.DELTA);
    const r = decodeOtlpProtobuf(proto);
    expect(r.samples).toEqual([]);
    expect(r.problems.map((x) => x.code)).toEqual(['unsupported_temporality']);
    expect(r.rejectedDataPoints).toBe(1);
  });

  it('decodeOtlp picks the decoder by encoding', async () => {
    const { proto, json } = await request(gpuRecord);
    expect(decodeOtlp(proto, 'protobuf').samples).toEqual(decodeOtlp(json, 'json').samples);
  });
});

describe('decodeOtlpJson: the JSON mapping by hand', () => {
  const body = (
    points: unknown[],
    resourceAttrs: unknown[] = [{ key: 'host.name', value: { stringValue: 'h1' } }],
  ) =>
    JSON.stringify({
      resourceMetrics: [
        {
          resource: { attributes: resourceAttrs },
          scopeMetrics: [{ metrics: [{ name: 'hw.power', unit: 'W', gauge: { dataPoints: points } }] }],
        },
      ],
    });

  it('reads int64 as strings or numbers and floors nanoseconds exactly', () => {
    const r = decodeOtlpJson(
      body([
        {
          timeUnixNano: '1764583200123456789',
          asInt: '612',
          attributes: [{ key: 'gpu', value: { intValue: '1' } }],
        },
        {
          timeUnixNano: 1764583200000000000,
          asDouble: 1.5,
          attributes: [{ key: 'gpu', value: { intValue: 2 } }],
        },
      ]),
    );
    expect(r.problems).toEqual([]);
    expect(r.samples.map((s) => [s.device, s.tsUs, s.value])).toEqual([
      ['h1/gpu1', 1764583200123456, 612],
      ['h1/gpu2', 1764583200000000, 1.5],
    ]);
    expect(readNanosAsMicros('999')).toBe(0);
    expect(readNanosAsMicros('-1')).toBeUndefined();
  });

  it('reports each bad point by path and counts it rejected', () => {
    const r = decodeOtlpJson(
      body([
        { timeUnixNano: '1764583200000000000', asDouble: 'NaN' },
        { timeUnixNano: '1764583200000000000', asInt: '9007199254740993' },
        { asDouble: 1 },
        { timeUnixNano: '1764583200000000000' },
        { timeUnixNano: '1764583200000000000', asDouble: 1, flags: 1 },
        {
          timeUnixNano: '1764583200000000000',
          asDouble: 1,
          attributes: [{ key: 'x', value: { stringValue: 'y'.repeat(5000) } }],
        },
        { timeUnixNano: '1764583200000000000', asDouble: 2 },
      ]),
    );
    expect(r.problems.map((x) => [x.where, x.code])).toEqual([
      ['resourceMetrics[0].scopeMetrics[0].metrics[0].dataPoints[0]', 'not_finite'],
      ['resourceMetrics[0].scopeMetrics[0].metrics[0].dataPoints[1]', 'integer_not_exact'],
      ['resourceMetrics[0].scopeMetrics[0].metrics[0].dataPoints[2]', 'missing_timestamp'],
      ['resourceMetrics[0].scopeMetrics[0].metrics[0].dataPoints[3]', 'missing_value'],
      ['resourceMetrics[0].scopeMetrics[0].metrics[0].dataPoints[4]', 'no_recorded_value'],
      ['resourceMetrics[0].scopeMetrics[0].metrics[0].dataPoints[5]', 'attribute_too_long'],
    ]);
    expect(r.rejectedDataPoints).toBe(5); // the no-recorded-value point is skipped, not rejected
    expect(r.samples.map((s) => s.value)).toEqual([2]);
  });

  it('bounds attributes per point', () => {
    const attributes = Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, value: { stringValue: 'v' } }));
    const r = decodeOtlpJson(body([{ timeUnixNano: '1764583200000000000', asDouble: 1, attributes }]));
    expect(r.problems.map((x) => x.code)).toEqual(['too_many_attributes']);
  });

  it('a point naming no device is rejected', () => {
    const r = decodeOtlpJson(body([{ timeUnixNano: '1764583200000000000', asDouble: 1 }], []));
    expect(r.problems.map((x) => x.code)).toEqual(['missing_device_attribute']);
  });

  it('malformed JSON, wrong shapes and wrong types never throw', () => {
    expect(decodeOtlpJson('{"resourceMetrics": [').fatal?.code).toBe('bad_json');
    expect(decodeOtlpJson('[1,2]').fatal?.code).toBe('bad_json');
    expect(decodeOtlpJson(new Uint8Array([0x7b, 0xff])).fatal?.code).toBe('bad_json');
    const odd = decodeOtlpJson(
      '{"resourceMetrics": [1, {"scopeMetrics": "x"}, {"scopeMetrics": [{"metrics": [null, {"name": 5}]}]}]}',
    );
    // A wrong shape is not a request hashwatt may answer as stored: the whole body is refused.
    expect(odd.fatal?.code).toBe('bad_shape');
    expect(odd.fatal?.message).toMatch(/resourceMetrics\[0\] must be an object/);
    expect(decodeOtlpJson('{"resourceMetrics": 5}').fatal?.code).toBe('bad_shape');
    expect(
      decodeOtlpJson(
        '{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "hw.power", "gauge": {"dataPoints": 7}}]}]}]}',
      ).fatal?.message,
    ).toMatch(/dataPoints must be an array/);
    expect(decodeOtlpJson('{"resourceMetrics": []}').fatal).toBeUndefined();
    fc.assert(
      fc.property(fc.json(), (text) => {
        const r = decodeOtlpJson(text);
        return Array.isArray(r.samples);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('decodeOtlpProtobuf: malformed bodies', () => {
  it('every truncation of a real request is fatal or decodes, never throws', async () => {
    const { proto } = await request(gpuRecord);
    for (let cut = 1; cut < proto.length; cut += 3) {
      const r = decodeOtlpProtobuf(proto.subarray(0, cut));
      if (r.fatal !== undefined) expect(r.fatal.code).toBe('bad_protobuf');
    }
  });

  it('fuzz: random bytes and flipped bytes never throw', async () => {
    const { proto } = await request(gpuRecord);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) =>
        Array.isArray(decodeOtlpProtobuf(bytes).samples),
      ),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.nat(proto.length - 1), fc.integer({ min: 0, max: 255 }), (at, byte) => {
        const copy = Uint8Array.from(proto);
        copy[at] = byte;
        return Array.isArray(decodeOtlpProtobuf(copy).samples);
      }),
      { numRuns: 2000 },
    );
  });
});
