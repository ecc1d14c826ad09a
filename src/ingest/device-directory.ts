import type { Kysely } from 'kysely';
import { findDevices, registerDevices } from '../storage/devices.ts';
import {
  allocColumns,
  kindIndex,
  type ReadingColumns,
  setExtras,
  statusIndex,
} from '../storage/reading-columns.ts';
import { type Database, DEVICE_KINDS, type DeviceKind, NUMERIC_METRICS } from '../storage/schema.ts';
import { ConcurrencyLimit } from './concurrency.ts';
import type { Rejection, ValidReading } from './reading.ts';

/**
 * A known device as one number: its id times KIND_SLOTS plus its kind's index. The cache holds one
 * per device of the fleet for the life of the process, and an object per device (with its own copy
 * of the kind's text, as the driver returns it) held ~14 MB more of the heap at 200,000 devices
 * (docs/performance.md, the packed directory row of the first table). Ids stay exact: a serial
 * times 8 is far below 2^53.
 */
export type PackedDevice = number;
const KIND_SLOTS = 8;
if (DEVICE_KINDS.length > KIND_SLOTS) throw new Error('DeviceDirectory: more device kinds than KIND_SLOTS');

export const packDevice = (id: number, kind: DeviceKind): PackedDevice => id * KIND_SLOTS + kindIndex(kind);
export const idOf = (device: PackedDevice): number => Math.floor(device / KIND_SLOTS);
/** The kind's index in DEVICE_KINDS, as the columns hold it. */
export const kindOf = (device: PackedDevice): number => device % KIND_SLOTS;

/**
 * Maps each site's device names to stored device ids, registering devices on first sight. The cache
 * is only ever a copy of committed rows, so every replica may keep its own.
 */
export class DeviceDirectory {
  readonly #db: Kysely<Database>;
  readonly #maxDevicesPerSite: number;
  readonly #bySite = new Map<number, Map<string, PackedDevice>>();
  /**
   * Lookups and first-sight registrations that may wait on the database at once; the rest wait
   * here, so the pool's wait queue stays small however many batches are admitted. Batches whose
   * devices are all known never wait: the cache answers them.
   */
  readonly #lookups: ConcurrencyLimit;

  constructor(db: Kysely<Database>, maxDevicesPerSite: number, maxConcurrentLookups = 8) {
    this.#db = db;
    this.#maxDevicesPerSite = maxDevicesPerSite;
    this.#lookups = new ConcurrencyLimit(maxConcurrentLookups);
  }

  /** Drops what is known of a site (after it is deleted). */
  forgetSite(siteId: number): void {
    this.#bySite.delete(siteId);
  }

  /** Readings resolved to ids, in columns; those whose device cannot be registered are rejected. */
  async resolve(
    siteId: number,
    readings: readonly ValidReading[],
    receivedMs: number,
  ): Promise<{ readings: ReadingColumns; rejected: Rejection[] }> {
    let known = this.#bySite.get(siteId);
    if (!known) {
      known = new Map();
      this.#bySite.set(siteId, known);
    }
    // One lookup per reading: this runs per reading, and almost every device is known.
    const found = new Array<PackedDevice | undefined>(readings.length);
    let missing: Map<string, { kind: DeviceKind | undefined; model: string | null }> | undefined;
    for (let i = 0; i < readings.length; i++) {
      const r = readings[i]!;
      const device = known.get(r.device);
      found[i] = device;
      if (device !== undefined) continue;
      missing ??= new Map();
      const seen = missing.get(r.device);
      if (!seen) missing.set(r.device, { kind: r.kind, model: r.model ?? null });
      else if (!seen.kind && r.kind) seen.kind = r.kind;
    }
    const refused = new Map<string, Omit<Rejection, 'index'>>();
    if (missing) {
      const wanted = missing;
      await this.#lookups.run(() => this.#learn(siteId, known!, wanted, refused));
      for (let i = 0; i < readings.length; i++) found[i] ??= known.get(readings[i]!.device);
    }

    const rejected: Rejection[] = [];
    let resolved = 0;
    for (let i = 0; i < readings.length; i++) {
      if (found[i] !== undefined) {
        resolved++;
        continue;
      }
      const r = readings[i]!;
      rejected.push({
        index: r.index,
        // Every refusal above is named; this is only reached if the store disagrees with the name sent.
        ...(refused.get(r.device) ?? {
          field: 'device',
          code: 'device_unresolved',
          message: `device "${r.device}" could not be registered; retry later`,
        }),
      });
    }
    const columns = allocColumns(resolved);
    for (let i = 0, row = 0; i < readings.length; i++) {
      const device = found[i];
      if (device === undefined) continue;
      const r = readings[i]!;
      columns.siteId[row] = siteId;
      columns.deviceId[row] = idOf(device);
      columns.kind[row] = kindOf(device);
      columns.tsUs[row] = r.tsUs;
      columns.receivedMs[row] = receivedMs;
      for (let m = 0; m < NUMERIC_METRICS.length; m++) {
        const v = r[NUMERIC_METRICS[m]!];
        if (v !== undefined && v !== null) columns.metrics[m]![row] = v;
      }
      columns.status[row] = statusIndex(r.status);
      if (r.extras !== undefined) setExtras(columns, row, r.extras);
      row++;
    }
    return { readings: columns, rejected };
  }

  async #learn(
    siteId: number,
    known: Map<string, PackedDevice>,
    missing: Map<string, { kind: DeviceKind | undefined; model: string | null }>,
    refused: Map<string, Omit<Rejection, 'index'>>,
  ): Promise<void> {
    // Registered before this process started, or by another replica.
    for (const d of await findDevices(this.#db, siteId, [...missing.keys()])) {
      known.set(d.external_id, packDevice(d.id, d.kind));
      missing.delete(d.external_id);
    }
    const toRegister = [];
    for (const [external_id, { kind, model }] of missing) {
      if (kind) toRegister.push({ external_id, kind, model });
      else {
        refused.set(external_id, {
          field: 'kind',
          code: 'kind_required',
          message: `device "${external_id}" is new: its first reading must say its kind`,
        });
      }
    }
    if (toRegister.length === 0) return;
    const { devices, overCap } = await registerDevices(this.#db, siteId, toRegister, this.#maxDevicesPerSite);
    for (const d of devices) known.set(d.external_id, packDevice(d.id, d.kind));
    for (const external_id of overCap) {
      refused.set(external_id, {
        field: 'device',
        code: 'device_limit',
        message: `the site has reached its limit of ${this.#maxDevicesPerSite} devices`,
      });
    }
  }
}
