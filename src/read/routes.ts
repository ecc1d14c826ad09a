import { Hono } from 'hono';
import { z } from 'zod';
import { ALERT_NAMES } from '../alerting/rules.ts';
import { viewAlert } from '../alerting/view.ts';
import { DEVICE_KINDS } from '../catalog/index.ts';
import { DEVICE_STATES } from '../fleet/device-state.ts';
import { FleetReader, type FleetSnapshot } from '../fleet/index.ts';
import { resolveThresholds, type Thresholds } from '../fleet/thresholds.ts';
import { countParam, parseParams, parseQuery, storableString } from '../http/validate.ts';
import { SiteIdParams } from '../sites/service.ts';
import { listAlerts } from '../storage/alerts.ts';
import type { Storage } from '../storage/database.ts';
import { listLatestDevices } from '../storage/fleet.ts';
import { cursorParam, encodeCursor } from './cursor.ts';
import {
  mayRead,
  type Reader,
  type ReaderAuthDeps,
  readableSite,
  readerAuthenticator,
  siteNotFound,
} from './reader.ts';
import { groupAlertsBySite, type SiteStatusView, viewLatestDevice, viewSiteState } from './view.ts';

export interface ReadRoutesDeps extends ReaderAuthDeps {
  storage: Storage;
  thresholdDefaults: Thresholds;
  /**
   * The service's fleet snapshot, the one /metrics and the alert engine read; without it the
   * routes take their own snapshots on demand (same code, at most a second old).
   */
  fleet?: FleetReader;
}

/** The query of a route that takes none: an unexpected parameter is a mistake worth naming. */
const NoQuery = z.strictObject({});

/** Query of `GET /api/v1/sites/:id/devices`. */
export const DevicesQuery = z.strictObject({
  state: z.enum(DEVICE_STATES).optional(),
  kind: z.enum(DEVICE_KINDS).optional(),
  /** Case-insensitive substring of the device name (a prefix is one). */
  q: storableString(128).optional(),
  limit: countParam(1, 1000).default(100),
  cursor: cursorParam.optional(),
});

/**
 * The snapshot, retaken once when it predates a site the caller is about to read (a site created
 * under a second ago): a site that exists is never answered as missing.
 */
async function snapshotWith(fleet: FleetReader, siteId?: number): Promise<FleetSnapshot> {
  const snapshot = await fleet.read();
  if (siteId === undefined || snapshot.sites.some((s) => s.siteId === siteId)) return snapshot;
  return fleet.refresh();
}

/**
 * The "now" read API: fleet, one site's status, its devices. Readable by the admin token and by a
 * site's own ingest token (its site only; any other site answers 404). Mount at /api/v1, ahead of
 * the admin-only `/api/v1/sites/*` middleware: these handlers authenticate for themselves.
 */
export function readRoutes(deps: ReadRoutesDeps) {
  const { storage, thresholdDefaults } = deps;
  const fleet = deps.fleet ?? new FleetReader(storage, thresholdDefaults);
  const readerOf = readerAuthenticator(deps);

  /** The site states and firing alerts of the sites `reader` may see, all of them or one. */
  async function siteViews(
    reader: Reader,
    siteId?: number,
  ): Promise<{ asOf: string; sites: SiteStatusView[] }> {
    const only = siteId ?? (reader.kind === 'site' ? reader.siteId : undefined);
    const snapshot = await snapshotWith(fleet, only);
    const alerts = await listAlerts(storage.db, {
      state: 'firing',
      ...(only !== undefined && { siteId: only }),
      // A site has at most one open alert per rule (alerts_open_idx), and the engine raises them
      // only for sites of a snapshot: this bound loses none.
      limit: ALERT_NAMES.length * (only === undefined ? Math.max(1, snapshot.sites.length) : 1),
    });
    const firing = groupAlertsBySite(alerts.map(viewAlert));
    const sites = snapshot.sites
      .filter((s) => (only === undefined || s.siteId === only) && mayRead(reader, s.siteId))
      .map((s) => viewSiteState(s, firing.get(s.siteId) ?? []));
    return { asOf: new Date(snapshot.takenAtMs).toISOString(), sites };
  }

  /** The site of a `/sites/:id/…` path the reader may see, or the same 404 as a missing one. */
  const siteOf = (reader: Reader, params: Record<string, string>) =>
    readableSite(storage, reader, parseParams(SiteIdParams, params).id);

  return new Hono()
    .get('/fleet', async (c) => {
      const reader = await readerOf(c);
      parseQuery(NoQuery, c.req.query());
      const { asOf, sites } = await siteViews(reader);
      return c.json({ as_of: asOf, sites });
    })
    .get('/sites/:id/status', async (c) => {
      const reader = await readerOf(c);
      const site = await siteOf(reader, c.req.param());
      parseQuery(NoQuery, c.req.query());
      const { asOf, sites } = await siteViews(reader, site.id);
      // Deleted between the lookup and the snapshot.
      if (!sites[0]) throw siteNotFound(site.id);
      return c.json({ as_of: asOf, site: sites[0] });
    })
    .get('/sites/:id/devices', async (c) => {
      const reader = await readerOf(c);
      const site = await siteOf(reader, c.req.param());
      const query = parseQuery(DevicesQuery, c.req.query());
      const nowMs = Date.now();
      const staleAfterS = resolveThresholds(thresholdDefaults, site.thresholds).device_stale_after_s;
      // One row past the page says whether there is a next one.
      const rows = await listLatestDevices(
        storage.db,
        site.id,
        nowMs,
        { deviceStaleAfterS: thresholdDefaults.device_stale_after_s },
        {
          state: query.state,
          kind: query.kind,
          nameContains: query.q,
          afterName: query.cursor,
          limit: query.limit + 1,
        },
      );
      const page = rows.slice(0, query.limit);
      const last = page.at(-1);
      return c.json({
        as_of: new Date(nowMs).toISOString(),
        site: { id: site.id, name: site.name },
        devices: page.map((row) => viewLatestDevice(row, nowMs, staleAfterS)),
        next_cursor: rows.length > query.limit && last ? encodeCursor(last.external_id) : null,
      });
    });
}
