import { Hono } from 'hono';
import { z } from 'zod';
import { HashwattError } from '../errors.ts';
import {
  adminBodyLimit,
  canonicalId,
  countParam,
  parseBody,
  parseParams,
  parseQuery,
  readAdminJson,
} from '../http/validate.ts';
import {
  mayRead,
  type ReaderAuthDeps,
  readableSite,
  readableSiteIds,
  readerAuthenticator,
} from '../read/reader.ts';
import { SiteIdParams } from '../sites/service.ts';
import { ALERT_ROW_STATES, listAlerts } from '../storage/alerts.ts';
import type { Storage } from '../storage/database.ts';
import { findSite, findSiteByName } from '../storage/sites.ts';
import {
  AcknowledgeRequest,
  AlertIdParams,
  acknowledgeAlert,
  createSilence,
  expireSilence,
  getSilence,
  listSilences,
  NewSilenceRequest,
  SilenceIdParams,
  SilencesQuery,
  siteRef,
  unacknowledgeAlert,
} from './actions.ts';
import { viewAlert } from './view.ts';

export interface AlertRoutesDeps extends ReaderAuthDeps {
  storage: Storage;
}

const limit = countParam(1, 1000).default(100);

/** The query of a route that takes none: an unexpected parameter is a mistake worth naming. */
const NoQuery = z.strictObject({});

/** Query of `GET /api/v1/alerts`. */
export const AlertsQuery = z.strictObject({
  state: z.enum(ALERT_ROW_STATES).optional(),
  /** A site id or name. */
  site: siteRef.optional(),
  limit,
});

/** Query of `GET /api/v1/sites/:id/alerts`. */
export const SiteAlertsQuery = z.strictObject({ state: z.enum(ALERT_ROW_STATES).optional(), limit });

async function resolveSiteId(storage: Storage, idOrName: string): Promise<number> {
  // A canonical id names a site by id; anything else (`007`, `North Hall`) by name.
  const id = canonicalId(idOrName);
  const site = id !== undefined ? await findSite(storage.db, id) : await findSiteByName(storage.db, idOrName);
  if (!site) throw new HashwattError('not_found', `no site "${idOrName}"`, { field: 'site' });
  return site.id;
}

/**
 * The alerts API, mounted at /api/v1. Every route authenticates its reader as the read routes do:
 * any reader lists the alerts and silences of the sites it reads (a site token its own site), the
 * admin and operator tokens may acknowledge and silence.
 */
export function alertRoutes(deps: AlertRoutesDeps) {
  const { storage } = deps;
  const readerOf = readerAuthenticator(deps);
  // Per route, not `use`: mounted at /api/v1, a `use` here would also bound the ingest routes.
  return new Hono()
    .get('/alerts', adminBodyLimit(), async (c) => {
      const reader = await readerOf(c);
      const query = parseQuery(AlertsQuery, c.req.query());
      const siteId = query.site === undefined ? undefined : await resolveSiteId(storage, query.site);
      // Another site's alerts are as absent as its data: 404 for a named one, left out otherwise.
      if (siteId !== undefined && !mayRead(reader, siteId))
        throw new HashwattError('not_found', `no site "${query.site}"`, { field: 'site' });
      const siteIds = readableSiteIds(reader);
      const rows = await listAlerts(storage.db, {
        state: query.state,
        ...(siteId !== undefined && { siteId }),
        ...(siteIds !== undefined && { siteIds }),
        limit: query.limit,
      });
      return c.json({ alerts: rows.map(viewAlert) });
    })
    .get('/sites/:id/alerts', adminBodyLimit(), async (c) => {
      const reader = await readerOf(c);
      const { id } = parseParams(SiteIdParams, c.req.param());
      const site = await readableSite(storage, reader, id);
      const query = parseQuery(SiteAlertsQuery, c.req.query());
      const rows = await listAlerts(storage.db, { state: query.state, siteId: id, limit: query.limit });
      return c.json({ site: { id: site.id, name: site.name }, alerts: rows.map(viewAlert) });
    })
    .post('/alerts/:id/ack', adminBodyLimit(), async (c) => {
      const reader = await readerOf(c);
      const { id } = parseParams(AlertIdParams, c.req.param());
      parseQuery(NoQuery, c.req.query());
      const input = parseBody(AcknowledgeRequest, await readAdminJson(c.req.raw));
      const alert = await acknowledgeAlert({ storage, reader, id, input, nowMs: Date.now() });
      return c.json({ alert });
    })
    .delete('/alerts/:id/ack', adminBodyLimit(), async (c) => {
      const reader = await readerOf(c);
      const { id } = parseParams(AlertIdParams, c.req.param());
      parseQuery(NoQuery, c.req.query());
      const alert = await unacknowledgeAlert({ storage, reader, id, nowMs: Date.now() });
      return c.json({ alert });
    })
    .get('/silences', adminBodyLimit(), async (c) => {
      const reader = await readerOf(c);
      const query = parseQuery(SilencesQuery, c.req.query());
      return c.json({ silences: await listSilences({ storage, reader, query, nowMs: Date.now() }) });
    })
    .post('/silences', adminBodyLimit(), async (c) => {
      const reader = await readerOf(c);
      parseQuery(NoQuery, c.req.query());
      const input = parseBody(NewSilenceRequest, await readAdminJson(c.req.raw));
      const silence = await createSilence({ storage, reader, input, nowMs: Date.now() });
      return c.json({ silence }, 201);
    })
    .get('/silences/:id', adminBodyLimit(), async (c) => {
      const reader = await readerOf(c);
      const { id } = parseParams(SilenceIdParams, c.req.param());
      parseQuery(NoQuery, c.req.query());
      return c.json({ silence: await getSilence({ storage, reader, id, nowMs: Date.now() }) });
    })
    .delete('/silences/:id', adminBodyLimit(), async (c) => {
      const reader = await readerOf(c);
      const { id } = parseParams(SilenceIdParams, c.req.param());
      parseQuery(NoQuery, c.req.query());
      return c.json({ silence: await expireSilence({ storage, reader, id, nowMs: Date.now() }) });
    });
}
