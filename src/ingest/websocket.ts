import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { ERROR_STATUS, HashwattError, isRetryable } from '../errors.ts';
import { authenticateHeader, type SiteAuthenticator } from '../http/auth.ts';
import { parseJson } from '../http/body.ts';
import { acceptRequestId } from '../http/request-id.ts';
import type { Logger } from '../log.ts';
import { domainError } from '../storage/errors.ts';
import { jsonBatch } from './batch.ts';
import { ConcurrencyLimit } from './concurrency.ts';
import { batchReadings, frameSeq, wireResult } from './envelope.ts';
import type { AuthenticatedSite, IngestPipeline } from './pipeline.ts';

export const STREAM_PATH = '/api/v1/stream';

export interface StreamOptions {
  pipeline: IngestPipeline;
  authenticate: SiteAuthenticator;
  logger: Logger;
  /** Largest frame accepted; a bigger one closes the connection with 1009. */
  maxFrameBytes?: number;
  /** Frames of one connection being worked on or awaiting their ack; past it the socket is no longer read (TCP backpressure). */
  maxFramesInFlight?: number;
  /**
   * Frames of one connection held unstarted past the window. ws emits every frame of a chunk it
   * has already read even once paused, so a client that ignores the window lands some here; past
   * this many more, frames are refused at once with a retry hint, unparsed.
   */
  maxFramesQueued?: number;
  /**
   * Wire bytes of started frames across all connections. A frame is parsed only once started, so
   * this bounds the heap that frames admitted but not yet reserved in the write queue can take;
   * frames past it wait unstarted, their sockets paused. A lone frame always starts.
   */
  maxBytesInFlight?: number;
  /** Per-frame token checks that may wait on the database at once, across all connections. */
  maxConcurrentAuth?: number;
  /**
   * Reply bytes one connection may have waiting to be sent before its next frame waits (socket
   * paused) for them to drain. A client that sends but never reads its acks would otherwise make
   * the server hold every reply: one listing 10,000 rejections is about 800 KB.
   */
  maxBufferedReplyBytes?: number;
  /**
   * Reply bytes waiting past which the peer is taken not to read at all: the connection is closed
   * with 1008. Only replies of frames already started can land past maxBufferedReplyBytes.
   */
  maxBufferedReplyBytesHard?: number;
  /**
   * The slowest reply reading a live agent is assumed to manage (a site on a poor uplink): a backlog
   * of B bytes is given B / this seconds without visible progress before the peer counts as dead.
   */
  minReplyReadBytesPerS?: number;
  heartbeatMs?: number;
  observer?: { connectionsChanged(open: number): void };
}

/** What the transport's reply bounds have seen, for tests and diagnosis. */
export interface StreamSendStats {
  /** Most reply bytes any connection had waiting to be sent, measured after each send. */
  peakBufferedBytes: number;
  /** Connections closed (1008) for not reading their replies. */
  closedForUnreadReplies: number;
}

interface Peer {
  site: AuthenticatedSite;
  token: string;
  /** Names the connection in every error frame and log line, as X-Request-Id names an HTTP request. */
  requestId: string;
  missedPongs: number;
  /** Frames started and not yet acked: at most maxFramesInFlight. */
  inFlight: number;
  /** Frames read and not started, in arrival order; `true` starts one, `false` drops it (socket gone). */
  queued: { bytes: number; settle: (start: boolean) => void }[];
  /** Acks leave in frame order: each waits for the one before. */
  acks: Promise<void>;
  /**
   * Set while replies wait past maxBufferedReplyBytes (no new frame starts): heartbeats the peer
   * has let pass without taking any of them. It cannot read pongs while paused, so this is how a
   * dead or stuck peer is told from a slow one.
   */
  stalledBeats: number | undefined;
}

const CLOSE_GOING_AWAY = 1001;
const CLOSE_POLICY = 1008;
const MIB = 1024 * 1024;
/**
 * Heartbeats a peer may let pass without taking any reply bytes while its replies are backed up,
 * like the two missed pongs that end an idle dead peer.
 */
const MAX_STALLED_BEATS = 2;
/** Retry hint for a frame refused because its connection ignored the window. */
const WINDOW_RETRY_AFTER_MS = 250;

/** Wire message for an outcome: ack, retry hint, or error, always naming the frame's seq. */
type Reply = Record<string, unknown>;

function rejectUpgrade(
  socket: Duplex,
  status: number,
  code: string,
  message: string,
  requestId: string,
): void {
  const body = JSON.stringify({ error: { code, message, request_id: requestId } });
  const reason = status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Service Unavailable';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
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
  readonly #auth: ConcurrencyLimit;
  /** The id of each upgrade request, for the 101 response's X-Request-Id header. */
  readonly #requestIds = new WeakMap<IncomingMessage, string>();
  #bytesInFlight = 0;
  /** Connections whose next frame waits for `maxBytesInFlight`, woken as started frames are acked. */
  readonly #waitingForBytes = new Map<WebSocket, Peer>();
  #closing = false;
  readonly #sendStats: StreamSendStats = { peakBufferedBytes: 0, closedForUnreadReplies: 0 };

  constructor(options: StreamOptions) {
    this.#o = {
      maxFrameBytes: 4 * 1024 * 1024,
      maxFramesInFlight: 4,
      maxFramesQueued: 64,
      maxBytesInFlight: 16 * 1024 * 1024,
      maxConcurrentAuth: 8,
      maxBufferedReplyBytes: 4 * MIB,
      maxBufferedReplyBytesHard: 16 * MIB,
      minReplyReadBytesPerS: 8 * 1024,
      heartbeatMs: 30_000,
      ...options,
    };
    this.#auth = new ConcurrencyLimit(this.#o.maxConcurrentAuth);
    // Compression off: frames are bounded by their wire size, so no inflation bomb can get past maxPayload.
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.#o.maxFrameBytes,
      perMessageDeflate: false,
    });
    this.#wss.on('headers', (headers, request) => {
      const id = this.#requestIds.get(request);
      if (id) headers.push(`X-Request-Id: ${id}`);
    });
    this.#heartbeat = setInterval(() => this.#beat(), this.#o.heartbeatMs);
    this.#heartbeat.unref();
  }

  /**
   * Checks the token of every open connection (of one site, or all) again and closes those it no
   * longer authenticates: a token rotated or revoked through another replica ends an idle
   * connection here too, not only its next frame (the change feed calls this).
   */
  async revalidate(siteId?: number): Promise<number> {
    let closed = 0;
    const peers = [...this.#peers].filter(([, p]) => siteId === undefined || p.site.id === siteId);
    await Promise.all(
      peers.map(async ([ws, peer]) => {
        const site = await this.#o.authenticate(peer.token).catch(() => peer.site);
        if (site && site.id === peer.site.id) return;
        closed++;
        ws.close(CLOSE_POLICY, 'token no longer valid');
      }),
    );
    return closed;
  }

  get connections(): number {
    return this.#peers.size;
  }

  /** A snapshot of what the reply bounds have seen. */
  get sendStats(): StreamSendStats {
    return { ...this.#sendStats };
  }

  /** Routes the HTTP server's upgrade requests here. */
  attach(server: Server): void {
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.#upgrade(request, socket, head);
    });
  }

  async #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const header = request.headers['x-request-id'];
    const requestId = acceptRequestId(typeof header === 'string' ? header : undefined);
    const path = new URL(request.url ?? '/', 'http://local').pathname;
    if (path !== STREAM_PATH)
      return rejectUpgrade(socket, 404, 'not_found', `no WebSocket endpoint at ${path}`, requestId);
    if (this.#closing)
      return rejectUpgrade(socket, 503, 'shutting_down', 'the service is shutting down', requestId);
    let site: AuthenticatedSite;
    try {
      site = await authenticateHeader(request.headers.authorization, this.#o.authenticate);
    } catch (error) {
      if (error instanceof HashwattError && error.code === 'unauthorized') {
        return rejectUpgrade(socket, 401, 'unauthorized', error.message, requestId);
      }
      this.#o.logger.warn({ err: error, request_id: requestId }, 'websocket upgrade failed');
      return rejectUpgrade(
        socket,
        503,
        'database_unavailable',
        'cannot authenticate now; retry later',
        requestId,
      );
    }
    const token = /^Bearer\s+(\S+)/i.exec(request.headers.authorization ?? '')?.[1] ?? '';
    this.#requestIds.set(request, requestId);
    this.#wss.handleUpgrade(request, socket, head, (ws) => this.#connected(ws, site, token, requestId));
  }

  #connected(ws: WebSocket, site: AuthenticatedSite, token: string, requestId: string): void {
    const peer: Peer = {
      site,
      token,
      requestId,
      missedPongs: 0,
      inFlight: 0,
      queued: [],
      acks: Promise.resolve(),
      stalledBeats: undefined,
    };
    this.#peers.set(ws, peer);
    this.#o.observer?.connectionsChanged(this.#peers.size);
    const log = { site: site.name, request_id: requestId };
    this.#o.logger.info(log, 'stream connected');
    ws.on('pong', () => {
      peer.missedPongs = 0;
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#frame(ws, peer, data, isBinary));
    ws.on('error', (err) => this.#o.logger.info({ ...log, err: err.message }, 'stream error'));
    ws.on('close', (code) => {
      this.#peers.delete(ws);
      // Nobody is left to ack frames that never started; working on them would only load the database.
      for (const frame of peer.queued.splice(0)) frame.settle(false);
      this.#waitingForBytes.delete(ws);
      this.#o.observer?.connectionsChanged(this.#peers.size);
      this.#o.logger.info({ ...log, code }, 'stream closed');
    });
  }

  /**
   * Takes one frame in. At most maxFramesInFlight frames of a connection are worked on or await
   * their ack at once; later ones wait unstarted (bounded), and the socket is paused meanwhile, so
   * a client that ignores its window cannot put more than that into the pool's queue.
   */
  #frame(ws: WebSocket, peer: Peer, data: Buffer, isBinary: boolean): void {
    const received = performance.now();
    if (ws.readyState !== ws.OPEN) {
      // Closing: nobody would get the ack (a frame read while our close frame is on its way).
      this.#o.pipeline.observer.requestCompleted('ws', 499, 0);
      return;
    }
    let started = false;
    let dropped = false;
    let outcome: Promise<Reply>;
    if (peer.queued.length >= this.#o.maxFramesQueued) {
      outcome = Promise.resolve(this.#windowRefusal(peer, data));
    } else {
      outcome = new Promise<Reply>((resolve) => {
        peer.queued.push({
          bytes: data.length,
          settle: (start) => {
            if (!start) {
              dropped = true;
              return resolve({});
            }
            started = true;
            resolve(this.#process(ws, peer, data, isBinary));
          },
        });
      });
    }
    const answered = outcome.then((reply) => {
      // A frame dropped unstarted because its client left is a client abort, like HTTP's 499.
      this.#o.pipeline.observer.requestCompleted(
        'ws',
        dropped ? 499 : replyStatus(reply),
        (performance.now() - received) / 1000,
      );
      return reply;
    });
    peer.acks = peer.acks.then(async () => {
      const reply = await answered;
      this.#reply(ws, peer, reply);
      if (started) {
        peer.inFlight--;
        this.#bytesInFlight -= data.length;
        this.#wakeWaitingForBytes();
      }
      this.#startQueued(ws, peer);
    });
    this.#startQueued(ws, peer);
  }

  /**
   * Starts queued frames while the connection's window and the global byte bound have room; reads
   * the socket only while nothing waits.
   */
  #startQueued(ws: WebSocket, peer: Peer): void {
    // Closing: start nothing, and leave the socket read so the peer's answering close frame arrives.
    if (ws.readyState !== ws.OPEN) return;
    const backedUp = peer.stalledBeats !== undefined;
    let waitsForBytes = false;
    while (!backedUp && peer.inFlight < this.#o.maxFramesInFlight && peer.queued.length > 0) {
      const next = peer.queued[0]!;
      // Oldest waiter first: a connection behind another that waits for bytes does not overtake it,
      // or a large frame could starve behind a stream of small ones. With nothing in flight,
      // anything starts, so a frame larger than the bound cannot wedge.
      const first = this.#waitingForBytes.keys().next().value;
      const behindOthers = first !== undefined && first !== ws;
      const over = this.#bytesInFlight + next.bytes > this.#o.maxBytesInFlight;
      if (this.#bytesInFlight > 0 && (behindOthers || over)) {
        if (!this.#waitingForBytes.has(ws)) this.#waitingForBytes.set(ws, peer);
        waitsForBytes = true;
        break;
      }
      peer.queued.shift();
      peer.inFlight++;
      this.#bytesInFlight += next.bytes;
      next.settle(true);
    }
    if (!waitsForBytes) this.#waitingForBytes.delete(ws);
    if (backedUp || peer.inFlight >= this.#o.maxFramesInFlight || peer.queued.length > 0) ws.pause();
    else if (!this.#closing) ws.resume();
  }

  /**
   * Sends a reply, bounding what waits unsent: past maxBufferedReplyBytes the connection starts no
   * frame until its peer has taken the backlog (socket paused, so TCP stops the sender too); past
   * the hard bound it is closed. So what one connection makes the server hold is at most the hard
   * bound plus one reply.
   */
  #reply(ws: WebSocket, peer: Peer, reply: Reply): void {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify(reply), () => this.#replyWritten(ws, peer));
    const buffered = ws.bufferedAmount;
    this.#sendStats.peakBufferedBytes = Math.max(this.#sendStats.peakBufferedBytes, buffered);
    if (buffered > this.#o.maxBufferedReplyBytesHard) {
      this.#closeUnread(ws, peer, `more than ${this.#o.maxBufferedReplyBytesHard} bytes of replies unread`);
    } else if (buffered > this.#o.maxBufferedReplyBytes && peer.stalledBeats === undefined) {
      peer.stalledBeats = 0;
      ws.pause();
    }
  }

  /**
   * A reply has been handed to the socket: the peer is taking bytes. Once the backlog is under
   * the bound, frames start again; until then, the peer is at least not stalled.
   */
  #replyWritten(ws: WebSocket, peer: Peer): void {
    if (peer.stalledBeats === undefined) return;
    if (ws.bufferedAmount <= this.#o.maxBufferedReplyBytes) {
      peer.stalledBeats = undefined;
      this.#startQueued(ws, peer);
    } else {
      peer.stalledBeats = 0;
    }
  }

  /**
   * Closes (1008) a connection whose peer does not read its replies. Its frames not started are
   * dropped; its close frame queues behind the unread replies, and ws destroys the socket if the
   * peer does not answer it within its close timeout, so even a dead peer lets go.
   */
  #closeUnread(ws: WebSocket, peer: Peer, reason: string): void {
    this.#sendStats.closedForUnreadReplies++;
    this.#o.logger.warn(
      { site: peer.site.name, request_id: peer.requestId, buffered_bytes: ws.bufferedAmount, reason },
      'stream closed: replies not read',
    );
    for (const frame of peer.queued.splice(0)) frame.settle(false);
    this.#waitingForBytes.delete(ws);
    ws.resume();
    ws.close(CLOSE_POLICY, reason);
  }

  /**
   * Gives connections held back by the byte bound their turn, longest waiting first, stopping at
   * the first that still does not fit: it keeps its place at the head, and nobody overtakes it.
   */
  #wakeWaitingForBytes(): void {
    for (const [ws, peer] of [...this.#waitingForBytes]) {
      this.#startQueued(ws, peer);
      if (this.#waitingForBytes.has(ws)) break;
    }
  }

  async #process(ws: WebSocket, peer: Peer, data: Buffer, isBinary: boolean): Promise<Reply> {
    let seq: number | undefined;
    try {
      if (isBinary) throw new HashwattError('invalid_body', 'frames must be JSON text');
      // The seq is needed for any answer; read it without parsing the whole frame.
      seq = leadingSeq(data);
      this.#o.pipeline.admit(peer.site, data.length);
      // The token is checked on every frame, so a rotated token stops a live connection too. It is
      // checked before parsing: from the parse on, nothing awaits until the readings hold room in
      // the write queue, so parsed frames waiting on the database never sit outside its bounds.
      const site = await this.#auth.run(() => this.#o.authenticate(peer.token));
      if (!site || site.id !== peer.site.id) {
        // Read again so the peer's answering close frame arrives: a paused socket would hold the
        // handshake (and the agent's reconnect with its new token) until ws's 30 s close timeout.
        ws.resume();
        ws.close(CLOSE_POLICY, 'token no longer valid');
        throw new HashwattError('unauthorized', 'token no longer valid');
      }
      // The queue may have filled during the lookup.
      this.#o.pipeline.admit(site, data.length);
      // Parsed in the site's turn; the ingest call inside it reserves the frame's room in the write
      // queue before the turn ends, so a parsed frame never waits outside the queue's bounds.
      const { ack, pending } = await this.#o.pipeline.turn(site.id, () => {
        const value = parseJson(data.toString('utf8'));
        seq = frameSeq(value);
        if (seq === undefined)
          throw new HashwattError('invalid_body', '"seq" must be a non-negative integer', { field: 'seq' });
        const ingesting = this.#o.pipeline
          .ingest(site, jsonBatch(batchReadings(value, ['seq'])), 'ws')
          .then(wireResult);
        // Awaited just below; marked handled here, as a refusal (429) rejects before that await runs.
        ingesting.catch(() => {});
        return { ack: seq, pending: ingesting };
      });
      return { ack, ...(await pending) };
    } catch (error) {
      return this.#errorReply(peer, seq, error);
    }
  }

  /** The answer to a frame past the window and the queue: not parsed, not worked on. */
  #windowRefusal(peer: Peer, data: Buffer): Reply {
    return {
      seq: leadingSeq(data) ?? null,
      retry_after_ms: WINDOW_RETRY_AFTER_MS,
      error: {
        code: 'overloaded',
        message: `more than ${this.#o.maxFramesInFlight + this.#o.maxFramesQueued} frames unacknowledged on this connection; wait for acks`,
        request_id: peer.requestId,
      },
    };
  }

  #errorReply(peer: Peer, seq: number | undefined, thrown: unknown): Reply {
    const error = domainError(thrown);
    const request_id = peer.requestId;
    if (isRetryable(error)) {
      const known = error as HashwattError;
      return {
        seq: seq ?? null,
        retry_after_ms: known.details.retryAfterMs ?? 1000,
        error: { code: known.code, message: known.message, request_id },
      };
    }
    if (error instanceof HashwattError && ERROR_STATUS[error.code] < 500) {
      const { retryAfterMs: _, ...details } = error.details;
      return {
        seq: seq ?? null,
        error: { code: error.code, message: error.message, ...details, request_id },
      };
    }
    this.#o.logger.error({ err: error, request_id }, 'stream frame failed');
    return { seq: seq ?? null, error: { code: 'internal', message: 'internal error', request_id } };
  }

  #beat(): void {
    for (const [ws, peer] of this.#peers) {
      if (peer.stalledBeats !== undefined && ws.readyState === ws.OPEN) {
        // Paused for its own unread replies: a peer that takes none of them for this long is dead
        // or stuck, and must not hold the connection (and the replies) forever.
        // ws reports progress only when a whole write reaches the kernel, and a backed-up socket
        // writes its replies as one batch: a slow reader taking a large backlog shows none for a
        // while. So the allowance grows with the backlog, at a floor read rate no live agent is under.
        const allowedBeats = Math.max(
          MAX_STALLED_BEATS,
          Math.ceil(ws.bufferedAmount / (this.#o.minReplyReadBytesPerS * (this.#o.heartbeatMs / 1000))),
        );
        if (++peer.stalledBeats > allowedBeats) {
          this.#closeUnread(ws, peer, `replies unread for ${allowedBeats} heartbeats`);
        }
        continue;
      }
      // A socket paused for the window cannot read the pong; the wait is on us (frames in flight
      // end within the database's timeouts), not a dead peer. A closing one is ended by ws's own
      // close timeout if its peer never answers.
      if (ws.isPaused || ws.readyState !== ws.OPEN) continue;
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
