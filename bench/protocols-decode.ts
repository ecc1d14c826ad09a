// Decode throughput of the push protocols, pure CPU (no HTTP, no database), and the library choices
// behind them: native `snappy` vs pure-JS `snappyjs`, and protobufjs vs hashwatt's minimal reader.
//
//   node bench/protocols-decode.ts [--seconds N]
//
// Bodies are shaped like real senders': a Prometheus remote_write request of 2000 DCGM samples
// (Prometheus' default max_samples_per_send) from 2 hosts × 8 GPUs, a Telegraf nvidia_smi batch,
// and an OTLP request from the OpenTelemetry JS SDK. Prints one JSON object; measureProtocolDecode()
// returns it for bench/index.ts.
import { parseArgs } from 'node:util';
import { JsonMetricsSerializer, ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import protobuf from 'protobufjs';
import { compressSync, uncompressSync } from 'snappy';
import * as snappyjs from 'snappyjs';
import { decodeLineProtocol } from '../src/protocols/line-protocol/decode.ts';
import { decodeOtlpJson, decodeOtlpProtobuf } from '../src/protocols/otlp/index.ts';
import {
  decodeRemoteWrite,
  decodeWriteRequest,
  mapDecodedSeries,
} from '../src/protocols/remote-write/decode.ts';
import {
  encodeWriteRequest,
  type FixtureSeries,
  WriteRequestType,
} from '../src/protocols/testing/prometheus-proto.ts';

type Series = Parameters<typeof mapDecodedSeries>[0][number];

export interface Rate {
  per_second: number;
  unit: string;
}

export interface ProtocolDecodeResult {
  remote_write: {
    body_bytes: number;
    uncompressed_bytes: number;
    samples: number;
    snappy_native: Rate;
    snappyjs: Rate;
    protobufjs_decode_only: Rate;
    protobufjs_decode_and_map: Rate;
    hashwatt_decode_and_map: Rate;
    end_to_end: Rate;
    /**
     * The push benchmark's shape (bench/push-protocols.ts): hashwatt's own names,
     * `hashwatt_<metric>{device,kind,model}`, one sample a series, 500 ASICs × 5 metrics.
     */
    own_names_end_to_end: Rate;
  };
  line_protocol: { lines: number; samples: number; decode_and_map: Rate };
  otlp: { data_points: number; protobuf: Rate; json: Rate; protobufjs_decode_only: Rate };
}

/** Runs `fn` repeatedly for about `seconds` after a warm-up; returns calls per second. */
function callsPerSecond(fn: () => unknown, seconds: number): number {
  for (let i = 0; i < 50; i++) fn();
  const deadline = performance.now() + seconds * 1000;
  let calls = 0;
  const start = performance.now();
  while (performance.now() < deadline) {
    fn();
    calls++;
  }
  return calls / ((performance.now() - start) / 1000);
}

const rate = (callsPerSec: number, perCall: number, unit: string): Rate => ({
  per_second: Math.round(callsPerSec * perCall),
  unit,
});

/** 500 ASICs × 5 core metrics under hashwatt's own names, one sample a series: a load-scenario body. */
function ownNamesRequest(): FixtureSeries[] {
  const ts = Date.UTC(2026, 11, 1);
  const metrics = [
    ['power_w', 3400],
    ['hashrate_ths', 200],
    ['expected_hashrate_ths', 200],
    ['temp_c', 70],
    ['fan_rpm', 5000],
  ] as const;
  const series: FixtureSeries[] = [];
  for (let d = 0; d < 500; d++) {
    for (const [metric, value] of metrics) {
      series.push({
        labels: {
          __name__: `hashwatt_${metric}`,
          device: `rack-${d % 40}/asic-${d}`,
          kind: 'asic',
          model: 'S19j Pro',
        },
        samples: [{ value: value + d, timestamp: ts }],
      });
    }
  }
  return series;
}

function dcgmRequest(): FixtureSeries[] {
  const names = [
    'DCGM_FI_DEV_POWER_USAGE',
    'DCGM_FI_DEV_GPU_UTIL',
    'DCGM_FI_DEV_GPU_TEMP',
    'DCGM_FI_DEV_MEMORY_TEMP',
    'DCGM_FI_DEV_FB_USED',
    'DCGM_FI_DEV_FB_FREE',
    'DCGM_FI_DEV_SM_CLOCK',
    'DCGM_FI_DEV_MEM_CLOCK',
    'DCGM_FI_DEV_XID_ERRORS',
    'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION',
  ];
  const series: FixtureSeries[] = [];
  const t0 = Date.UTC(2026, 11, 1);
  // 2 hosts × 8 GPUs × 10 metrics = 160 series; 12-13 samples each ≈ 2000 samples.
  for (let host = 0; host < 2; host++) {
    for (let gpu = 0; gpu < 8; gpu++) {
      for (const name of names) {
        series.push({
          labels: {
            __name__: name,
            DCGM_FI_DRIVER_VERSION: '550.54.15',
            Hostname: `gpu-node-0${host}`,
            UUID: `GPU-${host}${gpu}a1b2c3-d4e5-f6a7-b8c9-d0e1f2a3b4c5`,
            device: `nvidia${gpu}`,
            gpu: String(gpu),
            instance: `10.0.0.${host + 10}:9400`,
            job: 'dcgm',
            modelName: 'NVIDIA H100 80GB HBM3',
            pci_bus_id: `00000000:${18 + gpu}:00.0`,
          },
          samples: Array.from({ length: 12 + (gpu % 2) }, (_, i) => ({
            value: 100 + i * 0.5,
            timestamp: t0 + i * 15_000,
          })),
        });
      }
    }
  }
  return series;
}

function nvidiaSmiBatch(): string {
  const lines: string[] = [];
  const t0 = 1764547200000000000n;
  for (let i = 0; i < 125; i++) {
    for (let gpu = 0; gpu < 8; gpu++) {
      lines.push(
        `nvidia_smi,compute_mode=Default,host=gpu-node-0${i % 2},index=${gpu},name=NVIDIA\\ H100\\ 80GB\\ HBM3,pstate=P0,uuid=GPU-${gpu}a1b2 ` +
          `clocks_current_memory=2619i,clocks_current_sm=1980i,driver_version="550.54.15",fan_speed=30i,memory_free=1000i,memory_total=81559i,` +
          `memory_used=80559i,power_draw=612.5,temperature_gpu=71i,utilization_gpu=97i,utilization_memory=60i ${t0 + BigInt(i) * 10_000_000_000n}`,
      );
    }
  }
  return lines.join('\n');
}

class CollectingReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

async function otlpRequest(): Promise<{ proto: Uint8Array; json: Uint8Array; points: number }> {
  const reader = new CollectingReader();
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'host.name': 'gpu-node-00' }),
    readers: [reader],
  });
  const meter = provider.getMeter('bench');
  const gauges = [
    'hw.power',
    'hw.gpu.utilization',
    'hw.gpu.memory.usage',
    'hw.temperature',
    'gpu_sm_clock_mhz',
  ].map((n) => meter.createGauge(n));
  const energy = meter.createCounter('hw.energy');
  let points = 0;
  for (let gpu = 0; gpu < 256; gpu++) {
    for (const g of gauges) {
      g.record(gpu + 0.5, { 'hw.id': `gpu${gpu}`, 'hw.type': 'gpu' });
      points++;
    }
    energy.add(1000, { 'hw.id': `gpu${gpu}`, 'hw.type': 'gpu' });
    points++;
  }
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  const proto = ProtobufMetricsSerializer.serializeRequest(resourceMetrics)!;
  const json = JsonMetricsSerializer.serializeRequest(resourceMetrics)!;
  return { proto, json, points };
}

// The OTLP messages the decoder reads, for protobufjs' side of the comparison.
const OTLP_PROTO = `
syntax = "proto3";
package otlp;
message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
message ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; string schema_url = 3; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message ScopeMetrics { InstrumentationScope scope = 1; repeated Metric metrics = 2; string schema_url = 3; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; }
message Metric { string name = 1; string description = 2; string unit = 3; Gauge gauge = 5; Sum sum = 7; }
message Gauge { repeated NumberDataPoint data_points = 1; }
message Sum { repeated NumberDataPoint data_points = 1; int32 aggregation_temporality = 2; bool is_monotonic = 3; }
message NumberDataPoint {
  repeated KeyValue attributes = 7; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
  double as_double = 4; sfixed64 as_int = 6; uint32 flags = 8;
}
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; }
`;

export async function measureProtocolDecode(seconds = 1): Promise<ProtocolDecodeResult> {
  const series = dcgmRequest();
  const raw = encodeWriteRequest(series);
  const body = compressSync(Buffer.from(raw));
  const samples = decodeWriteRequest(raw).samples.length;
  const ownBody = compressSync(Buffer.from(encodeWriteRequest(ownNamesRequest())));
  const own = decodeRemoteWrite(ownBody);
  if (own.problems.length > 0) throw new Error(`own-names body: ${own.problems[0]!.message}`);
  const lp = nvidiaSmiBatch();
  const lpResult = decodeLineProtocol(lp, { precision: 'ns', nowUs: 0 });
  const otlp = await otlpRequest();
  const otlpType = protobuf
    .parse(OTLP_PROTO, { keepCase: true })
    .root.lookupType('otlp.ExportMetricsServiceRequest');

  return {
    remote_write: {
      body_bytes: body.length,
      uncompressed_bytes: raw.length,
      samples,
      snappy_native: rate(
        callsPerSecond(() => uncompressSync(body), seconds),
        raw.length / 1e6,
        'MB/s uncompressed',
      ),
      snappyjs: rate(
        callsPerSecond(() => snappyjs.uncompress(body), seconds),
        raw.length / 1e6,
        'MB/s uncompressed',
      ),
      protobufjs_decode_only: rate(
        callsPerSecond(() => WriteRequestType.decode(raw), seconds),
        samples,
        'samples/s',
      ),
      protobufjs_decode_and_map: rate(
        callsPerSecond(
          () =>
            mapDecodedSeries(
              (WriteRequestType.decode(raw) as unknown as { timeseries: Series[] }).timeseries,
            ),
          seconds,
        ),
        samples,
        'samples/s',
      ),
      hashwatt_decode_and_map: rate(
        callsPerSecond(() => decodeWriteRequest(raw), seconds),
        samples,
        'samples/s',
      ),
      end_to_end: rate(
        callsPerSecond(() => decodeRemoteWrite(body), seconds),
        samples,
        'samples/s',
      ),
      own_names_end_to_end: rate(
        callsPerSecond(() => decodeRemoteWrite(ownBody), seconds),
        own.samples.length,
        'samples/s',
      ),
    },
    line_protocol: {
      lines: lpResult.lines,
      samples: lpResult.samples.length,
      decode_and_map: rate(
        callsPerSecond(() => decodeLineProtocol(lp, { precision: 'ns', nowUs: 0 }), seconds),
        lpResult.samples.length,
        'samples/s',
      ),
    },
    otlp: {
      data_points: otlp.points,
      protobuf: rate(
        callsPerSecond(() => decodeOtlpProtobuf(otlp.proto), seconds),
        otlp.points,
        'points/s',
      ),
      json: rate(
        callsPerSecond(() => decodeOtlpJson(otlp.json), seconds),
        otlp.points,
        'points/s',
      ),
      protobufjs_decode_only: rate(
        callsPerSecond(() => otlpType.decode(otlp.proto), seconds),
        otlp.points,
        'points/s',
      ),
    },
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '1' } } });
  const result = await measureProtocolDecode(Number(values.seconds));
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
