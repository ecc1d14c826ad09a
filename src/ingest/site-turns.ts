import { FairQueue } from './fair-queue.ts';

/**
 * Runs synchronous CPU work (parsing and validating admitted batches) one piece at a time, sites
 * in turn, yielding to I/O between pieces. Without it the event loop runs such work in arrival
 * order, so a flooding site's queued 5,000-reading batches (~20 ms each) sit ahead of every other
 * site's small one at each step of its request; with it, another site's piece waits for at most
 * one piece per site ahead of it in the rotation (docs/reliability.md, flood scenario).
 */
export class SiteTurns {
  readonly #waiting = new FairQueue<number, () => void>();
  #busy = false;

  /** Runs `work` when the site's turn comes; resolves or rejects with what it returns or throws. */
  run<T>(siteId: number, work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#waiting.push(siteId, () => {
        try {
          resolve(work());
        } catch (error) {
          reject(error);
        } finally {
          // Yield to I/O (sockets, commit callbacks) before the next piece, whoever's it is.
          setImmediate(() => {
            this.#busy = false;
            this.#next();
          });
        }
      });
      this.#next();
    });
  }

  /** Pieces waiting for their turn. */
  get waiting(): number {
    return this.#waiting.size;
  }

  #next(): void {
    if (this.#busy) return;
    const piece = this.#waiting.shift();
    if (!piece) return;
    this.#busy = true;
    piece();
  }
}
