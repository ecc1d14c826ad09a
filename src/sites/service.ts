import { z } from 'zod';
import { HashwattError } from '../errors.ts';
import { resolveThresholds, type Thresholds, ThresholdsPatchSchema } from '../fleet/thresholds.ts';
import { idParam, storableJsonObject, storableString } from '../http/validate.ts';
import type { AuthenticatedSite } from '../ingest/pipeline.ts';
import type { Storage } from '../storage/database.ts';
import { isSiteNameTaken } from '../storage/errors.ts';
import { SITE_KINDS, type SiteRow } from '../storage/schema.ts';
import * as sites from '../storage/sites.ts';
import { digestsEqual, generateToken, hashToken } from './tokens.ts';

// Free-form, but stored exactly as sent: bounded so that Postgres's recursive jsonb parser and the
// per-request memory stay small, and refused (never altered) when jsonb cannot hold it as sent.
const metadata = storableJsonObject({ maxDepth: 16, maxBytes: 64 * 1024 });
const capacityKw = z.number().min(0).max(10_000_000); // up to 10 GW

/** Body of `POST /api/v1/sites`. */
export const NewSiteRequest = z.strictObject({
  name: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, 'letters, digits, space, dot, underscore, dash'),
  kind: z.enum(SITE_KINDS),
  capacity_kw: capacityKw,
  region: storableString(100).nullish(),
  timezone: storableString(64).nullish(),
  metadata: metadata.optional(),
});
export type NewSiteRequest = z.infer<typeof NewSiteRequest>;

/** Body of `PATCH /api/v1/sites/:id`: any subset, plus threshold overrides (`null` resets one). */
export const SitePatchRequest = NewSiteRequest.partial().extend({
  thresholds: ThresholdsPatchSchema.optional(),
});
export type SitePatchRequest = z.infer<typeof SitePatchRequest>;

/** Path parameters of every `/sites/:id…` route: the one place a site id in a path is read. */
export const SiteIdParams = z.strictObject({ id: idParam });
export type SiteIdParams = z.infer<typeof SiteIdParams>;

/** A site as the API shows it (never its token or token hash). */
export interface SiteView {
  id: number;
  name: string;
  kind: SiteRow['kind'];
  capacity_w: number;
  capacity_kw: number;
  region: string | null;
  timezone: string | null;
  metadata: Record<string, unknown>;
  /** The thresholds in force: the site's overrides over the global defaults. */
  thresholds: Thresholds;
  /** Only the site's own overrides. */
  threshold_overrides: Partial<Thresholds>;
  created_at: string;
  updated_at: string;
}

export function viewSite(row: SiteRow, defaults: Thresholds): SiteView {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    capacity_w: row.capacity_w,
    capacity_kw: row.capacity_w / 1000,
    region: row.region,
    timezone: row.timezone,
    metadata: row.metadata,
    thresholds: resolveThresholds(defaults, row.thresholds),
    threshold_overrides: row.thresholds as Partial<Thresholds>,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

const notFound = (id: number) => new HashwattError('not_found', `no site with id ${id}`);

/** Creates a site and its first ingest token, which is returned only here. */
export async function createSite(
  storage: Storage,
  defaults: Thresholds,
  input: NewSiteRequest,
): Promise<{ site: SiteView; token: string }> {
  const token = generateToken();
  const row = await sites.insertSite(storage.db, {
    name: input.name,
    kind: input.kind,
    capacity_w: input.capacity_kw * 1000,
    region: input.region ?? null,
    timezone: input.timezone ?? null,
    metadata: input.metadata ?? {},
    token_hash: hashToken(token),
  });
  if (!row) throw new HashwattError('site_exists', `a site named "${input.name}" exists`, { field: 'name' });
  return { site: viewSite(row, defaults), token };
}

export async function listSites(storage: Storage, defaults: Thresholds): Promise<SiteView[]> {
  return (await sites.listSites(storage.db)).map((row) => viewSite(row, defaults));
}

export async function getSite(storage: Storage, defaults: Thresholds, id: number): Promise<SiteView> {
  const row = await sites.findSite(storage.db, id);
  if (!row) throw notFound(id);
  return viewSite(row, defaults);
}

export async function updateSite(
  storage: Storage,
  defaults: Thresholds,
  id: number,
  patch: SitePatchRequest,
): Promise<SiteView> {
  const { capacity_kw, thresholds, ...rest } = patch;
  const set: Record<string, number> = {};
  const remove: string[] = [];
  for (const [name, value] of Object.entries(thresholds ?? {})) {
    if (value === null) remove.push(name);
    else if (value !== undefined) set[name] = value;
  }
  const row = await sites
    .updateSite(storage.db, id, {
      ...rest,
      ...(capacity_kw !== undefined && { capacity_w: capacity_kw * 1000 }),
      ...(thresholds !== undefined && { thresholdsSet: set, thresholdsRemove: remove }),
    })
    .catch((error: unknown) => {
      // A rename onto a taken name: the unique index is the only race-free check.
      if (isSiteNameTaken(error)) {
        throw new HashwattError('site_exists', `a site named "${patch.name}" exists`, { field: 'name' });
      }
      throw error;
    });
  if (!row) throw notFound(id);
  return viewSite(row, defaults);
}

/** Issues a new token; the old one stops working with the same statement. */
export async function rotateToken(storage: Storage, id: number): Promise<string> {
  const token = generateToken();
  if (!(await sites.replaceTokenHash(storage.db, id, hashToken(token)))) throw notFound(id);
  return token;
}

/** Deletes a site; refuses while it holds data unless `purge`. */
export async function deleteSite(storage: Storage, id: number, purge: boolean): Promise<void> {
  const outcome = await sites.deleteSiteWith(storage.db, id, { onlyIfEmpty: !purge });
  if (outcome === 'missing') throw notFound(id);
  if (outcome === 'has_data') {
    throw new HashwattError('site_has_data', 'the site has devices or readings; delete with ?purge=true');
  }
}

/** The site a token belongs to, looked up by its digest and compared in constant time. */
export async function authenticateToken(
  storage: Storage,
  token: string,
): Promise<AuthenticatedSite | undefined> {
  const digest = hashToken(token);
  const site = await sites.findSiteByTokenHash(storage.db, digest);
  if (!site || !digestsEqual(site.token_hash, digest)) return undefined;
  return { id: site.id, name: site.name };
}
