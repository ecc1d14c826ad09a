import { type Kysely, sql } from 'kysely';
import { HashwattError } from '../errors.ts';
import { isForeignKeyViolation } from './errors.ts';
import type { Database, DeviceKind } from './schema.ts';

export interface KnownDevice {
  id: number;
  external_id: string;
  kind: DeviceKind;
}

export interface DeviceToRegister {
  external_id: string;
  kind: DeviceKind;
  model: string | null;
}

export interface RegistrationResult {
  devices: KnownDevice[];
  /** External ids refused because the site reached its device cap. */
  overCap: string[];
}

/** The site's devices among `externalIds`. */
export async function findDevices(
  db: Kysely<Database>,
  siteId: number,
  externalIds: readonly string[],
): Promise<KnownDevice[]> {
  if (externalIds.length === 0) return [];
  return db
    .selectFrom('devices')
    .select(['id', 'external_id', 'kind'])
    .where('site_id', '=', siteId)
    .where('external_id', 'in', externalIds)
    .execute();
}

/**
 * Registers devices seen for the first time, up to the site's cap. Registrations of one site are
 * serialised on the site's row, so replicas racing on the same new devices neither exceed the cap
 * nor fail: a device another writer registered first is simply read back.
 */
export async function registerDevices(
  db: Kysely<Database>,
  siteId: number,
  candidates: readonly DeviceToRegister[],
  maxDevicesPerSite: number,
): Promise<RegistrationResult> {
  if (candidates.length === 0) return { devices: [], overCap: [] };
  try {
    return await registerLocked(db, siteId, candidates, maxDevicesPerSite);
  } catch (error) {
    // Unreachable while every delete of a site takes its row first, as deleteSite does (the lock
    // below then orders the two); kept so that one that does not still answers "site gone", never 500.
    if (isForeignKeyViolation(error)) throw siteGone(siteId);
    throw error;
  }
}

function siteGone(siteId: number): HashwattError {
  return new HashwattError('not_found', `site ${siteId} no longer exists`);
}

async function registerLocked(
  db: Kysely<Database>,
  siteId: number,
  candidates: readonly DeviceToRegister[],
  maxDevicesPerSite: number,
): Promise<RegistrationResult> {
  return db.transaction().execute(async (trx) => {
    // FOR NO KEY UPDATE serialises registrations of the site (the cap holds across replicas)
    // without waiting on the key-share locks of its write transactions; a purge (FOR UPDATE) and
    // a registration wait for each other, and a registration after the purge finds no row.
    const site = await trx
      .selectFrom('sites')
      .select('id')
      .where('id', '=', siteId)
      .forNoKeyUpdate()
      .executeTakeFirst();
    if (!site) throw siteGone(siteId);
    const existing = await findDevices(
      trx,
      siteId,
      candidates.map((c) => c.external_id),
    );
    const known = new Set(existing.map((d) => d.external_id));
    const fresh = candidates.filter((c) => !known.has(c.external_id));
    if (fresh.length === 0) return { devices: existing, overCap: [] };

    const { n } = await trx
      .selectFrom('devices')
      .select(sql<number>`count(*)::int`.as('n'))
      .where('site_id', '=', siteId)
      .executeTakeFirstOrThrow();
    const room = Math.max(0, maxDevicesPerSite - n);
    const admitted = fresh.slice(0, room);
    const inserted =
      admitted.length === 0
        ? []
        : await trx
            .insertInto('devices')
            .values(
              admitted.map((c) => ({
                site_id: siteId,
                external_id: c.external_id,
                kind: c.kind,
                model: c.model,
              })),
            )
            .returning(['id', 'external_id', 'kind'])
            .execute();
    return {
      devices: [...existing, ...inserted],
      overCap: fresh.slice(room).map((c) => c.external_id),
    };
  });
}

/** Number of registered devices of a site. */
export async function countDevices(db: Kysely<Database>, siteId: number): Promise<number> {
  const { n } = await db
    .selectFrom('devices')
    .select(sql<number>`count(*)::int`.as('n'))
    .where('site_id', '=', siteId)
    .executeTakeFirstOrThrow();
  return n;
}
