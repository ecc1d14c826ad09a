import type { Context, MiddlewareHandler } from 'hono';
import { HashwattError } from '../errors.ts';
import type { AuthenticatedSite } from '../ingest/pipeline.ts';
import { bearerToken, digestsEqual, hashToken } from '../sites/tokens.ts';

/** Resolves a presented ingest token to its site (or undefined). */
export type SiteAuthenticator = (token: string) => Promise<AuthenticatedSite | undefined>;

const unauthorized = (message: string) => new HashwattError('unauthorized', message);

/** Requires the admin bearer token; with no admin token configured, the admin API is closed. */
export function requireAdmin(adminToken: string | undefined): MiddlewareHandler {
  const expected = adminToken ? hashToken(adminToken) : undefined;
  return async (c, next) => {
    const token = bearerToken(c.req.header('authorization'));
    if (!expected) throw unauthorized('the admin API is disabled: set HASHWATT_ADMIN_TOKEN');
    if (!token || !digestsEqual(hashToken(token), expected))
      throw unauthorized('missing or wrong admin token');
    await next();
  };
}

/** Requires a site's ingest token and puts the site on the context; the site never comes from the payload. */
export function requireSite(
  authenticate: SiteAuthenticator,
): MiddlewareHandler<{ Variables: { site: AuthenticatedSite } }> {
  return async (c, next) => {
    const site = await authenticateRequest(c, authenticate);
    c.set('site', site);
    await next();
  };
}

export async function authenticateRequest(
  c: Context,
  authenticate: SiteAuthenticator,
): Promise<AuthenticatedSite> {
  return authenticateHeader(c.req.header('authorization'), authenticate);
}

/** Shared by HTTP and the WebSocket upgrade. */
export async function authenticateHeader(
  header: string | undefined,
  authenticate: SiteAuthenticator,
): Promise<AuthenticatedSite> {
  const token = bearerToken(header);
  if (!token) throw unauthorized('missing bearer token');
  const site = await authenticate(token);
  if (!site) throw unauthorized('unknown token');
  return site;
}
