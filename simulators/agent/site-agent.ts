import { performance } from 'node:perf_hooks';
import { type BackoffPolicy, computeRetryDelayMs, DEFAULT_BACKOFF } from './backoff.ts';
import { type Batch, type BufferLimits, ReadingBuffer } from './buffer.ts';
import { createCounters, type DeliveryCounters } from './counters.ts';
import { HttpTransport } from './http-transport.ts';
import type { SendOutcome, Transport } from './transport.ts';
import { WsTransport } from './ws-transport.ts';

export interface AgentOptions {
  /** Batches in flight at once: enough that a fast service is not throttled by round trips. */
  window: number;
  limits: BufferLimits;
  backoff: BackoffPolicy;
  gzipLevel: number;
  requestTimeoutMs: number;
  ackTimeoutMs: number;
  /** Keep the (device, ts) keys of acknowledged readings, for tests that compare with the database. */
  trackAcks: boolean;
  random: () => number;
}

export const DEFAULT_AGENT_OPTIONS: AgentOptions = {
  window: 4,
  limits: {
    // 500k readings ≈ 90 MiB: an hour of a 1,400-device site at 10 s, the longest outage worth backfilling.
    maxReadings: 500_000,
    maxBytes: 128 * 1024 * 1024,
    maxBatchReadings: 5_000,
    maxBatchBytes: 1024 * 1024,
  },
  backoff: DEFAULT_BACKOFF,
  gzipLevel: 6,
  requestTimeoutMs: 30_000,
  ackTimeoutMs: 30_000,
  trackAcks: false,
  random: Math.random,
};

/** Partial options, merged over the defaults (limits merged field by field). */
export type AgentOverrides = Partial<Omit<AgentOptions, 'limits' | 'backoff'>> & {
  limits?: Partial<BufferLimits>;
  backoff?: Partial<BackoffPolicy>;
};

export function resolveAgentOptions(...layers: (AgentOverrides | undefined)[]): AgentOptions {
  let out: AgentOptions = { ...DEFAULT_AGENT_OPTIONS };
  for (const layer of layers) {
    if (!layer) continue;
    const { limits, backoff, ...rest } = layer;
    out = {
      ...out,
      ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
      limits: { ...out.limits, ...definedOnly(limits) },
      backoff: { ...out.backoff, ...definedOnly(backoff) },
    };
  }
  return out;
}

function definedOnly<T extends object>(o: T | undefined): Partial<T> {
  return o ? (Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>) : {};
}

export function createTransport(
  kind: 'http' | 'ws',
  url: string,
  token: string,
  options: AgentOptions,
): Transport {
  return kind === 'http'
    ? new HttpTransport({
        url,
        token,
        gzipLevel: options.gzipLevel,
        timeoutMs: options.requestTimeoutMs,
        maxSockets: options.window,
      })
    : new WsTransport({ url, token, ackTimeoutMs: options.ackTimeoutMs });
}

/**
 * One site's delivery: a bounded buffer of unacknowledged readings, a window of sends in flight,
 * backoff with jitter after failures (the server's hints win), and at-least-once semantics — a
 * reading leaves the buffer only when the service has answered for it or it was dropped.
 */
export class SiteAgent {
  readonly site: string;
  readonly buffer: ReadingBuffer;
  /** Keys of acknowledged readings; null unless trackAcks. */
  readonly acknowledged: Set<string> | null;
  readonly #options: AgentOptions;
  readonly #transport: Transport;
  readonly #counters: DeliveryCounters = createCounters();
  readonly #sends = new Set<Promise<void>>();
  readonly #drainWaiters = new Set<() => void>();
  /** Monotonic ms before which nothing is sent (backoff). */
  #pausedUntil = 0;
  /** Consecutive failed rounds; resets on any answer from the service. */
  #failureStreak = 0;
  /** Bumps at each pause, so a window of sends failing together counts as one failure, not four. */
  #round = 0;
  #outage = false;
  #networkDownUntil = 0;
  #wake: NodeJS.Timeout | null = null;
  #closed = false;
  lastError: string | null = null;

  constructor(site: string, transport: Transport, options: AgentOptions) {
    this.site = site;
    this.#transport = transport;
    this.#options = options;
    this.buffer = new ReadingBuffer({ ...options.limits }, options.trackAcks);
    this.acknowledged = options.trackAcks ? new Set() : null;
  }

  counters(): DeliveryCounters {
    return { ...this.#counters, buffered: this.buffer.size, dropped: this.buffer.dropped };
  }

  /** Adds one serialised reading; sending is kicked off by pump(). */
  push(json: string, key: string | null = null): void {
    this.#counters.generated++;
    this.buffer.add(json, key);
  }

  /** Whether the agent cannot reach the service now (site outage or network down). */
  get offline(): boolean {
    return this.#outage || performance.now() < this.#networkDownUntil;
  }

  /** Site outage: the agent is silent until set back; its connections die. */
  setOutage(down: boolean): void {
    if (down && !this.#outage) this.#transport.disconnect('site outage');
    this.#outage = down;
    if (!down) this.pump();
  }

  /** Network flap: connections drop now and nothing gets through for durationMs. */
  interruptNetwork(durationMs: number): void {
    this.#networkDownUntil = Math.max(this.#networkDownUntil, performance.now() + durationMs);
    this.#transport.disconnect('network flap');
  }

  /** Starts sends while the window has room, nothing holds them back and there is something to send. */
  pump(): void {
    if (this.#closed) return;
    const now = performance.now();
    if (now < this.#pausedUntil) {
      this.#scheduleWake(this.#pausedUntil - now);
      return;
    }
    while (this.buffer.batchesInFlight < this.#options.window && this.buffer.hasSendable) {
      const batch = this.buffer.takeNext();
      if (!batch) break;
      const send = this.#send(batch);
      this.#sends.add(send);
      void send.finally(() => this.#sends.delete(send));
      if (performance.now() < this.#pausedUntil) break;
    }
  }

  #scheduleWake(delayMs: number): void {
    if (this.#wake) return;
    this.#wake = setTimeout(
      () => {
        this.#wake = null;
        this.pump();
      },
      Math.max(1, Math.ceil(delayMs)),
    );
  }

  async #send(batch: Batch): Promise<void> {
    const round = this.#round;
    const n = batch.readings.length;
    let outcome: SendOutcome;
    if (this.offline) {
      // No traffic while the network is down: the attempt fails as a real connect would, and backs off.
      outcome = await Promise.resolve({
        kind: 'retry',
        reason: this.#outage ? 'site outage' : 'network down',
      });
      batch.attempts--; // never left the site
    } else {
      this.#counters.sent += n;
      if (batch.attempts > 1) this.#counters.retried += n;
      try {
        outcome = await this.#transport.send(batch);
      } catch (err) {
        outcome = { kind: 'retry', reason: (err as Error).message };
      }
    }
    switch (outcome.kind) {
      case 'ack': {
        this.buffer.complete(batch);
        const rejected = new Set(outcome.rejected.map((r) => r.index));
        this.#counters.accepted += outcome.accepted;
        this.#counters.duplicates += outcome.duplicates;
        this.#counters.acknowledged += outcome.accepted + outcome.duplicates;
        this.#counters.rejected += outcome.rejected.length;
        if (this.acknowledged && batch.keys) {
          batch.keys.forEach((key, i) => {
            if (!rejected.has(i)) this.acknowledged?.add(key);
          });
        }
        if (outcome.rejected.length > 0) {
          const first = outcome.rejected[0]!;
          this.lastError = `rejected readings, e.g. #${first.index} ${first.field ?? ''} ${first.code}`;
        } else this.lastError = null; // delivering again: an old error would only mislead
        this.#failureStreak = 0;
        break;
      }
      case 'rejected':
        this.buffer.complete(batch);
        this.#counters.rejected += n;
        this.lastError =
          `batch rejected: ${outcome.status ?? 'frame'} ${outcome.code} ${outcome.message}`.trim();
        // 413: later batches would be refused too; halve them (the refused one is not resent).
        if (outcome.tooLarge)
          this.buffer.limits.maxBatchBytes = Math.max(16 * 1024, Math.floor(batch.bytes / 2));
        this.#failureStreak = 0;
        break;
      case 'retry': {
        this.#counters.failures++;
        this.lastError = outcome.reason;
        this.buffer.requeue(batch);
        if (outcome.maxBatchBytesHint !== undefined) {
          this.buffer.limits.maxBatchBytes = Math.min(
            this.buffer.limits.maxBatchBytes,
            outcome.maxBatchBytesHint,
          );
          this.buffer.splitLargerThan(this.buffer.limits.maxBatchBytes);
        }
        const now = performance.now();
        if (round === this.#round) {
          this.#round++;
          this.#failureStreak++;
          this.#pausedUntil =
            now +
            computeRetryDelayMs(
              this.#failureStreak,
              outcome.retryAfterMs,
              this.#options.backoff,
              this.#options.random,
            );
        } else if (outcome.retryAfterMs !== undefined) {
          this.#pausedUntil = Math.max(this.#pausedUntil, now + outcome.retryAfterMs);
        }
        break;
      }
    }
    if (this.buffer.size === 0) for (const resolve of this.#drainWaiters) resolve();
    this.pump();
  }

  /** Resolves when everything buffered has been answered, or after timeoutMs; true when drained. */
  async drain(timeoutMs: number): Promise<boolean> {
    this.pump();
    if (this.buffer.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    let waiter: (() => void) | undefined;
    const drained = await Promise.race([
      new Promise<boolean>((resolve) => {
        waiter = () => resolve(true);
        this.#drainWaiters.add(waiter);
      }),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (waiter) this.#drainWaiters.delete(waiter);
    return drained || this.buffer.size === 0;
  }

  /** Stops sending, aborts what is in flight (it stays counted as buffered) and closes connections. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#wake) clearTimeout(this.#wake);
    this.#wake = null;
    await this.#transport.close();
    await Promise.allSettled([...this.#sends]);
  }
}
