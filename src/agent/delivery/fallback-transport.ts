import { performance } from 'node:perf_hooks';
import type { Batch } from './buffer.ts';
import type { SendOutcome, Transport } from './transport.ts';

/** How long HTTP carries the readings after the stream could not be opened, before the stream is tried again. */
const DEFAULT_HOLD_MS = 60_000;

/**
 * The WebSocket stream first, HTTP when the stream cannot be opened: a proxy or firewall that
 * refuses upgrades (400, 404, 426), or a path where upgrades die, must not stop a site's data.
 * Switching is always safe: a batch whose frame was lost in flight may have been committed, and
 * resending it over HTTP is answered with duplicates. After `holdMs` on HTTP the stream is tried
 * again; an authentication refusal (401, 403) is returned as it is, since HTTP would be refused too.
 */
export class FallbackTransport implements Transport {
  readonly #ws: Transport;
  readonly #http: Transport;
  readonly #holdMs: number;
  #mode: 'ws' | 'http' = 'ws';
  #retryWsAt = 0;
  /** Times the stream was given up for HTTP. */
  fallbacks = 0;

  constructor(ws: Transport, http: Transport, options: { holdMs?: number } = {}) {
    this.#ws = ws;
    this.#http = http;
    this.#holdMs = options.holdMs ?? DEFAULT_HOLD_MS;
  }

  /** The transport carrying readings now. */
  get mode(): 'ws' | 'http' {
    return this.#mode;
  }

  async send(batch: Batch): Promise<SendOutcome> {
    if (this.#mode === 'http' && performance.now() >= this.#retryWsAt) this.#mode = 'ws';
    if (this.#mode === 'http') return this.#http.send(batch);
    const outcome = await this.#ws.send(batch);
    if (outcome.kind === 'ack' || !outcome.connectFailed) return outcome;
    if (outcome.kind === 'rejected' && (outcome.status === 401 || outcome.status === 403)) return outcome;
    if (this.#mode === 'ws') {
      this.#mode = 'http';
      this.fallbacks++;
    }
    this.#retryWsAt = performance.now() + this.#holdMs;
    return this.#http.send(batch);
  }

  disconnect(reason: string): void {
    this.#ws.disconnect(reason);
    this.#http.disconnect(reason);
  }

  async close(): Promise<void> {
    await Promise.all([this.#ws.close(), this.#http.close()]);
  }
}
