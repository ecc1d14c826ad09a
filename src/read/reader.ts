import type { Context } from 'hono';
import { HashwattError } from '../errors.ts';
import type { SiteAuthenticator } from '../http/auth.ts';
import { bearerToken, digestsEqual, hashToken } from '../sites/tokens.ts';
import type { Storage } from '../storage/database.ts';
import type { SiteRow } from '../storage/schema.ts';
import { findSite } from '../storage/sites.ts';
import type { ApiTokenGrant } from '../tokens/index.ts';

/**
 * Who is reading: the admin reads every site, a site's own ingest token only that site. Named
 * tokens (all sites or a listed set) read like each other; an operator may also acknowledge and
 * silence alerts of the sites it reads (`mayOperate`).
 */
export type Reader =
  | { kind: 'admin' }
  | { kind: 'site'; siteId: number }
  /** A named read-only token: every site (`siteIds` undefined) or those listed. */
  | { kind: 'viewer'; tokenId: number; name: string; siteIds: ReadonlySet<number> | undefined }
  /** A named token that reads like a viewer and acknowledges and silences alerts of those sites. */
  | { kind: 'operator'; tokenId: number; name: string; siteIds: ReadonlySet<number> | undefined };

export interface ReaderAuthDeps {
  /** Unset, no token is the admin's; site tokens still read their own site. */
  adminToken: string | undefined;
  authenticateSite: SiteAuthenticator;
  /** Named read-only tokens (src/tokens/); without it only the admin and site tokens read. */
  authenticateViewer?: (token: string) => Promise<ApiTokenGrant | undefined>;
}

const unauthorized = (message: string) => new HashwattError('unauthorized', message);

/** Builds `readerOf(c)`: the reader a request's bearer token names, or a 401. */
export function readerAuthenticator({ adminToken, authenticateSite, authenticateViewer }: ReaderAuthDeps) {
  const adminDigest = adminToken ? hashToken(adminToken) : undefined;
  return async function readerOf(c: Context): Promise<Reader> {
    const token = bearerToken(c.req.header('authorization'));
    if (!token) throw unauthorized('missing bearer token');
    // Compared by digest in constant time, as requireAdmin does: a wrong guess says nothing.
    if (adminDigest && digestsEqual(hashToken(token), adminDigest)) return { kind: 'admin' };
    const viewer = await authenticateViewer?.(token);
    if (viewer) return { kind: viewer.role, tokenId: viewer.id, name: viewer.name, siteIds: viewer.siteIds };
    const site = await authenticateSite(token);
    if (site) return { kind: 'site', siteId: site.id };
    throw unauthorized('unknown token');
  };
}

/** True when the reader may see the site. */
export function mayRead(reader: Reader, siteId: number): boolean {
  switch (reader.kind) {
    case 'admin':
      return true;
    case 'site':
      return reader.siteId === siteId;
    case 'viewer':
    case 'operator':
      return reader.siteIds === undefined || reader.siteIds.has(siteId);
  }
}

/**
 * True when the reader may acknowledge and silence alerts of the site (`null`: of every site at
 * once, which takes a token that reads every site): the admin, and an operator for what it reads.
 */
export function mayOperate(reader: Reader, siteId: number | null): boolean {
  if (reader.kind === 'admin') return true;
  if (reader.kind !== 'operator') return false;
  return siteId === null ? reader.siteIds === undefined : mayRead(reader, siteId);
}

/** Who acts, for the audit fields of acknowledgements and silences: "admin" or the token's name. */
export function actorOf(reader: Reader): { name: string; tokenId: number | null } | undefined {
  if (reader.kind === 'admin') return { name: 'admin', tokenId: null };
  if (reader.kind === 'operator' || reader.kind === 'viewer')
    return { name: reader.name, tokenId: reader.tokenId };
  return undefined;
}

/** The sites a reader is limited to; undefined when it reads every site. */
export function readableSiteIds(reader: Reader): readonly number[] | undefined {
  switch (reader.kind) {
    case 'admin':
      return undefined;
    case 'site':
      return [reader.siteId];
    case 'viewer':
    case 'operator':
      return reader.siteIds === undefined ? undefined : [...reader.siteIds];
  }
}

/**
 * The not-found answer for a site the reader may not see: word for word the answer for a site that
 * does not exist, so a token learns nothing about the other sites, not even that they exist.
 */
export function siteNotFound(siteId: number): HashwattError {
  return new HashwattError('not_found', `no site with id ${siteId}`);
}

/**
 * The site of a `/sites/:id/…` path, when the reader may see it; else the same 404 as a missing
 * site. Every read route that names a site goes through here.
 */
export async function readableSite(storage: Storage, reader: Reader, id: number): Promise<SiteRow> {
  if (!mayRead(reader, id)) throw siteNotFound(id);
  const site = await findSite(storage.db, id);
  if (!site) throw siteNotFound(id);
  return site;
}
