/**
 * What the three push receivers share: each is a thin decoder in front of the one ingest pipeline
 * (admit → decode in the site's turn → validate → resolve → commit → answer), and each answers in
 * its own protocol's format, errors included, never in hashwatt's JSON envelope.
 */
import type { Context } from 'hono';
import { ERROR_STATUS, HashwattError } from '../errors.ts';
import type { WideEvent } from '../http/app.ts';
import { authenticateHeader, type SiteAuthenticator } from '../http/auth.ts';
import { INGEST_BODY_LIMITS, readBinaryBody } from '../http/body.ts';
import { requestError } from '../http/errors.ts';
import { type IngestBatch, sampleBatch } from '../ingest/batch.ts';
import type { AuthenticatedSite, IngestPipeline, IngestResult, Transport } from '../ingest/pipeline.ts';
import type { Rejection } from '../ingest/reading.ts';
import { type DecodeProblem, type DecodeResult, FILTERED_PROBLEM_CODES } from '../protocols/index.ts';
import type { UnmappedSeries } from './unmapped.ts';

export type ReceiverEnv = { Variables: { requestId: string; event: WideEvent } };

export interface ReceiverDeps {
  pipeline: IngestPipeline;
  authenticateSite: SiteAuthenticator;
  unmapped: UnmappedSeries;
}

/** A failure as the receiver's protocol renders it: status, and the reason in a sentence. */
export interface Failure {
  status: number;
  /** A stable code (hashwatt's), for the body formats that carry one. */
  code: string;
  message: string;
  retryAfterSeconds?: number;
}

/** Any thrown value as a Failure: a HashwattError keeps its status and Retry-After; the rest is a 500. */
export function failureOf(c: Context, thrown: unknown): Failure {
  const error = requestError(c, thrown);
  if (!(error instanceof HashwattError)) return { status: 500, code: 'internal', message: 'internal error' };
  const retryAfterMs = error.details.retryAfterMs;
  return {
    status: ERROR_STATUS[error.code],
    code: error.code,
    message: error.message,
    ...(retryAfterMs === undefined ? {} : { retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)) }),
  };
}

/**
 * Runs one receiver request: the protocol's handler, timed and counted like every ingest request,
 * with any error rendered by the protocol's `render`. Unexpected errors are logged by the caller's
 * `onUnexpected` (the app's logger) and answered 500 in the protocol's format.
 */
export async function handleReceiver(
  c: Context<ReceiverEnv>,
  transport: Transport,
  pipeline: IngestPipeline,
  work: () => Promise<Response>,
  render: (c: Context<ReceiverEnv>, failure: Failure) => Response,
  onUnexpected: (error: unknown) => void,
): Promise<Response> {
  const started = performance.now();
  let response: Response;
  try {
    response = await work();
  } catch (thrown) {
    const failure = failureOf(c, thrown);
    if (failure.status === 500) onUnexpected(thrown);
    Object.assign(c.get('event'), { error: failure.code });
    if (failure.retryAfterSeconds !== undefined) c.header('Retry-After', String(failure.retryAfterSeconds));
    response = render(c, failure);
  }
  pipeline.observer.requestCompleted(transport, response.status, (performance.now() - started) / 1000);
  return response;
}

/** Refuses any Content-Encoding but gzip or none (line protocol, OTLP). */
export function requireGzipOrIdentity(c: Context): void {
  const encoding = (c.req.header('content-encoding') ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity' && encoding !== 'gzip') {
    throw new HashwattError('unsupported_media_type', 'Content-Encoding must be gzip or absent', {
      field: 'content-encoding',
    });
  }
}

/**
 * A decode's outcome without its samples, which only the batch holds: the batch lets go of them
 * once checked, so the request holds its readings' columns, not its decoded body, while it waits
 * for its commit (what the write queue charges it; IngestPipeline.ingest).
 */
export type DecodeSummary<R extends DecodeResult> = Omit<R, 'samples'> & { sampleCount: number };

/**
 * Admits the request against the write queue, reads its body within the limits and the decode
 * budget, and decodes it in the site's turn into the pipeline's batch and the decode's summary.
 */
export async function admitAndDecode<R extends DecodeResult>(
  c: Context,
  deps: ReceiverDeps,
  site: AuthenticatedSite,
  decode: (body: Uint8Array) => R,
  expandsTo?: (body: Uint8Array) => number,
): Promise<{ decoded: DecodeSummary<R>; batch: IngestBatch }> {
  deps.pipeline.admit(site, Number(c.req.header('content-length') ?? 0));
  const { value } = await readBinaryBody(
    c.req.raw,
    INGEST_BODY_LIMITS,
    (body) => {
      const { samples, ...rest } = decode(body);
      return { decoded: { ...rest, sampleCount: samples.length }, batch: sampleBatch(samples) };
    },
    { holder: site.id, turn: (work) => deps.pipeline.turn(site.id, work), ...(expandsTo && { expandsTo }) },
  );
  return value;
}

/** The site a token names; the header is `Bearer <token>` or InfluxDB's `Token <token>`. */
export async function authenticateToken(
  token: string | undefined,
  authenticate: SiteAuthenticator,
): Promise<AuthenticatedSite> {
  return authenticateHeader(token === undefined ? undefined : `Bearer ${token}`, authenticate);
}

/** What a receiver learns from one request: what was stored, and what was not, item by item. */
export interface ReceiverOutcome {
  result: IngestResult;
  /** Problems of the decode that mean invalid data (filtered sentinels excluded), in body order. */
  invalid: DecodeProblem[];
  /** Invalid items past the decoder's list bound: counted, not listed. */
  invalidDropped: number;
  /** Items (series, fields, points) with no mapping: counted and reported, not stored. */
  unmapped: number;
}

/**
 * Hands a decoded body to the pipeline and records what had no mapping. A body with nothing to
 * store still counts its unmapped items and answers like an empty write.
 */
export async function ingestDecoded(
  deps: ReceiverDeps,
  site: AuthenticatedSite,
  transport: Transport,
  decoded: DecodeSummary<DecodeResult>,
  batch: IngestBatch,
): Promise<ReceiverOutcome> {
  if (decoded.unmapped > 0) deps.unmapped.record(site, transport, decoded.unmapped, decoded.unmappedNames);
  const invalid = decoded.problems.filter((p) => !FILTERED_PROBLEM_CODES.has(p.code));
  const result: IngestResult =
    batch.size === 0
      ? { accepted: 0, duplicates: 0, acceptedSamples: 0, duplicateSamples: 0, rejected: [] }
      : await deps.pipeline.ingest(site, batch, transport);
  return { result, invalid, invalidDropped: decoded.problemsDropped, unmapped: decoded.unmapped };
}

/** The first reason anything of the request was not stored, for the protocols' one-line answers. */
export function firstReason(outcome: ReceiverOutcome): string | undefined {
  const problem = outcome.invalid[0];
  if (problem) return `${problem.where}: ${problem.message} (${problem.code})`;
  const rejection: Rejection | undefined = outcome.result.rejected[0];
  if (rejection) return `${rejection.message} (${rejection.code})`;
  return undefined;
}

/** Items not stored because they were invalid: decode problems and the pipeline's rejections. */
export function invalidCount(outcome: ReceiverOutcome): number {
  return outcome.invalid.length + outcome.invalidDropped + outcome.result.rejected.length;
}
