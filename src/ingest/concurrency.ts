/**
 * At most `limit` callers run at once; the rest wait in arrival order. Put in front of database
 * lookups so that however many frames or requests are admitted, the pool's own wait queue (which
 * holds a closure and a timer per waiter) stays a small constant.
 */
export class ConcurrencyLimit {
  readonly #limit: number;
  readonly #waiting: (() => void)[] = [];
  #running = 0;

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`limit must be a positive integer: ${limit}`);
    this.#limit = limit;
  }

  /** Callers running now, and callers waiting for a turn. */
  get depth(): { running: number; waiting: number } {
    return { running: this.#running, waiting: this.#waiting.length };
  }

  /** Runs `task` once a turn is free; the turn is given back however it settles. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#limit) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#running++;
    try {
      return await task();
    } finally {
      // The turn passes straight to the next waiter, so `running` never dips and a newcomer cannot jump the queue.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}
