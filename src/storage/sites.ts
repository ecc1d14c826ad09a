import { type Kysely, sql } from 'kysely';
import { isTransientConflict } from './errors.ts';
import { deleteSiteRollups } from './rollups.ts';
import type { Database, SiteKind, SiteRow } from './schema.ts';

export interface NewSiteInput {
  name: string;
  kind: SiteKind;
  capacity_w: number;
  region?: string | null;
  timezone?: string | null;
  metadata?: Record<string, unknown>;
  token_hash: Uint8Array;
}

export interface SitePatch {
  name?: string;
  kind?: SiteKind;
  capacity_w?: number;
  region?: string | null;
  timezone?: string | null;
  metadata?: Record<string, unknown>;
  /** Threshold overrides to set, merged into the stored ones. */
  thresholdsSet?: Record<string, number>;
  /** Threshold overrides to remove (back to the global default). */
  thresholdsRemove?: string[];
}

/** Inserts a site; returns undefined when the name is taken. */
export async function insertSite(db: Kysely<Database>, input: NewSiteInput): Promise<SiteRow | undefined> {
  return db
    .insertInto('sites')
    .values({
      name: input.name,
      kind: input.kind,
      capacity_w: input.capacity_w,
      region: input.region ?? null,
      timezone: input.timezone ?? null,
      metadata: JSON.stringify(input.metadata ?? {}),
      token_hash: Buffer.from(input.token_hash),
    })
    .onConflict((oc) => oc.column('name').doNothing())
    .returningAll()
    .executeTakeFirst();
}

export async function listSites(db: Kysely<Database>): Promise<SiteRow[]> {
  return db.selectFrom('sites').selectAll().orderBy('id').execute();
}

export async function findSite(db: Kysely<Database>, id: number): Promise<SiteRow | undefined> {
  return db.selectFrom('sites').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findSiteByName(db: Kysely<Database>, name: string): Promise<SiteRow | undefined> {
  return db.selectFrom('sites').selectAll().where('name', '=', name).executeTakeFirst();
}

/** The site holding a token digest (looked up by its unique index). */
export async function findSiteByTokenHash(
  db: Kysely<Database>,
  tokenHash: Uint8Array,
): Promise<Pick<SiteRow, 'id' | 'name' | 'kind' | 'token_hash'> | undefined> {
  return db
    .selectFrom('sites')
    .select(['id', 'name', 'kind', 'token_hash'])
    .where('token_hash', '=', Buffer.from(tokenHash))
    .executeTakeFirst();
}

/** Applies a partial update; threshold overrides merge in one statement, so concurrent patches do not lose keys. */
export async function updateSite(
  db: Kysely<Database>,
  id: number,
  patch: SitePatch,
): Promise<SiteRow | undefined> {
  const { metadata, thresholdsSet, thresholdsRemove, ...columns } = patch;
  const touchesThresholds = thresholdsSet !== undefined || thresholdsRemove !== undefined;
  return db
    .updateTable('sites')
    .set({
      ...columns,
      ...(metadata !== undefined && { metadata: JSON.stringify(metadata) }),
      ...(touchesThresholds && {
        thresholds: sql`(thresholds || ${JSON.stringify(thresholdsSet ?? {})}::jsonb) - ${thresholdsRemove ?? []}::text[]`,
      }),
      updated_at: sql`now()`,
    })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

/** Replaces a site's token digest; the old token stops matching in the same statement. */
export async function replaceTokenHash(
  db: Kysely<Database>,
  id: number,
  tokenHash: Uint8Array,
): Promise<boolean> {
  const result = await db
    .updateTable('sites')
    .set({ token_hash: Buffer.from(tokenHash), updated_at: sql`now()` })
    .where('id', '=', id)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** True when any device or reading of the site is stored. */
async function siteHasData(db: Kysely<Database>, id: number): Promise<boolean> {
  const device = await db
    .selectFrom('devices')
    .select('id')
    .where('site_id', '=', id)
    .limit(1)
    .executeTakeFirst();
  if (device) return true;
  const reading = await db
    .selectFrom('readings')
    .select('ts')
    .where('site_id', '=', id)
    .limit(1)
    .executeTakeFirst();
  return reading !== undefined;
}

/** What a delete did: the site is gone, was not there, or (without purge) still holds data. */
export type DeleteOutcome = 'deleted' | 'missing' | 'has_data';

/**
 * Deletes a site with its devices, latest state and readings; with `onlyIfEmpty`, only when it has
 * none. The emptiness check runs under the site row's lock, so a batch committed (and acknowledged)
 * between a check and the delete cannot be erased by a delete that was not asked to purge.
 */
export async function deleteSiteWith(
  db: Kysely<Database>,
  id: number,
  { onlyIfEmpty }: { onlyIfEmpty: boolean },
): Promise<DeleteOutcome> {
  const attempt = () =>
    db.transaction().execute(async (trx): Promise<DeleteOutcome> => {
      // Locked first: this waits for every transaction holding a lock on the row (writeReadings'
      // key share, a device registration's no-key update) to commit, and makes any that start later
      // find the site gone, so no reading or device can land under the id after the purge has run.
      const site = await trx
        .selectFrom('sites')
        .select('id')
        .where('id', '=', id)
        .forUpdate()
        .executeTakeFirst();
      if (!site) return 'missing';
      if (onlyIfEmpty && (await siteHasData(trx, id))) return 'has_data';
      // readings has no foreign key (it would cost every insert), so it is purged explicitly.
      await trx.deleteFrom('readings').where('site_id', '=', id).execute();
      await trx.deleteFrom('readings_extra').where('site_id', '=', id).execute();
      await deleteSiteRollups(trx, id);
      const result = await trx.deleteFrom('sites').where('id', '=', id).executeTakeFirst();
      return result.numDeletedRows > 0n ? 'deleted' : 'missing';
    });
  try {
    return await attempt();
  } catch (error) {
    // A deadlock victim or serialisation conflict is rolled back whole: once more is safe.
    if (isTransientConflict(error)) return attempt();
    throw error;
  }
}

/** Deletes a site with its devices, latest state and readings (a purge); false when it was not there. */
export async function deleteSite(db: Kysely<Database>, id: number): Promise<boolean> {
  return (await deleteSiteWith(db, id, { onlyIfEmpty: false })) === 'deleted';
}
