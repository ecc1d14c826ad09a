/**
 * Prometheus remote_write 1.0 — `POST /api/v1/write`. Snappy-compressed protobuf WriteRequest,
 * the site token as bearer. Answers as the spec asks (docs/protocols/remote-write.md): 204 when
 * everything mappable was written; 400 (text) for invalid data, which Prometheus drops without
 * retrying (the valid samples of the same request are stored: idempotency absorbs any resend);
 * 429/5xx with Retry-After when it must retry.
 */
import type { Context } from 'hono';
import { HashwattError } from '../errors.ts';
import { DEFAULT_MAX_UNCOMPRESSED_BYTES, decodeRemoteWrite } from '../protocols/index.ts';
import { snappyUncompressedLength } from '../protocols/remote-write/snappy.ts';
import { bearerToken } from '../sites/tokens.ts';
import {
  admitAndDecode,
  authenticateToken,
  type Failure,
  firstReason,
  handleReceiver,
  ingestDecoded,
  invalidCount,
  type ReceiverDeps,
  type ReceiverEnv,
} from './respond.ts';

function render(c: Context<ReceiverEnv>, failure: Failure): Response {
  return c.text(`${failure.message}\n`, failure.status as 400);
}

function unsupported(message: string, field: string): HashwattError {
  return new HashwattError('unsupported_media_type', message, { field });
}

/** Checks the spec's headers: protobuf WriteRequest (1.0, not 2.0's io.prometheus.write.v2.Request), snappy. */
export function checkRemoteWriteHeaders(headers: Headers): void {
  const type = (headers.get('content-type') ?? '').toLowerCase();
  const [mediaType, ...params] = type.split(';').map((p) => p.trim());
  if (mediaType !== 'application/x-protobuf') {
    throw unsupported('Content-Type must be application/x-protobuf (remote_write 1.0)', 'content-type');
  }
  const proto = params.find((p) => p.startsWith('proto='));
  if (proto !== undefined && proto !== 'proto=prometheus.writerequest') {
    throw unsupported(
      `only remote_write 1.0 (prometheus.WriteRequest) is accepted, not ${proto}`,
      'content-type',
    );
  }
  if ((headers.get('content-encoding') ?? '').trim().toLowerCase() !== 'snappy') {
    throw unsupported('Content-Encoding must be snappy', 'content-encoding');
  }
  const version = headers.get('x-prometheus-remote-write-version');
  if (version !== null && !version.trim().startsWith('0.1')) {
    throw unsupported(
      `X-Prometheus-Remote-Write-Version ${version.slice(0, 16)} is not 0.1.0`,
      'x-prometheus-remote-write-version',
    );
  }
}

export async function remoteWrite(
  c: Context<ReceiverEnv>,
  deps: ReceiverDeps,
  onUnexpected: (error: unknown) => void,
): Promise<Response> {
  return handleReceiver(
    c,
    'remote_write',
    deps.pipeline,
    async () => {
      const site = await authenticateToken(bearerToken(c.req.header('authorization')), deps.authenticateSite);
      checkRemoteWriteHeaders(c.req.raw.headers);
      const { decoded, batch } = await admitAndDecode(
        c,
        deps,
        site,
        (body) => decodeRemoteWrite(body, { maxUncompressedBytes: DEFAULT_MAX_UNCOMPRESSED_BYTES }),
        // The snappy block declares its decompressed size: that much is held while it is decoded.
        (body) => snappyUncompressedLength(body) ?? 0,
      );
      if (decoded.fatal) {
        if (decoded.fatal.code === 'too_large')
          throw new HashwattError('payload_too_large', decoded.fatal.message);
        throw new HashwattError('invalid_body', `${decoded.fatal.message} (${decoded.fatal.code})`);
      }
      const outcome = await ingestDecoded(deps, site, 'remote_write', decoded, batch);
      Object.assign(c.get('event'), {
        site: site.name,
        series: decoded.series,
        samples: decoded.sampleCount,
        accepted_samples: outcome.result.acceptedSamples,
        duplicate_samples: outcome.result.duplicateSamples,
        unmapped: outcome.unmapped,
        invalid: invalidCount(outcome),
      });
      if (outcome.unmapped > 0) c.header('X-Hashwatt-Unmapped-Series', String(outcome.unmapped));
      const reason = firstReason(outcome);
      if (reason !== undefined) {
        return c.text(
          `${invalidCount(outcome)} item(s) not stored as invalid (the rest were written); first: ${reason}\n`,
          400,
        );
      }
      return c.body(null, 204);
    },
    render,
    onUnexpected,
  );
}
