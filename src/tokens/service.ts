import { z } from 'zod';
import { HashwattError } from '../errors.ts';
import { idParam } from '../http/validate.ts';
import { generateToken, hashToken } from '../sites/tokens.ts';
import * as tokens from '../storage/api-tokens.ts';
import type { Storage } from '../storage/database.ts';
import { API_TOKEN_ROLES, type ApiTokenRole, type ApiTokenRow } from '../storage/schema.ts';
import { findSite } from '../storage/sites.ts';

/** Body of `POST /api/v1/tokens`. */
export const NewApiTokenRequest = z.strictObject({
  name: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9][A-Za-z0-9 ._@-]*$/, 'letters, digits, space, dot, underscore, at, dash')
    // Acknowledgements and silences name the admin token "admin": no named token may pass for it.
    .refine((name) => name.toLowerCase() !== 'admin', '"admin" names the admin token'),
  /** `viewer` reads; `operator` reads and acknowledges and silences alerts of those sites. */
  role: z.enum(API_TOKEN_ROLES),
  /** The sites it may read (and, for an operator, act on); absent = every site. */
  sites: z.array(z.number().int().min(1).max(2_147_483_647)).min(1).max(1000).optional(),
});
export type NewApiTokenRequest = z.infer<typeof NewApiTokenRequest>;

export const ApiTokenIdParams = z.strictObject({ id: idParam });

/** A token as the API shows it: never the token or its hash. */
export interface ApiTokenView {
  id: number;
  name: string;
  role: ApiTokenRole;
  /** null: every site. */
  sites: number[] | null;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export function viewApiToken(row: ApiTokenRow): ApiTokenView {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    sites: row.site_ids,
    created_at: row.created_at.toISOString(),
    last_used_at: row.last_used_at?.toISOString() ?? null,
    revoked_at: row.revoked_at?.toISOString() ?? null,
  };
}

/** Named tokens (viewer and operator) carry their own prefix, so a leaked one is told apart from an ingest token at a glance. */
const VIEWER_PREFIX = 'hwr_';

/** Creates a named token; the token is returned only here. */
export async function createApiToken(
  storage: Storage,
  input: NewApiTokenRequest,
): Promise<{ api_token: ApiTokenView; token: string }> {
  const siteIds = input.sites === undefined ? null : [...new Set(input.sites)].sort((a, b) => a - b);
  for (const id of siteIds ?? []) {
    if (!(await findSite(storage.db, id)))
      throw new HashwattError('invalid_body', `no site with id ${id}`, { field: 'sites' });
  }
  const token = VIEWER_PREFIX + generateToken().slice(3);
  const row = await tokens.insertApiToken(storage.db, {
    name: input.name,
    role: input.role,
    siteIds,
    tokenHash: hashToken(token),
  });
  if (!row)
    throw new HashwattError('token_exists', `a token named "${input.name}" exists`, { field: 'name' });
  return { api_token: viewApiToken(row), token };
}

export async function listApiTokens(storage: Storage): Promise<ApiTokenView[]> {
  return (await tokens.listApiTokens(storage.db)).map(viewApiToken);
}

export async function revokeApiToken(storage: Storage, id: number): Promise<void> {
  if (!(await tokens.revokeApiToken(storage.db, id)))
    throw new HashwattError('not_found', `no live token with id ${id}`);
}

/** What a presented named token may do. */
export interface ApiTokenGrant {
  id: number;
  name: string;
  role: ApiTokenRole;
  /** undefined: every site. */
  siteIds: ReadonlySet<number> | undefined;
}

/** The grant of a presented token, or undefined; records the use (throttled). */
export async function authenticateApiToken(
  storage: Storage,
  token: string,
): Promise<ApiTokenGrant | undefined> {
  if (!token.startsWith(VIEWER_PREFIX)) return undefined;
  const row = await tokens.findApiTokenByHash(storage.db, hashToken(token));
  if (!row) return undefined;
  // Off the request's path: a failed touch must not fail the read.
  tokens.touchApiToken(storage.db, row.id).catch(() => {});
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    siteIds: row.site_ids === null ? undefined : new Set(row.site_ids),
  };
}
