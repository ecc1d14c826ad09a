import { Hono } from 'hono';
import type { WideEvent } from '../http/app.ts';
import { requireSite, type SiteAuthenticator } from '../http/auth.ts';
import { INGEST_BODY_LIMITS, readJsonBody } from '../http/body.ts';
import { batchReadings } from './envelope.ts';
import type { AuthenticatedSite, IngestPipeline } from './pipeline.ts';

type Env = { Variables: { site: AuthenticatedSite; event: WideEvent } };

/** `POST /api/v1/ingest`: decode, hand to the pipeline, answer after commit. */
export function ingestRoutes(pipeline: IngestPipeline, authenticate: SiteAuthenticator) {
  return new Hono<Env>().post('/', requireSite(authenticate), async (c) => {
    const site = c.get('site');
    const { value, wireBytes } = await readJsonBody(c.req.raw, INGEST_BODY_LIMITS);
    const readings = batchReadings(value);
    const result = await pipeline.ingest(site, readings, wireBytes, 'http');
    Object.assign(c.get('event'), {
      site: site.name,
      readings: readings.length,
      accepted: result.accepted,
      duplicates: result.duplicates,
      rejected: result.rejected.length,
    });
    return c.json(result, 200);
  });
}
