import { Hono } from 'hono';
import { z } from 'zod';
import { parseParams, parseQuery } from '../http/validate.ts';
import { type ReaderAuthDeps, readableSite, readerAuthenticator } from '../read/reader.ts';
import { SiteIdParams } from '../sites/service.ts';
import type { Storage } from '../storage/database.ts';
import { EnergyQuery, siteEnergy } from './energy.ts';
import { SeriesQuery } from './query.ts';
import { deviceSeries, siteSeries } from './series.ts';

const SiteDeviceParams = z.strictObject({ id: SiteIdParams.shape.id, device: z.string().min(1).max(256) });

/** The flat tariff a site may carry in its metadata (`power_price_per_mwh`), for energy cost. */
function tariffOf(metadata: Record<string, unknown>): number | null {
  const price = metadata.power_price_per_mwh;
  return typeof price === 'number' && Number.isFinite(price) ? price : null;
}

/**
 * History: series of a site or a device, and energy. Readable by whoever may read the site (the
 * admin, the site's own token); any other site answers 404. Mount at /api/v1, with the read routes.
 */
export function historyRoutes(
  deps: ReaderAuthDeps & {
    storage: Storage;
    /** Where series and energy are read: a streaming standby when configured, else `storage`. */
    history?: Storage;
    now?: () => number;
    minuteRetentionDays?: number;
  },
) {
  const { storage } = deps;
  // Who may read and the site itself come from the primary (fresh); the history from `history`.
  const history = deps.history ?? storage;
  const now = deps.now ?? Date.now;
  const readerOf = readerAuthenticator(deps);

  const siteOf = async (c: Parameters<typeof readerOf>[0], id: number) =>
    readableSite(storage, await readerOf(c), id);

  return new Hono()
    .get('/sites/:id/series', async (c) => {
      const { id } = parseParams(SiteIdParams, c.req.param());
      const query = parseQuery(SeriesQuery, c.req.query());
      const site = await siteOf(c, id);
      return c.json(await siteSeries(history, site, query, now()));
    })
    .get('/sites/:id/devices/:device/series', async (c) => {
      const { id, device } = parseParams(SiteDeviceParams, c.req.param());
      const query = parseQuery(SeriesQuery, c.req.query());
      await siteOf(c, id);
      return c.json(await deviceSeries(history, id, device, query, now()));
    })
    .get('/sites/:id/energy', async (c) => {
      const { id } = parseParams(SiteIdParams, c.req.param());
      const query = parseQuery(EnergyQuery, c.req.query());
      const site = await siteOf(c, id);
      return c.json(
        await siteEnergy(
          history,
          {
            id: site.id,
            capacity_w: site.capacity_w,
            timezone: site.timezone,
            tariffPerMwh: tariffOf(site.metadata),
            minuteTierFromMs: now() - (deps.minuteRetentionDays ?? 90) * 86_400_000,
          },
          query,
          now(),
        ),
      );
    });
}
