import { Hono } from 'hono';
import { ERROR_STATUS, HashwattError } from '../errors.ts';
import type { WideEvent } from '../http/app.ts';
import { requireSite, type SiteAuthenticator } from '../http/auth.ts';
import { INGEST_BODY_LIMITS, readJsonBody } from '../http/body.ts';
import { requestError } from '../http/errors.ts';
import { jsonBatch } from './batch.ts';
import { batchReadings, wireResult } from './envelope.ts';
import type { AuthenticatedSite, IngestPipeline } from './pipeline.ts';

type Env = { Variables: { site: AuthenticatedSite; event: WideEvent } };

/** `POST /api/v1/ingest`: decode, hand to the pipeline, answer after commit. */
export function ingestRoutes(pipeline: IngestPipeline, authenticate: SiteAuthenticator) {
  return new Hono<Env>().post(
    '/',
    async (c, next) => {
      const started = performance.now();
      try {
        await next();
      } finally {
        // Errors are rendered by the app's onError after this; their status is known from the thrown code.
        pipeline.observer.requestCompleted(
          'http',
          c.error ? statusOf(requestError(c, c.error)) : c.res.status,
          (performance.now() - started) / 1000,
        );
      }
    },
    requireSite(authenticate),
    async (c) => {
      const site = c.get('site');
      pipeline.admit(site, Number(c.req.header('content-length') ?? 0));
      // No local keeps the parsed body: the batch lets go of it once checked, so what waits for the
      // commit is the readings' columns, which is what the write queue charges (IngestPipeline.ingest).
      const batch = jsonBatch(
        batchReadings(
          (
            await readJsonBody(c.req.raw, INGEST_BODY_LIMITS, {
              holder: site.id,
              turn: (work) => pipeline.turn(site.id, work),
            })
          ).value,
        ),
      );
      const result = await pipeline.ingest(site, batch, 'http');
      Object.assign(c.get('event'), {
        site: site.name,
        readings: batch.size,
        accepted: result.accepted,
        duplicates: result.duplicates,
        rejected: result.rejected.length,
      });
      return c.json(wireResult(result), 200);
    },
  );
}

function statusOf(error: unknown): number {
  return error instanceof HashwattError ? ERROR_STATUS[error.code] : 500;
}
