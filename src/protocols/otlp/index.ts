/** OTLP/HTTP metrics decoders: pick by Content-Type (application/x-protobuf or application/json). */
import { decodeOtlpJson } from './decode-json.ts';
import { decodeOtlpProtobuf } from './decode-protobuf.ts';
import { type CompiledOtlpMapping, DEFAULT_COMPILED_OTLP, type OtlpDecodeResult } from './mapper.ts';

export { decodeOtlpJson, readNanosAsMicros } from './decode-json.ts';
export { decodeOtlpProtobuf } from './decode-protobuf.ts';
export { type CompiledOtlpMapping, compileOtlpMapping, type OtlpDecodeResult } from './mapper.ts';
export { DEFAULT_OTLP_MAPPING, type OtlpMapping, type OtlpMetricEntry } from './mapping.ts';

/** Decodes a request body of either encoding (already decompressed). */
export function decodeOtlp(
  body: Uint8Array,
  encoding: 'protobuf' | 'json',
  mapping: CompiledOtlpMapping = DEFAULT_COMPILED_OTLP,
): OtlpDecodeResult {
  return encoding === 'json' ? decodeOtlpJson(body, mapping) : decodeOtlpProtobuf(body, mapping);
}
