import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ERROR_STATUS, type ErrorCode, HashwattError } from '../errors.ts';
import { domainError } from '../storage/errors.ts';

/** The one shape of every error response. */
export interface ErrorEnvelope {
  error: { code: ErrorCode; message: string; field?: string; request_id?: string; [key: string]: unknown };
}

/**
 * The domain error for what a request threw: a client gone mid-request (its signal aborted) is 499
 * whatever failed after it left, since the body stream then fails with ECONNRESET or "aborted",
 * which would otherwise read as the database being down (503) or a bug (500). Used by the error
 * handler and the ingest metric alike, so the two never disagree.
 */
export function requestError(c: Context, thrown: unknown): unknown {
  if (c.req.raw.signal.aborted && !(thrown instanceof HashwattError)) {
    return new HashwattError(
      'client_closed_request',
      'the client closed the connection before it was answered',
      {},
      { cause: thrown },
    );
  }
  return domainError(thrown);
}

/** Renders any thrown value as the error envelope; unexpected errors become a 500 that leaks nothing. */
export function errorResponse(c: Context, thrown: unknown): Response {
  const error = domainError(thrown);
  const known = error instanceof HashwattError ? error : undefined;
  const code: ErrorCode = known?.code ?? 'internal';
  const status = ERROR_STATUS[code];
  const { retryAfterMs, ...details } = known?.details ?? {};
  const body: ErrorEnvelope = {
    error: {
      code,
      message: known?.message ?? 'internal error',
      ...details,
      ...(retryAfterMs !== undefined && { retry_after_ms: retryAfterMs }),
      request_id: c.get('requestId'),
    },
  };
  if (retryAfterMs !== undefined)
    c.header('Retry-After', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
  // 499 is outside Hono's list of official statuses; every value of ERROR_STATUS is a real status.
  return c.json(body, status as ContentfulStatusCode);
}
