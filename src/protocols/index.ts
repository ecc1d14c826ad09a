/**
 * Pure decoders of the standard push protocols, each a body → DecodeResult (samples, problems,
 * unmapped counts) in front of the one ingest pipeline. Not wired into HTTP here.
 */
export {
  EXTRA_METRICS,
  type ExtraMetricDefinition,
  type ExtraMetricName,
  isKnownMetricName,
} from '../catalog/extra-metrics.ts';
export {
  type CompiledLineProtocolMapping,
  compileLineProtocolMapping,
  decodeLineProtocol,
  type LineProtocolDecodeOptions,
  type LineProtocolDecodeResult,
} from './line-protocol/decode.ts';
export {
  DEFAULT_LINE_PROTOCOL_MAPPING,
  type LineProtocolMapping,
  type MeasurementRule,
} from './line-protocol/mapping.ts';
export { type Precision, parsePrecision } from './line-protocol/parse.ts';
export type { DeviceRule, MetricRule } from './mapping.ts';
export {
  type CompiledOtlpMapping,
  compileOtlpMapping,
  DEFAULT_OTLP_MAPPING,
  decodeOtlp,
  decodeOtlpJson,
  decodeOtlpProtobuf,
  type OtlpDecodeResult,
  type OtlpMapping,
} from './otlp/index.ts';
export {
  type CompiledRemoteWriteMapping,
  compileRemoteWriteMapping,
  DEFAULT_MAX_UNCOMPRESSED_BYTES,
  decodeRemoteWrite,
  type RemoteWriteDecodeOptions,
  type RemoteWriteDecodeResult,
} from './remote-write/decode.ts';
export {
  DEFAULT_REMOTE_WRITE_MAPPING,
  type RemoteWriteMapping,
  type SeriesFamily,
} from './remote-write/mapping.ts';
export {
  type DecodedSample,
  type DecodeProblem,
  type DecodeResult,
  FILTERED_PROBLEM_CODES,
  PROBLEMS_MAX,
  UNMAPPED_NAMES_MAX,
  UNSUPPORTED_PROBLEM_CODES,
} from './sample.ts';
