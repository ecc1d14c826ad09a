import { type Kysely, sql } from 'kysely';
import type { ApiTokenRole, ApiTokenRow, Database } from './schema.ts';

export interface NewApiToken {
  name: string;
  role: ApiTokenRole;
  siteIds: number[] | null;
  tokenHash: Uint8Array;
}

/** Inserts a token; undefined when the name is taken. */
export async function insertApiToken(
  db: Kysely<Database>,
  input: NewApiToken,
): Promise<ApiTokenRow | undefined> {
  return db
    .insertInto('api_tokens')
    .values({
      name: input.name,
      role: input.role,
      site_ids: input.siteIds,
      token_hash: Buffer.from(input.tokenHash),
    })
    .onConflict((oc) => oc.column('name').doNothing())
    .returningAll()
    .executeTakeFirst();
}

export async function listApiTokens(db: Kysely<Database>): Promise<ApiTokenRow[]> {
  return db.selectFrom('api_tokens').selectAll().orderBy('id').execute();
}

/** The live (not revoked) token holding a digest. */
export async function findApiTokenByHash(
  db: Kysely<Database>,
  tokenHash: Uint8Array,
): Promise<ApiTokenRow | undefined> {
  return db
    .selectFrom('api_tokens')
    .selectAll()
    .where('token_hash', '=', Buffer.from(tokenHash))
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
}

/** Revokes a token (kept, for its history); false when there is no live token with that id. */
export async function revokeApiToken(db: Kysely<Database>, id: number): Promise<boolean> {
  const result = await db
    .updateTable('api_tokens')
    .set({ revoked_at: sql`now()` })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * Records a use, at most once a minute per token: every read request would otherwise be a write,
 * and "last used" is for spotting forgotten tokens, not for auditing each request.
 */
export async function touchApiToken(db: Kysely<Database>, id: number): Promise<void> {
  await db
    .updateTable('api_tokens')
    .set({ last_used_at: sql`now()` })
    .where('id', '=', id)
    .where((eb) =>
      eb.or([
        eb('last_used_at', 'is', null),
        eb('last_used_at', '<', sql<Date>`now() - interval '1 minute'`),
      ]),
    )
    .execute();
}
