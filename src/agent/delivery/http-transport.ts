import http from 'node:http';
import https from 'node:https';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { parseRetryAfterMs } from './backoff.ts';
import type { Batch } from './buffer.ts';
import { apiUrl, IngestResult, readErrorEnvelope, type SendOutcome, type Transport } from './transport.ts';

const gzipAsync = promisify(gzip);
/** Responses are small JSON; a larger one is a misbehaving server, not data to keep. */
const MAX_RESPONSE_BYTES = 1024 * 1024;

export interface HttpTransportOptions {
  url: string;
  token: string;
  gzipLevel?: number;
  timeoutMs?: number;
  /** Concurrent connections kept alive; match the agent's window. */
  maxSockets?: number;
  userAgent?: string;
}

/** How the agent treats an HTTP status: 429 and 5xx are retried, other 4xx never are. */
export function classifyHttpStatus(status: number): 'ack' | 'retry' | 'reject' {
  if (status >= 200 && status < 300) return 'ack';
  if (status === 429 || status === 408 || status >= 500) return 'retry';
  return 'reject';
}

/** POSTs each batch as gzip JSON to /api/v1/ingest over keep-alive connections. */
export class HttpTransport implements Transport {
  readonly #url: URL;
  readonly #token: string;
  readonly #gzipLevel: number;
  readonly #timeoutMs: number;
  readonly #maxSockets: number;
  readonly #userAgent: string;
  readonly #requests = new Set<http.ClientRequest>();
  #agent: http.Agent;

  constructor(options: HttpTransportOptions) {
    this.#url = apiUrl(options.url, '/api/v1/ingest');
    this.#token = options.token;
    this.#gzipLevel = options.gzipLevel ?? 6;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#maxSockets = options.maxSockets ?? 4;
    this.#userAgent = options.userAgent ?? 'hashwatt-simulator/0.1';
    this.#agent = this.#createAgent();
  }

  #createAgent(): http.Agent {
    const Agent = this.#url.protocol === 'https:' ? https.Agent : http.Agent;
    return new Agent({ keepAlive: true, maxSockets: this.#maxSockets });
  }

  async send(batch: Batch): Promise<SendOutcome> {
    const body = await gzipAsync(`{"readings":[${batch.readings.join(',')}]}`, { level: this.#gzipLevel });
    const request = this.#url.protocol === 'https:' ? https.request : http.request;
    return new Promise<SendOutcome>((resolve) => {
      let settled = false;
      const settle = (outcome: SendOutcome) => {
        if (settled) return;
        settled = true;
        this.#requests.delete(req);
        resolve(outcome);
      };
      const req = request(this.#url, {
        method: 'POST',
        agent: this.#agent,
        timeout: this.#timeoutMs,
        headers: {
          authorization: `Bearer ${this.#token}`,
          'content-type': 'application/json',
          'content-encoding': 'gzip',
          'content-length': body.length,
          'user-agent': this.#userAgent,
        },
      });
      this.#requests.add(req);
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.#timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) =>
        settle({ kind: 'retry', reason: err.code ?? err.message }),
      );
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) res.destroy(new Error('response too large'));
          else chunks.push(chunk);
        });
        res.on('error', (err) => settle({ kind: 'retry', reason: err.message }));
        res.on('end', () => settle(this.#interpret(res, Buffer.concat(chunks).toString('utf8'), batch)));
      });
      req.end(body);
    });
  }

  #interpret(res: http.IncomingMessage, text: string, batch: Batch): SendOutcome {
    const status = res.statusCode ?? 0;
    const kind = classifyHttpStatus(status);
    if (kind === 'ack') {
      let json: unknown = null;
      try {
        json = JSON.parse(text);
      } catch {
        // handled below
      }
      const parsed = IngestResult.safeParse(json);
      // A 2xx means committed even if the body is odd; count it all as accepted rather than resend.
      if (!parsed.success)
        return { kind: 'ack', accepted: batch.readings.length, duplicates: 0, rejected: [] };
      return { kind: 'ack', ...parsed.data };
    }
    const envelope = readErrorEnvelope(text);
    if (kind === 'retry') {
      // The envelope's milliseconds are finer than Retry-After's whole seconds.
      const retryAfter = envelope?.retryAfterMs ?? parseRetryAfterMs(res.headers['retry-after']);
      return {
        kind: 'retry',
        reason: `HTTP ${status}${envelope ? ` ${envelope.code}` : ''}`,
        ...(retryAfter !== undefined && { retryAfterMs: retryAfter }),
      };
    }
    return {
      kind: 'rejected',
      status,
      code: envelope?.code ?? `http_${status}`,
      message: envelope?.message ?? res.statusMessage ?? '',
      ...(status === 413 && { tooLarge: true }),
    };
  }

  disconnect(reason: string): void {
    for (const req of this.#requests) req.destroy(new Error(reason));
    // Idle keep-alive sockets die with the network too; the next request dials afresh.
    this.#agent.destroy();
    this.#agent = this.#createAgent();
  }

  async close(): Promise<void> {
    for (const req of this.#requests) req.destroy(new Error('agent stopped'));
    this.#agent.destroy();
  }
}
