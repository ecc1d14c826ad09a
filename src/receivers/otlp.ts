/**
 * OTLP/HTTP metrics — `POST /v1/metrics`. Protobuf or JSON ExportMetricsServiceRequest, gzip or
 * not, the site token as bearer. Answers as the OTLP spec asks (docs/protocols/otlp.md): 200 with
 * an ExportMetricsServiceResponse in the request's encoding, its `partial_success` naming how many
 * data points were rejected and why; errors as a google.rpc.Status; 429/503 with Retry-After for
 * what the exporter must retry.
 */
import type { Context } from 'hono';
import { HashwattError } from '../errors.ts';
import { decodeOtlp } from '../protocols/index.ts';
import { bearerToken } from '../sites/tokens.ts';
import {
  admitAndDecode,
  authenticateToken,
  type Failure,
  firstReason,
  handleReceiver,
  ingestDecoded,
  type ReceiverDeps,
  type ReceiverEnv,
  requireGzipOrIdentity,
} from './respond.ts';

type Encoding = 'protobuf' | 'json';

/** gRPC status codes (google.rpc.Code) for the HTTP statuses OTLP/HTTP names. */
function grpcCode(status: number): number {
  if (status === 400 || status === 413 || status === 415) return 3; // INVALID_ARGUMENT
  if (status === 401) return 16; // UNAUTHENTICATED
  // UNAVAILABLE for every "retry later": the code gRPC clients retry without further detail
  // (RESOURCE_EXHAUSTED is retried only with RetryInfo, which an HTTP answer does not carry).
  if (status === 429 || status === 503 || status === 502 || status === 504) return 14;
  return 13; // INTERNAL
}

/** Protobuf writer for the two tiny messages this receiver answers with. */
function varint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

function lengthDelimited(field: number, bytes: Uint8Array | number[]): number[] {
  return [...varint((field << 3) | 2), ...varint(bytes.length), ...bytes];
}

const utf8 = new TextEncoder();

/** google.rpc.Status { int32 code = 1; string message = 2; } */
export function encodeStatus(code: number, message: string): Uint8Array {
  return Uint8Array.from([
    ...varint((1 << 3) | 0),
    ...varint(code),
    ...lengthDelimited(2, utf8.encode(message)),
  ]);
}

/**
 * ExportMetricsServiceResponse { ExportMetricsPartialSuccess partial_success = 1; } with
 * ExportMetricsPartialSuccess { int64 rejected_data_points = 1; string error_message = 2; }.
 * A full success is the empty message.
 */
export function encodeExportResponse(rejected: number, errorMessage: string): Uint8Array {
  if (rejected === 0 && errorMessage === '') return new Uint8Array(0);
  const partial = [
    ...varint((1 << 3) | 0),
    ...varint(rejected),
    ...lengthDelimited(2, utf8.encode(errorMessage)),
  ];
  return Uint8Array.from(lengthDelimited(1, partial));
}

function requestEncoding(contentType: string | undefined): Encoding | undefined {
  const media = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (media === 'application/x-protobuf') return 'protobuf';
  if (media === 'application/json') return 'json';
  return undefined;
}

function respond(
  c: Context<ReceiverEnv>,
  encoding: Encoding,
  status: number,
  proto: Uint8Array,
  json: unknown,
): Response {
  if (encoding === 'json') return c.json(json, status as 200);
  return c.body(proto as Uint8Array<ArrayBuffer>, status as 200, {
    'content-type': 'application/x-protobuf',
  });
}

function renderFor(encoding: Encoding) {
  return (c: Context<ReceiverEnv>, failure: Failure): Response => {
    const code = grpcCode(failure.status);
    return respond(c, encoding, failure.status, encodeStatus(code, failure.message), {
      code,
      message: failure.message,
    });
  };
}

export async function otlpMetrics(
  c: Context<ReceiverEnv>,
  deps: ReceiverDeps,
  onUnexpected: (error: unknown) => void,
): Promise<Response> {
  const encoding = requestEncoding(c.req.header('content-type'));
  return handleReceiver(
    c,
    'otlp',
    deps.pipeline,
    async () => {
      const site = await authenticateToken(bearerToken(c.req.header('authorization')), deps.authenticateSite);
      if (encoding === undefined) {
        throw new HashwattError(
          'unsupported_media_type',
          'Content-Type must be application/x-protobuf or application/json',
          {
            field: 'content-type',
          },
        );
      }
      requireGzipOrIdentity(c);
      const { decoded, batch } = await admitAndDecode(c, deps, site, (body) => decodeOtlp(body, encoding));
      if (decoded.fatal)
        throw new HashwattError('invalid_body', `${decoded.fatal.message} (${decoded.fatal.code})`);
      const outcome = await ingestDecoded(deps, site, 'otlp', decoded, batch);
      // Points the decoder counted (unsupported types, bad points), samples the pipeline refused, and
      // points dropped as a conflicting second value of one (device, metric, instant).
      const conflicts = outcome.invalid.filter((p) => p.code === 'conflicting_series').length;
      const rejected = decoded.rejectedDataPoints + outcome.result.rejected.length + conflicts;
      const reason = rejected > 0 ? (firstReason(outcome) ?? 'data points of unsupported types') : '';
      Object.assign(c.get('event'), {
        site: site.name,
        data_points: decoded.dataPoints,
        accepted_samples: outcome.result.acceptedSamples,
        duplicate_samples: outcome.result.duplicateSamples,
        unmapped: outcome.unmapped,
        rejected_data_points: rejected,
      });
      const json =
        rejected === 0
          ? {}
          : { partialSuccess: { rejectedDataPoints: String(rejected), errorMessage: reason } };
      return respond(c, encoding, 200, encodeExportResponse(rejected, reason), json);
    },
    renderFor(encoding ?? 'json'),
    onUnexpected,
  );
}
