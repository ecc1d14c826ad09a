import { Hono } from 'hono';
import { z } from 'zod';
import type { Thresholds } from '../fleet/thresholds.ts';
import { adminBodyLimit, parseBody, parseParams, parseQuery, readAdminJson } from '../http/validate.ts';
import type { Storage } from '../storage/database.ts';
import * as service from './service.ts';

export interface SiteRoutesDeps {
  storage: Storage;
  thresholdDefaults: Thresholds;
  /** Called after a site is deleted, so caches keyed by site can forget it. */
  onSiteDeleted?: (siteId: number) => void;
  /** After a token rotation or a patch committed here (other replicas hear it from the change feed). */
  onSiteChanged?: (siteId: number) => void;
}

/** The query of a route that takes none: an unexpected parameter is a mistake worth naming. */
const NoQuery = z.strictObject({});

/** Query of `DELETE /api/v1/sites/:id`: anything but `true` or `false` would silently not purge. */
export const DeleteSiteQuery = z.strictObject({ purge: z.enum(['true', 'false']).optional() });

/** The admin API for sites; mount behind the admin-token check. */
export function siteRoutes({
  storage,
  thresholdDefaults: defaults,
  onSiteDeleted,
  onSiteChanged,
}: SiteRoutesDeps) {
  return new Hono()
    .use(adminBodyLimit())
    .post('/', async (c) => {
      parseQuery(NoQuery, c.req.query());
      const input = parseBody(service.NewSiteRequest, await readAdminJson(c.req.raw));
      return c.json(await service.createSite(storage, defaults, input), 201);
    })
    .get('/', async (c) => {
      parseQuery(NoQuery, c.req.query());
      return c.json({ sites: await service.listSites(storage, defaults) });
    })
    .get('/:id', async (c) => {
      const { id } = parseParams(service.SiteIdParams, c.req.param());
      parseQuery(NoQuery, c.req.query());
      return c.json({ site: await service.getSite(storage, defaults, id) });
    })
    .patch('/:id', async (c) => {
      const { id } = parseParams(service.SiteIdParams, c.req.param());
      parseQuery(NoQuery, c.req.query());
      const patch = parseBody(service.SitePatchRequest, await readAdminJson(c.req.raw));
      const site = await service.updateSite(storage, defaults, id, patch);
      onSiteChanged?.(id);
      return c.json({ site });
    })
    .post('/:id/token', async (c) => {
      const { id } = parseParams(service.SiteIdParams, c.req.param());
      parseQuery(NoQuery, c.req.query());
      const token = await service.rotateToken(storage, id);
      onSiteChanged?.(id);
      return c.json({ token });
    })
    .delete('/:id', async (c) => {
      const { id } = parseParams(service.SiteIdParams, c.req.param());
      const { purge } = parseQuery(DeleteSiteQuery, c.req.query());
      await service.deleteSite(storage, id, purge === 'true');
      onSiteDeleted?.(id);
      return c.body(null, 204);
    });
}
