import type { Storage } from '../../src/storage/database.ts';
import type { ReadingRecord } from '../../src/storage/readings.ts';
import type { DeviceKind } from '../../src/storage/schema.ts';

export interface InsertedSite {
  id: number;
  capacity_w: number;
  /** Device ids by name. */
  ids: Map<string, number>;
  kinds: Map<string, DeviceKind>;
  /** A reading of one of its devices at `tsMs`, ready for writeReadings. */
  record(device: string, tsMs: number, metrics: Partial<ReadingRecord>): ReadingRecord;
}

/** A site and its devices straight in the database, for storage-level tests. */
export async function insertSite(
  storage: Storage,
  name: string,
  devices: readonly [string, DeviceKind][],
  options: { capacityW?: number; timezone?: string | null } = {},
): Promise<InsertedSite> {
  const row = await storage.db
    .insertInto('sites')
    .values({
      name,
      kind: 'mixed',
      capacity_w: options.capacityW ?? 1e6,
      region: null,
      timezone: options.timezone ?? null,
      token_hash: Buffer.from(name.padEnd(32, '-')),
    })
    .returning(['id', 'capacity_w'])
    .executeTakeFirstOrThrow();
  const rows = await storage.db
    .insertInto('devices')
    .values(devices.map(([external_id, kind]) => ({ site_id: row.id, external_id, kind, model: null })))
    .returning(['id', 'external_id'])
    .execute();
  const ids = new Map(rows.map((d) => [d.external_id, d.id]));
  const kinds = new Map(devices);
  return {
    id: row.id,
    capacity_w: row.capacity_w,
    ids,
    kinds,
    record: (device, tsMs, metrics) => ({
      site_id: row.id,
      device_id: ids.get(device)!,
      kind: kinds.get(device)!,
      ts_us: tsMs * 1000,
      received_ms: tsMs,
      ...metrics,
    }),
  };
}
