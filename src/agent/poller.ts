/**
 * Polls every target on its interval, concurrently and bounded: at most `concurrency` polls at
 * once, each target at most one at a time, each within its own timeout. Targets are spread over
 * their interval by a hash of their id, so 5,000 miners every 10 s are 500 polls a second, not
 * 5,000 at once. A target still busy when it is due again is skipped that round and counted.
 */
import { performance } from 'node:perf_hooks';
import type { ScheduledTarget } from './config.ts';

/** Where in its interval a target is polled: a stable hash of its id (FNV-1a), in [0, interval). */
export function phaseMs(id: string, intervalMs: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % Math.max(1, intervalMs);
}

/** The first instant at or after `nowMs` on the target's grid (phase + k × interval). */
export function nextDueMs(nowMs: number, phase: number, intervalMs: number): number {
  const k = Math.ceil((nowMs - phase) / intervalMs);
  return phase + k * intervalMs;
}

interface Entry {
  readonly target: ScheduledTarget;
  readonly phase: number;
  /** performance.now() of the next poll. */
  dueAt: number;
  state: 'idle' | 'queued' | 'running';
}

/** A binary min-heap of entries by dueAt. */
class DueHeap {
  readonly #items: Entry[] = [];

  get size(): number {
    return this.#items.length;
  }

  peek(): Entry | undefined {
    return this.#items[0];
  }

  push(entry: Entry): void {
    const a = this.#items;
    a.push(entry);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.dueAt <= a[i]!.dueAt) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }

  pop(): Entry | undefined {
    const a = this.#items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]!.dueAt < a[m]!.dueAt) m = l;
        if (r < a.length && a[r]!.dueAt < a[m]!.dueAt) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}

export interface PollerOptions {
  targets: readonly ScheduledTarget[];
  concurrency: number;
  /** Runs one poll; must settle (the poller adds a safety timeout of its own). */
  poll: (target: ScheduledTarget, startedAtMs: number) => Promise<void>;
  /** A target was due while its previous poll was still queued or running. */
  onSkipped?: (target: ScheduledTarget) => void;
  /** Epoch ms, for the grid; polls start on epoch-aligned instants so restarts keep their rhythm. */
  now?: () => number;
}

export class Poller {
  readonly #options: PollerOptions;
  readonly #heap = new DueHeap();
  readonly #ready: Entry[] = [];
  readonly #running = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;
  /** Polls running now, and the most at once since start. */
  active = 0;
  maxActive = 0;

  constructor(options: PollerOptions) {
    this.#options = options;
  }

  /** Starts polling; the first poll of each target comes at its place in its first interval. */
  start(): void {
    const now = this.#now();
    const perf = performance.now();
    for (const target of this.#options.targets) {
      const phase = phaseMs(target.id, target.intervalMs);
      const dueEpoch = nextDueMs(now, phase, target.intervalMs);
      this.#heap.push({ target, phase, dueAt: perf + (dueEpoch - now), state: 'idle' });
    }
    this.#arm();
  }

  #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  #arm(): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    const next = this.#heap.peek();
    if (!next) return;
    this.#timer = setTimeout(() => this.#tick(), Math.max(0, Math.ceil(next.dueAt - performance.now())));
  }

  #tick(): void {
    this.#timer = null;
    if (this.#stopped) return;
    const now = performance.now();
    for (let e = this.#heap.peek(); e && e.dueAt <= now; e = this.#heap.peek()) {
      this.#heap.pop();
      if (e.state !== 'idle') this.#options.onSkipped?.(e.target);
      else {
        e.state = 'queued';
        this.#ready.push(e);
      }
      // The next slot on the grid after now: a long stall does not make a burst of catch-up polls.
      const interval = e.target.intervalMs;
      e.dueAt += interval * Math.max(1, Math.ceil((now - e.dueAt + 1) / interval));
      this.#heap.push(e);
    }
    this.#dispatch();
    this.#arm();
  }

  #dispatch(): void {
    while (!this.#stopped && this.active < this.#options.concurrency && this.#ready.length > 0) {
      const entry = this.#ready.shift()!;
      entry.state = 'running';
      this.active++;
      this.maxActive = Math.max(this.maxActive, this.active);
      const target = entry.target;
      let safety: NodeJS.Timeout | undefined;
      const run = Promise.race([
        this.#options.poll(target, this.#now()),
        // A collector that never settles must not hold its slot forever.
        new Promise<void>((resolve) => {
          safety = setTimeout(resolve, target.timeoutMs + 2_000);
        }),
      ])
        .catch(() => undefined)
        .finally(() => {
          clearTimeout(safety);
          entry.state = 'idle';
          this.active--;
          this.#running.delete(run);
          this.#dispatch();
        });
      this.#running.add(run);
    }
  }

  /** Stops starting polls and waits for the running ones to finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    for (const e of this.#ready) e.state = 'idle';
    this.#ready.length = 0;
    await Promise.allSettled([...this.#running]);
  }
}
