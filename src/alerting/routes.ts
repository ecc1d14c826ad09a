import { Hono } from 'hono';
import { z } from 'zod';
import { HashwattError } from '../errors.ts';
import { ALERT_ROW_STATES, listAlerts } from '../storage/alerts.ts';
import type { Storage } from '../storage/database.ts';
import { findSite, findSiteByName } from '../storage/sites.ts';
import { viewAlert } from './view.ts';

export interface AlertRoutesDeps {
  storage: Storage;
}

const limit = z.coerce.number().int().min(1).max(1000).default(100);

/** Query of `GET /api/v1/alerts`. */
export const AlertsQuery = z.strictObject({
  state: z.enum(ALERT_ROW_STATES).optional(),
  /** A site id or name. */
  site: z.string().min(1).max(100).optional(),
  limit,
});

/** Query of `GET /api/v1/sites/:id/alerts`. */
export const SiteAlertsQuery = z.strictObject({ state: z.enum(ALERT_ROW_STATES).optional(), limit });

/** Parses query parameters, or throws a 400 naming the first bad one. */
function parseQuery<S extends z.ZodType>(schema: S, query: Record<string, string>): z.infer<S> {
  const result = schema.safeParse(query);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.code === 'unrecognized_keys' ? (issue.keys[0] ?? '') : issue.path.map(String).join('.');
  const message =
    issue.code === 'unrecognized_keys' ? `unknown query parameter "${field}"` : `${field}: ${issue.message}`;
  throw new HashwattError('invalid_query', message, { field });
}

async function resolveSiteId(storage: Storage, idOrName: string): Promise<number> {
  const site = /^\d{1,9}$/.test(idOrName)
    ? await findSite(storage.db, Number(idOrName))
    : await findSiteByName(storage.db, idOrName);
  if (!site) throw new HashwattError('not_found', `no site "${idOrName}"`, { field: 'site' });
  return site.id;
}

/** The alerts API (admin): current alerts across the fleet and one site's history. Mount at /api/v1. */
export function alertRoutes({ storage }: AlertRoutesDeps) {
  return new Hono()
    .get('/alerts', async (c) => {
      const query = parseQuery(AlertsQuery, c.req.query());
      const siteId = query.site === undefined ? undefined : await resolveSiteId(storage, query.site);
      const rows = await listAlerts(storage.db, {
        state: query.state,
        ...(siteId !== undefined && { siteId }),
        limit: query.limit,
      });
      return c.json({ alerts: rows.map(viewAlert) });
    })
    .get('/sites/:id/alerts', async (c) => {
      const raw = c.req.param('id');
      const siteId = Number(raw);
      const site =
        Number.isSafeInteger(siteId) && siteId > 0 ? await findSite(storage.db, siteId) : undefined;
      if (!site) throw new HashwattError('not_found', `no site with id ${raw}`);
      const query = parseQuery(SiteAlertsQuery, c.req.query());
      const rows = await listAlerts(storage.db, { state: query.state, siteId, limit: query.limit });
      return c.json({ site: { id: site.id, name: site.name }, alerts: rows.map(viewAlert) });
    });
}
