/**
 * The standard push receivers (Prometheus remote_write, InfluxDB line protocol, OTLP/HTTP), each a
 * thin decoder (src/protocols/) in front of the one ingest pipeline, and what they could not map.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { HashwattError } from '../errors.ts';
import { idParam, parseParams, parseQuery } from '../http/validate.ts';
import type { Logger } from '../log.ts';
import type { Storage } from '../storage/database.ts';
import { findSite } from '../storage/sites.ts';
import { influxWrite } from './influx.ts';
import { otlpMetrics } from './otlp.ts';
import { remoteWrite } from './remote-write.ts';
import type { ReceiverDeps, ReceiverEnv } from './respond.ts';

export type { ReceiverDeps } from './respond.ts';
export { type UnmappedName, UnmappedSeries } from './unmapped.ts';

/** The receivers' routes, mounted at the root: each protocol's conventional path. */
export function receiverRoutes(deps: ReceiverDeps, logger: Logger) {
  const onUnexpected = (error: unknown) => logger.error({ err: error }, 'unhandled receiver error');
  return new Hono<ReceiverEnv>()
    .post('/api/v1/write', (c) => remoteWrite(c, deps, onUnexpected))
    .post('/api/v2/write', (c) => influxWrite(c, deps, 'v2', onUnexpected))
    .post('/write', (c) => influxWrite(c, deps, 'v1', onUnexpected))
    .post('/v1/metrics', (c) => otlpMetrics(c, deps, onUnexpected));
}

const SiteParams = z.strictObject({ id: idParam });

/**
 * `GET /api/v1/sites/:id/unmapped` (admin; mount behind the admin check): what the site's
 * collectors push that hashwatt does not map, since this replica started.
 */
export function unmappedRoutes(deps: Pick<ReceiverDeps, 'unmapped'> & { storage: Storage }) {
  return new Hono().get('/:id/unmapped', async (c) => {
    const { id } = parseParams(SiteParams, c.req.param());
    parseQuery(z.strictObject({}), c.req.query());
    if (!(await findSite(deps.storage.db, id))) throw new HashwattError('not_found', `no site ${id}`);
    return c.json({ site_id: id, ...deps.unmapped.of(id) });
  });
}
