import type { AuthenticatedSite, Transport } from '../ingest/pipeline.ts';

/** Distinct unmapped names kept per site: enough to see what a collector sends that hashwatt does not map. */
export const UNMAPPED_NAMES_PER_SITE = 50;

export interface UnmappedName {
  protocol: Transport;
  name: string;
  /** Requests that carried it. */
  requests: number;
  last_seen: string;
}

interface SiteUnmapped {
  total: number;
  names: Map<string, UnmappedName>;
}

/**
 * Series, fields and data points the push receivers could not map, per site: counted (all of
 * them, on /metrics as hashwatt_ingest_unmapped_total) and named (the first distinct names, for
 * `GET /api/v1/sites/:id/unmapped`), never stored and never silently dropped. Held per replica in
 * memory: it is a diagnosis of what a collector sends, rebuilt by the next push after a restart.
 */
export class UnmappedSeries {
  readonly #bySite = new Map<number, SiteUnmapped>();
  readonly #onCount: (site: AuthenticatedSite, protocol: Transport, count: number) => void;
  readonly #now: () => number;

  constructor(
    onCount: (site: AuthenticatedSite, protocol: Transport, count: number) => void = () => {},
    now: () => number = Date.now,
  ) {
    this.#onCount = onCount;
    this.#now = now;
  }

  record(site: AuthenticatedSite, protocol: Transport, count: number, names: readonly string[]): void {
    let entry = this.#bySite.get(site.id);
    if (!entry) {
      entry = { total: 0, names: new Map() };
      this.#bySite.set(site.id, entry);
    }
    entry.total += count;
    const seen = new Date(this.#now()).toISOString();
    for (const name of names) {
      const key = `${protocol}\u0000${name}`;
      const known = entry.names.get(key);
      if (known) {
        known.requests++;
        known.last_seen = seen;
      } else if (entry.names.size < UNMAPPED_NAMES_PER_SITE) {
        entry.names.set(key, { protocol, name, requests: 1, last_seen: seen });
      }
    }
    this.#onCount(site, protocol, count);
  }

  /** What one site sent unmapped since this replica started. */
  of(siteId: number): { total: number; names: UnmappedName[] } {
    const entry = this.#bySite.get(siteId);
    if (!entry) return { total: 0, names: [] };
    return { total: entry.total, names: [...entry.names.values()].map((n) => ({ ...n })) };
  }

  forgetSite(siteId: number): void {
    this.#bySite.delete(siteId);
  }
}
