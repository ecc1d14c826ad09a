import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { z } from 'zod';
import { parseRetryAfterMs } from './backoff.ts';
import type { Batch } from './buffer.ts';
import { apiUrl, IngestResult, readErrorEnvelope, type SendOutcome, type Transport } from './transport.ts';

export interface WsTransportOptions {
  url: string;
  token: string;
  /** A frame not acknowledged within this time means the connection is dead: drop it and resend. */
  ackTimeoutMs?: number;
  /** Ping period; a connection that misses a pong in one period is dropped. */
  pingIntervalMs?: number;
  handshakeTimeoutMs?: number;
  userAgent?: string;
}

/** Frame error codes that mean the service failed, not the frame (hashwatt's 5xx-class codes). */
const SERVER_ERROR_CODES = new Set(['internal', 'database_unavailable', 'shutting_down', 'overloaded']);

/** Server → agent messages on /api/v1/stream: an ack, an overload reply, or a frame error. */
const AckMessage = IngestResult.extend({ ack: z.int() });
const OverloadMessage = z.looseObject({ seq: z.int(), retry_after_ms: z.number().min(0) });
const FrameErrorMessage = z.looseObject({
  seq: z.int(),
  error: z.looseObject({ code: z.string(), message: z.string().optional() }),
});

/** Close codes: 1009 = frame larger than the service accepts. */
const CLOSE_TOO_BIG = 1009;
/** Never ask for frames smaller than this after a 1009. */
const MIN_FRAME_BYTES = 16 * 1024;

interface Pending {
  batch: Batch;
  resolve: (outcome: SendOutcome) => void;
  timer: NodeJS.Timeout;
}

/** Failure to open the stream, with how the agent should treat it. */
type ConnectFailure = Extract<SendOutcome, { kind: 'retry' | 'rejected' }>;

/**
 * Streams batches as frames `{seq, readings}` over one WebSocket and matches the service's
 * answers by seq. Several frames may be unacknowledged at once; when the connection drops, every
 * one of them resolves as retry so the agent resends it on the next connection.
 */
export class WsTransport implements Transport {
  readonly #url: URL;
  readonly #token: string;
  readonly #ackTimeoutMs: number;
  readonly #pingIntervalMs: number;
  readonly #handshakeTimeoutMs: number;
  readonly #userAgent: string;
  readonly #pending = new Map<number, Pending>();
  #socket: WebSocket | null = null;
  #connecting: Promise<WebSocket | ConnectFailure> | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(options: WsTransportOptions) {
    this.#url = apiUrl(options.url, '/api/v1/stream');
    this.#url.protocol = this.#url.protocol === 'https:' ? 'wss:' : 'ws:';
    this.#token = options.token;
    this.#ackTimeoutMs = options.ackTimeoutMs ?? 30_000;
    this.#pingIntervalMs = options.pingIntervalMs ?? 15_000;
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
    this.#userAgent = options.userAgent ?? 'hashwatt-simulator/0.1';
  }

  async send(batch: Batch): Promise<SendOutcome> {
    if (this.#closed) return { kind: 'retry', reason: 'agent stopped' };
    const socket = await this.#connect();
    if (!(socket instanceof WebSocket)) return socket;
    return new Promise<SendOutcome>((resolve) => {
      const timer = setTimeout(() => {
        // No ack in time: the connection is wedged. Dropping it resolves every pending frame as retry.
        socket.terminate();
      }, this.#ackTimeoutMs);
      this.#pending.set(batch.id, { batch, resolve, timer });
      socket.send(`{"seq":${batch.id},"readings":[${batch.readings.join(',')}]}`, (err) => {
        if (err) socket.terminate();
      });
    });
  }

  #connect(): Promise<WebSocket | ConnectFailure> {
    if (this.#socket && this.#socket.readyState === WebSocket.OPEN) return Promise.resolve(this.#socket);
    if (this.#connecting) return this.#connecting;
    this.#connecting = new Promise<WebSocket | ConnectFailure>((resolve) => {
      const socket = new WebSocket(this.#url, {
        headers: { authorization: `Bearer ${this.#token}`, 'user-agent': this.#userAgent },
        handshakeTimeout: this.#handshakeTimeoutMs,
      });
      let opened = false;
      const fail = (failure: ConnectFailure) => {
        if (opened) return;
        opened = true; // settle once
        this.#connecting = null;
        resolve(failure);
      };
      socket.on('unexpected-response', (req, res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const envelope = readErrorEnvelope(Buffer.concat(chunks).toString('utf8'));
          if (status === 429 || status >= 500) {
            const retryAfterMs = parseRetryAfterMs(res.headers['retry-after']);
            fail({
              kind: 'retry',
              reason: `upgrade refused: HTTP ${status}`,
              connectFailed: true,
              ...(retryAfterMs !== undefined && { retryAfterMs }),
            });
          } else {
            fail({
              kind: 'rejected',
              status,
              code: envelope?.code ?? `http_${status}`,
              message: envelope?.message ?? 'upgrade refused',
              connectFailed: true,
            });
          }
          req.destroy();
        });
      });
      socket.on('error', (err: NodeJS.ErrnoException) =>
        fail({ kind: 'retry', reason: err.code ?? err.message, connectFailed: true }),
      );
      socket.on('open', () => {
        if (opened) return;
        opened = true;
        this.#connecting = null;
        if (this.#closed) {
          socket.close(1000);
          resolve({ kind: 'retry', reason: 'agent stopped' });
          return;
        }
        this.#attach(socket);
        resolve(socket);
      });
      socket.on('close', () =>
        fail({ kind: 'retry', reason: 'connection closed during handshake', connectFailed: true }),
      );
    });
    return this.#connecting;
  }

  #attach(socket: WebSocket): void {
    this.#socket = socket;
    let alive = true;
    socket.on('pong', () => {
      alive = true;
    });
    this.#heartbeat = setInterval(() => {
      if (!alive) {
        socket.terminate();
        return;
      }
      alive = false;
      socket.ping();
    }, this.#pingIntervalMs);
    this.#heartbeat.unref();
    socket.on('message', (data: WebSocket.RawData) => {
      alive = true;
      this.#onMessage(data.toString());
    });
    socket.on('close', (code: number) => this.#onClose(socket, code));
  }

  #onMessage(text: string): void {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return; // not JSON: nothing we can match to a frame
    }
    const ack = AckMessage.safeParse(json);
    if (ack.success) {
      const { accepted, duplicates, rejected } = ack.data;
      this.#settle(ack.data.ack, { kind: 'ack', accepted, duplicates, rejected });
      return;
    }
    const overload = OverloadMessage.safeParse(json);
    if (overload.success) {
      const code = (json as { error?: { code?: unknown } }).error?.code;
      this.#settle(overload.data.seq, {
        kind: 'retry',
        reason: typeof code === 'string' ? `service: ${code}` : 'service overloaded',
        retryAfterMs: overload.data.retry_after_ms,
      });
      return;
    }
    const error = FrameErrorMessage.safeParse(json);
    if (error.success) {
      const { code, message } = error.data.error;
      // A server-side failure is not the frame's fault: retry it with backoff, as HTTP retries a 500.
      if (SERVER_ERROR_CODES.has(code)) {
        this.#settle(error.data.seq, { kind: 'retry', reason: `service error: ${code}` });
        return;
      }
      this.#settle(error.data.seq, { kind: 'rejected', status: null, code, message: message ?? '' });
    }
  }

  #settle(seq: number, outcome: SendOutcome): void {
    const pending = this.#pending.get(seq);
    if (!pending) return; // a late answer to a frame already given up on
    this.#pending.delete(seq);
    clearTimeout(pending.timer);
    pending.resolve(outcome);
  }

  #onClose(socket: WebSocket, code: number): void {
    if (this.#socket === socket) this.#socket = null;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    let largest = 0;
    for (const p of this.#pending.values()) largest = Math.max(largest, p.batch.bytes);
    // The service does not say which frame was too big; halving the largest in flight converges.
    const hint = code === CLOSE_TOO_BIG ? Math.max(MIN_FRAME_BYTES, Math.floor(largest / 2)) : undefined;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.resolve({
        kind: 'retry',
        reason: `connection closed (${code})`,
        ...(hint !== undefined && { maxBatchBytesHint: hint }),
      });
    }
  }

  disconnect(_reason: string): void {
    this.#socket?.terminate();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const socket = this.#socket;
    if (!socket) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        socket.terminate();
        resolve();
      }, 1000);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.close(1000, 'agent stopped');
    });
  }
}
