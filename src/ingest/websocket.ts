import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { ERROR_STATUS, HashwattError, isRetryable } from '../errors.ts';
import { authenticateHeader, type SiteAuthenticator } from '../http/auth.ts';
import { parseJson } from '../http/body.ts';
import type { Logger } from '../log.ts';
import { domainError } from '../storage/errors.ts';
import { batchReadings, frameSeq } from './envelope.ts';
import type { AuthenticatedSite, IngestPipeline } from './pipeline.ts';

export const STREAM_PATH = '/api/v1/stream';

export interface StreamOptions {
  pipeline: IngestPipeline;
  authenticate: SiteAuthenticator;
  logger: Logger;
  /** Largest frame accepted; a bigger one closes the connection with 1009. */
  maxFrameBytes?: number;
  /** Frames of one connection being written at once; past it the socket is no longer read (TCP backpressure). */
  maxFramesInFlight?: number;
  heartbeatMs?: number;
  observer?: { connectionsChanged(open: number): void };
}

interface Peer {
  site: AuthenticatedSite;
  token: string;
  missedPongs: number;
  inFlight: number;
  /** Acks leave in frame order: each waits for the one before. */
  acks: Promise<void>;
}

const CLOSE_GOING_AWAY = 1001;
const CLOSE_POLICY = 1008;

/** Wire message for an outcome: ack, retry hint, or error, always naming the frame's seq. */
type Reply = Record<string, unknown>;

function rejectUpgrade(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  const reason = status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Service Unavailable';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * `GET /api/v1/stream`: the WebSocket transport. Like the HTTP route it only decodes frames and
 * encodes results; the pipeline does the rest.
 */
export class StreamServer {
  readonly #o: Required<Omit<StreamOptions, 'observer'>> & Pick<StreamOptions, 'observer'>;
  readonly #wss: WebSocketServer;
  readonly #peers = new Map<WebSocket, Peer>();
  readonly #heartbeat: NodeJS.Timeout;
  #closing = false;

  constructor(options: StreamOptions) {
    this.#o = { maxFrameBytes: 4 * 1024 * 1024, maxFramesInFlight: 4, heartbeatMs: 30_000, ...options };
    // Compression off: frames are bounded by their wire size, so no inflation bomb can get past maxPayload.
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.#o.maxFrameBytes,
      perMessageDeflate: false,
    });
    this.#heartbeat = setInterval(() => this.#beat(), this.#o.heartbeatMs);
    this.#heartbeat.unref();
  }

  get connections(): number {
    return this.#peers.size;
  }

  /** Routes the HTTP server's upgrade requests here. */
  attach(server: Server): void {
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.#upgrade(request, socket, head);
    });
  }

  async #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const path = new URL(request.url ?? '/', 'http://local').pathname;
    if (path !== STREAM_PATH)
      return rejectUpgrade(socket, 404, 'not_found', `no WebSocket endpoint at ${path}`);
    if (this.#closing) return rejectUpgrade(socket, 503, 'shutting_down', 'the service is shutting down');
    let site: AuthenticatedSite;
    try {
      site = await authenticateHeader(request.headers.authorization, this.#o.authenticate);
    } catch (error) {
      if (error instanceof HashwattError && error.code === 'unauthorized') {
        return rejectUpgrade(socket, 401, 'unauthorized', error.message);
      }
      this.#o.logger.warn({ err: error }, 'websocket upgrade failed');
      return rejectUpgrade(socket, 503, 'database_unavailable', 'cannot authenticate now; retry later');
    }
    const token = /^Bearer\s+(\S+)/i.exec(request.headers.authorization ?? '')?.[1] ?? '';
    this.#wss.handleUpgrade(request, socket, head, (ws) => this.#connected(ws, site, token));
  }

  #connected(ws: WebSocket, site: AuthenticatedSite, token: string): void {
    const peer: Peer = { site, token, missedPongs: 0, inFlight: 0, acks: Promise.resolve() };
    this.#peers.set(ws, peer);
    this.#o.observer?.connectionsChanged(this.#peers.size);
    this.#o.logger.info({ site: site.name }, 'stream connected');
    ws.on('pong', () => {
      peer.missedPongs = 0;
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#frame(ws, peer, data, isBinary));
    ws.on('error', (err) => this.#o.logger.info({ site: site.name, err: err.message }, 'stream error'));
    ws.on('close', (code) => {
      this.#peers.delete(ws);
      this.#o.observer?.connectionsChanged(this.#peers.size);
      this.#o.logger.info({ site: site.name, code }, 'stream closed');
    });
  }

  #frame(ws: WebSocket, peer: Peer, data: Buffer, isBinary: boolean): void {
    const started = performance.now();
    let seq: number | undefined;
    const outcome = (async (): Promise<Reply> => {
      if (isBinary) throw new HashwattError('invalid_body', 'frames must be JSON text');
      // The seq is needed for any answer; read it without parsing the whole frame.
      seq = leadingSeq(data);
      this.#o.pipeline.admit(data.length);
      const value = parseJson(data.toString('utf8'));
      seq = frameSeq(value);
      if (seq === undefined)
        throw new HashwattError('invalid_body', '"seq" must be a non-negative integer', { field: 'seq' });
      const readings = batchReadings(value, ['seq']);
      // The token is checked on every frame, so a rotated token stops a live connection too.
      const site = await this.#o.authenticate(peer.token);
      if (!site || site.id !== peer.site.id) {
        ws.close(CLOSE_POLICY, 'token no longer valid');
        throw new HashwattError('unauthorized', 'token no longer valid');
      }
      const result = await this.#o.pipeline.ingest(site, readings, data.length, 'ws');
      return { ack: seq, ...result };
    })()
      .catch((error: unknown): Reply => this.#errorReply(seq, error))
      .then((reply) => {
        this.#o.pipeline.observer.requestCompleted(
          'ws',
          replyStatus(reply),
          (performance.now() - started) / 1000,
        );
        return reply;
      });

    peer.inFlight++;
    if (peer.inFlight >= this.#o.maxFramesInFlight) ws.pause();
    peer.acks = peer.acks.then(async () => {
      const reply = await outcome;
      peer.inFlight--;
      if (peer.inFlight < this.#o.maxFramesInFlight && !this.#closing) ws.resume();
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(reply));
    });
  }

  #errorReply(seq: number | undefined, thrown: unknown): Reply {
    const error = domainError(thrown);
    if (isRetryable(error)) {
      const retryAfterMs = (error as HashwattError).details.retryAfterMs ?? 1000;
      return {
        seq: seq ?? null,
        retry_after_ms: retryAfterMs,
        error: { code: (error as HashwattError).code },
      };
    }
    if (error instanceof HashwattError && ERROR_STATUS[error.code] < 500) {
      return { seq: seq ?? null, error: { code: error.code, message: error.message, ...error.details } };
    }
    this.#o.logger.error({ err: error }, 'stream frame failed');
    return { seq: seq ?? null, error: { code: 'internal', message: 'internal error' } };
  }

  #beat(): void {
    for (const [ws, peer] of this.#peers) {
      if (peer.missedPongs >= 2) {
        ws.terminate();
        continue;
      }
      peer.missedPongs++;
      ws.ping();
    }
  }

  /** Stops reading, lets every admitted frame commit and be acked, then closes each socket with 1001. */
  async close(timeoutMs: number): Promise<void> {
    this.#closing = true;
    clearInterval(this.#heartbeat);
    for (const ws of this.#peers.keys()) ws.pause();
    const drained = Promise.all([...this.#peers.values()].map((p) => p.acks));
    await Promise.race([drained, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    const closed = [...this.#peers.keys()].map(
      (ws) =>
        new Promise<void>((resolve) => {
          ws.once('close', () => resolve());
          // A paused socket would not read the peer's answering close frame; frames that still
          // arrive now are refused by the closed pipeline with a retry hint.
          ws.resume();
          ws.close(CLOSE_GOING_AWAY, 'server shutting down');
          setTimeout(() => {
            ws.terminate();
            resolve();
          }, 2_000).unref();
        }),
    );
    await Promise.all(closed);
    this.#wss.close();
  }
}

/** The HTTP status a frame's reply corresponds to, so both transports share one label space. */
function replyStatus(reply: Reply): number {
  if (reply.ack !== undefined) return 200;
  const code = (reply.error as { code?: keyof typeof ERROR_STATUS } | undefined)?.code;
  return code ? ERROR_STATUS[code] : 500;
}

/**
 * The seq of a frame that starts `{"seq":N`, the shape agents send, so an overloaded server can
 * answer `{ seq, retry_after_ms }` without parsing the readings. Other shapes are parsed in full.
 */
function leadingSeq(data: Buffer): number | undefined {
  const m = /^\s*\{\s*"seq"\s*:\s*(\d{1,15})\s*[,}]/.exec(data.subarray(0, 48).toString('latin1'));
  return m ? Number(m[1]) : undefined;
}
