/**
 * Test-only: Prometheus' remote_write 1.0 messages (prompb/remote.proto, prompb/types.proto, the
 * parts a sender fills), parsed by protobufjs so fixtures are encoded by a real protobuf encoder,
 * not by hashwatt's own reader in reverse.
 */
import protobuf from 'protobufjs';
import { compressSync } from 'snappy';

const PROTO = `
syntax = "proto3";
package prometheus;
message WriteRequest {
  repeated TimeSeries timeseries = 1;
  repeated MetricMetadata metadata = 3;
}
message MetricMetadata {
  int32 type = 1;
  string metric_family_name = 2;
  string help = 4;
  string unit = 5;
}
message Sample {
  double value = 1;
  int64 timestamp = 2;
}
message Exemplar {
  repeated Label labels = 1;
  double value = 2;
  int64 timestamp = 3;
}
message Histogram {
  uint64 count_int = 1;
  double sum = 3;
  int64 timestamp = 15;
}
message TimeSeries {
  repeated Label labels = 1;
  repeated Sample samples = 2;
  repeated Exemplar exemplars = 3;
  repeated Histogram histograms = 4;
}
message Label {
  string name = 1;
  string value = 2;
}
`;

const root = protobuf.parse(PROTO, { keepCase: true }).root;
export const WriteRequestType = root.lookupType('prometheus.WriteRequest');

export interface FixtureSeries {
  labels: Record<string, string>;
  samples: { value: number; timestamp: number }[];
  histograms?: { count_int: number; sum: number; timestamp: number }[];
}

/** The uncompressed protobuf bytes of a WriteRequest. */
export function encodeWriteRequest(series: FixtureSeries[]): Uint8Array {
  const message = WriteRequestType.fromObject({
    timeseries: series.map((s) => ({
      labels: Object.entries(s.labels).map(([name, value]) => ({ name, value })),
      samples: s.samples,
      histograms: s.histograms ?? [],
    })),
    metadata: [{ type: 1, metric_family_name: 'DCGM_FI_DEV_GPU_TEMP', help: 'GPU temperature (in C).' }],
  });
  return WriteRequestType.encode(message).finish();
}

/** The body as Prometheus sends it: snappy block-compressed. */
export function encodeRemoteWriteBody(series: FixtureSeries[]): Uint8Array {
  return compressSync(Buffer.from(encodeWriteRequest(series)));
}
