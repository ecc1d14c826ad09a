import { Hono } from 'hono';
import { HashwattError } from '../errors.ts';
import type { Thresholds } from '../fleet/thresholds.ts';
import { parseJson } from '../http/body.ts';
import { parseBody } from '../http/validate.ts';
import type { Storage } from '../storage/database.ts';
import * as service from './service.ts';

export interface SiteRoutesDeps {
  storage: Storage;
  thresholdDefaults: Thresholds;
  /** Called after a site is deleted, so caches keyed by site can forget it. */
  onSiteDeleted?: (siteId: number) => void;
}

function siteId(raw: string): number {
  const id = Number(raw);
  if (!Number.isSafeInteger(id) || id <= 0) throw new HashwattError('not_found', `no site with id ${raw}`);
  return id;
}

async function jsonOf(request: Request): Promise<unknown> {
  return parseJson(await request.text());
}

/** The admin API for sites; mount behind the admin-token check. */
export function siteRoutes({ storage, thresholdDefaults: defaults, onSiteDeleted }: SiteRoutesDeps) {
  return new Hono()
    .post('/', async (c) => {
      const input = parseBody(service.NewSiteRequest, await jsonOf(c.req.raw));
      return c.json(await service.createSite(storage, defaults, input), 201);
    })
    .get('/', async (c) => c.json({ sites: await service.listSites(storage, defaults) }))
    .get('/:id', async (c) =>
      c.json({ site: await service.getSite(storage, defaults, siteId(c.req.param('id'))) }),
    )
    .patch('/:id', async (c) => {
      const patch = parseBody(service.SitePatchRequest, await jsonOf(c.req.raw));
      return c.json({ site: await service.updateSite(storage, defaults, siteId(c.req.param('id')), patch) });
    })
    .post('/:id/token', async (c) =>
      c.json({ token: await service.rotateToken(storage, siteId(c.req.param('id'))) }),
    )
    .delete('/:id', async (c) => {
      const id = siteId(c.req.param('id'));
      await service.deleteSite(storage, id, c.req.query('purge') === 'true');
      onSiteDeleted?.(id);
      return c.body(null, 204);
    });
}
