import { Hono } from 'hono';
import { z } from 'zod';
import { HashwattError } from '../errors.ts';
import { adminBodyLimit, canonicalId, countParam, parseParams, parseQuery } from '../http/validate.ts';
import { SiteIdParams } from '../sites/service.ts';
import { ALERT_ROW_STATES, listAlerts } from '../storage/alerts.ts';
import type { Storage } from '../storage/database.ts';
import { findSite, findSiteByName } from '../storage/sites.ts';
import { viewAlert } from './view.ts';

export interface AlertRoutesDeps {
  storage: Storage;
}

const limit = countParam(1, 1000).default(100);

/** A site named in a query: its id, or its name (site names are this pattern, so nothing else can match). */
const siteRef = z
  .string()
  .min(1)
  .max(100)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9 ._-]*$/,
    'a site id or name (letters, digits, space, dot, underscore, dash)',
  );

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

/** The alerts API (admin): current alerts across the fleet and one site's history. Mount at /api/v1. */
export function alertRoutes({ storage }: AlertRoutesDeps) {
  // Per route, not `use`: mounted at /api/v1, a `use` here would also bound the ingest routes.
  return new Hono()
    .get('/alerts', adminBodyLimit(), async (c) => {
      const query = parseQuery(AlertsQuery, c.req.query());
      const siteId = query.site === undefined ? undefined : await resolveSiteId(storage, query.site);
      const rows = await listAlerts(storage.db, {
        state: query.state,
        ...(siteId !== undefined && { siteId }),
        limit: query.limit,
      });
      return c.json({ alerts: rows.map(viewAlert) });
    })
    .get('/sites/:id/alerts', adminBodyLimit(), async (c) => {
      const { id } = parseParams(SiteIdParams, c.req.param());
      const site = await findSite(storage.db, id);
      if (!site) throw new HashwattError('not_found', `no site with id ${id}`);
      const query = parseQuery(SiteAlertsQuery, c.req.query());
      const rows = await listAlerts(storage.db, { state: query.state, siteId: id, limit: query.limit });
      return c.json({ site: { id: site.id, name: site.name }, alerts: rows.map(viewAlert) });
    });
}
