import { createHash } from 'node:crypto';

/**
 * Authentication results by token, so a request or a WebSocket frame needs no database round trip.
 * Entries live `ttlMs` at most (the re-check in case a change notification was missed); the change
 * feed drops them the moment a token changes on any replica. Only grants are kept: an unknown
 * token is asked of the database each time, so a new token works at once.
 */
export class TokenCache<T> {
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #maxEntries: number;
  readonly #entries = new Map<string, { value: T; loadedAtMs: number }>();
  /** Bumped by every drop: a load that started before it must not store what it read. */
  #generation = 0;

  constructor(options: { ttlMs: number; now?: () => number; maxEntries?: number }) {
    this.#ttlMs = options.ttlMs;
    this.#now = options.now ?? Date.now;
    this.#maxEntries = options.maxEntries ?? 100_000;
  }

  get size(): number {
    return this.#entries.size;
  }

  async get(token: string, load: () => Promise<T | undefined>): Promise<T | undefined> {
    // Keyed by digest: a heap dump of the cache holds no token.
    const key = createHash('sha256').update(token).digest('base64');
    const hit = this.#entries.get(key);
    if (hit && this.#now() - hit.loadedAtMs < this.#ttlMs) return hit.value;
    const generation = this.#generation;
    const loadedAtMs = this.#now();
    const value = await load();
    if (value === undefined) {
      this.#entries.delete(key);
      return undefined;
    }
    if (generation === this.#generation) {
      if (this.#entries.size >= this.#maxEntries) this.#entries.clear();
      this.#entries.set(key, { value, loadedAtMs });
    }
    return value;
  }

  /** Drops the entries `matches` selects (all when omitted). */
  drop(matches?: (value: T) => boolean): void {
    this.#generation++;
    if (!matches) {
      this.#entries.clear();
      return;
    }
    for (const [key, entry] of this.#entries) if (matches(entry.value)) this.#entries.delete(key);
  }
}
