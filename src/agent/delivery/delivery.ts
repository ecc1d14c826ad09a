import { performance } from 'node:perf_hooks';
import { type BackoffPolicy, computeRetryDelayMs, DEFAULT_BACKOFF } from './backoff.ts';
import { type Batch, type BufferLimits, ReadingBuffer, type ReadingStore } from './buffer.ts';
import { createCounters, type DeliveryCounters } from './counters.ts';
import { FallbackTransport } from './fallback-transport.ts';
import { HttpTransport } from './http-transport.ts';
import type { SendOutcome, Transport } from './transport.ts';
import { WsTransport } from './ws-transport.ts';

export interface DeliveryOptions {
  /** Batches in flight at once: enough that a fast service is not throttled by round trips. */
  window: number;
  limits: BufferLimits;
  backoff: BackoffPolicy;
  gzipLevel: number;
  requestTimeoutMs: number;
  ackTimeoutMs: number;
  /** Keep the (device, ts) keys of acknowledged readings, for tests that compare with the database. */
  trackAcks: boolean;
  /**
   * On 401/403 (token rotated, site deleted) keep the readings and retry every `unauthorizedRetryMs`
   * instead of refusing them: a site agent holds a spool an operator means to deliver once the
   * token is fixed. The simulators refuse them (the contract's "stop sending").
   */
  keepOnUnauthorized: boolean;
  unauthorizedRetryMs: number;
  random: () => number;
  /** The User-Agent header of requests and the WebSocket upgrade. */
  userAgent: string;
}

export const DEFAULT_DELIVERY_OPTIONS: DeliveryOptions = {
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
  keepOnUnauthorized: false,
  unauthorizedRetryMs: 60_000,
  random: Math.random,
  userAgent: 'hashwatt-simulator/0.1',
};

/** Partial options, merged over the defaults (limits merged field by field). */
export type DeliveryOverrides = Partial<Omit<DeliveryOptions, 'limits' | 'backoff'>> & {
  limits?: Partial<BufferLimits>;
  backoff?: Partial<BackoffPolicy>;
};

/** Merges overrides over the defaults, later layers winning; undefined fields are ignored. */
export function resolveDeliveryOptions(...layers: (DeliveryOverrides | undefined)[]): DeliveryOptions {
  let out: DeliveryOptions = { ...DEFAULT_DELIVERY_OPTIONS };
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

/**
 * A transport to the service: `http` (gzip POSTs), `ws` (the stream), or `ws-fallback`, the
 * stream with HTTP taking over while the stream cannot be opened (a proxy refusing upgrades).
 */
export function createTransport(
  kind: 'http' | 'ws' | 'ws-fallback',
  url: string,
  token: string,
  options: DeliveryOptions,
): Transport {
  const http = () =>
    new HttpTransport({
      url,
      token,
      gzipLevel: options.gzipLevel,
      timeoutMs: options.requestTimeoutMs,
      maxSockets: options.window,
      userAgent: options.userAgent,
    });
  const ws = () =>
    new WsTransport({ url, token, ackTimeoutMs: options.ackTimeoutMs, userAgent: options.userAgent });
  if (kind === 'http') return http();
  if (kind === 'ws') return ws();
  return new FallbackTransport(ws(), http());
}

/**
 * One site's delivery: a bounded store of unacknowledged readings, a window of sends in flight,
 * backoff with jitter after failures (the server's hints win), and at-least-once semantics — a
 * reading leaves the store only when the service has answered for it or it was dropped.
 */
export class Delivery {
  readonly site: string;
  readonly buffer: ReadingStore;
  /** Keys of acknowledged readings; null unless trackAcks. */
  readonly acknowledged: Set<string> | null;
  /** Epoch ms of the last answer that acknowledged readings; null before the first. */
  lastAckAtMs: number | null = null;
  readonly #options: DeliveryOptions;
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

  /** `store`: where unacknowledged readings are kept (default: a bounded buffer in memory). */
  constructor(site: string, transport: Transport, options: DeliveryOptions, store?: ReadingStore) {
    this.site = site;
    this.#transport = transport;
    this.#options = options;
    this.buffer = store ?? new ReadingBuffer({ ...options.limits }, options.trackAcks);
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

  /** True while the service refuses the token (keepOnUnauthorized only). */
  unauthorized = false;

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
    if (
      this.#options.keepOnUnauthorized &&
      outcome.kind === 'rejected' &&
      (outcome.status === 401 || outcome.status === 403)
    ) {
      this.unauthorized = true;
      outcome = {
        kind: 'retry',
        reason: `HTTP ${outcome.status} ${outcome.code}: the site token was refused; readings are kept`,
        retryAfterMs: this.#options.unauthorizedRetryMs,
      };
    }
    switch (outcome.kind) {
      case 'ack': {
        this.unauthorized = false;
        this.buffer.complete(batch);
        const rejected = new Set(outcome.rejected.map((r) => r.index));
        this.#counters.accepted += outcome.accepted;
        this.#counters.duplicates += outcome.duplicates;
        this.#counters.acknowledged += outcome.accepted + outcome.duplicates;
        this.lastAckAtMs = Date.now();
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
