import { createHash } from 'node:crypto';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  request,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy on loopback in front of a real hashwatt, for the failure a retrying sender must
 * survive: the request reached the server and was committed, but the answer never came back. For
 * the armed requests the proxy forwards the request, waits for hashwatt's real answer (so the data
 * is stored), and tells the client `503` + `Retry-After` instead. Every exchange is kept, body
 * included, so a test can tell resends (the same bytes again) from new requests.
 */

/** One request as the proxy saw it, with hashwatt's answer and the one the client got. */
export interface ProxiedExchange {
  /** Arrival order, from 0. */
  readonly seq: number;
  readonly method: string;
  /** The path without the query. */
  readonly path: string;
  /** The path with the query, as the client sent it. */
  readonly target: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly bodySha256: string;
  /** hashwatt's status; 0 when it could not be reached. */
  readonly upstreamStatus: number;
  /** What the client was told. */
  readonly answeredStatus: number;
  /** True when the proxy replaced hashwatt's answer by its fault. */
  readonly answerLost: boolean;
}

/**
 * The next `count` requests to `path` (those whose body `when` accepts, if given) are forwarded
 * but answered `status` (503) + `Retry-After`.
 */
export interface LostAnswerFault {
  path: string;
  count: number;
  when?: (body: Buffer) => boolean;
  status?: number;
  retryAfterSeconds?: number;
}

type ArmedFault = Required<Omit<LostAnswerFault, 'when'>> & Pick<LostAnswerFault, 'when'>;

/** Headers that describe one hop's connection, not the message: never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'content-length',
  'host',
]);

function endToEndHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

async function readAll(stream: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export class FaultProxy {
  readonly #upstream: URL;
  readonly #server: Server;
  readonly #exchanges: ProxiedExchange[] = [];
  readonly #faults: ArmedFault[] = [];
  #arrivals = 0;

  private constructor(upstream: string) {
    this.#upstream = new URL(upstream);
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        res.destroy(error instanceof Error ? error : new Error(String(error)));
      });
    });
  }

  /** A proxy to `upstream` (hashwatt's base URL) on a random loopback port. */
  static async start(upstream: string, options: { loseAnswers?: LostAnswerFault } = {}): Promise<FaultProxy> {
    const proxy = new FaultProxy(upstream);
    if (options.loseAnswers) proxy.loseAnswers(options.loseAnswers);
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once('error', reject);
      proxy.#server.listen(0, '127.0.0.1', resolve);
    });
    return proxy;
  }

  /** The proxy's base URL: give it to the client instead of hashwatt's. */
  get url(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /** Every exchange answered so far, in the order the answers went out. */
  get exchanges(): readonly ProxiedExchange[] {
    return this.#exchanges;
  }

  /** Arms a fault: the next `count` matching requests to `path` (counted on arrival) lose their answer. */
  loseAnswers(fault: LostAnswerFault): void {
    this.#faults.push({ status: 503, retryAfterSeconds: 1, ...fault });
  }

  /** Exchanges to `path` whose answer the proxy replaced. */
  lostAnswers(path: string): ProxiedExchange[] {
    return this.#exchanges.filter((e) => e.path === path && e.answerLost);
  }

  /**
   * Exchanges to `path` whose body is byte for byte one that reached hashwatt earlier: the
   * sender's retries (a new request with the same content would be a sender bug, not a retry).
   */
  resends(path: string): ProxiedExchange[] {
    const firstSeq = new Map<string, number>();
    const out: ProxiedExchange[] = [];
    for (const e of [...this.#exchanges].sort((a, b) => a.seq - b.seq)) {
      if (e.path !== path) continue;
      const first = firstSeq.get(e.bodySha256);
      if (first === undefined) firstSeq.set(e.bodySha256, e.seq);
      else out.push(e);
    }
    return out;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Takes one armed fault for this request, if any is left. Called before forwarding. */
  #takeFault(path: string, body: Buffer): ArmedFault | undefined {
    const fault = this.#faults.find((f) => f.path === path && f.count > 0 && (f.when?.(body) ?? true));
    if (fault) fault.count--;
    return fault;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const seq = this.#arrivals++;
    const target = req.url ?? '/';
    const path = new URL(target, 'http://proxy').pathname;
    const body = await readAll(req);
    const fault = this.#takeFault(path, body);
    const upstream = await this.#forward(req, target, body);
    const record = (answeredStatus: number, answerLost: boolean) =>
      this.#exchanges.push({
        seq,
        method: req.method ?? 'GET',
        path,
        target,
        headers: req.headers,
        body,
        bodySha256: createHash('sha256').update(body).digest('hex'),
        upstreamStatus: upstream?.status ?? 0,
        answeredStatus,
        answerLost,
      });
    if (fault) {
      // Recorded before answering: a test that sees the client's retry also sees this exchange.
      record(fault.status, true);
      res.writeHead(fault.status, {
        'content-type': 'text/plain; charset=utf-8',
        'retry-after': String(fault.retryAfterSeconds),
      });
      res.end('answer lost by the fault proxy\n');
      return;
    }
    if (!upstream) {
      record(502, false);
      res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('upstream unreachable\n');
      return;
    }
    record(upstream.status, false);
    res.writeHead(upstream.status, {
      ...endToEndHeaders(upstream.headers),
      'content-length': upstream.body.length,
    });
    res.end(upstream.body);
  }

  async #forward(
    req: IncomingMessage,
    target: string,
    body: Buffer,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer } | undefined> {
    return new Promise((resolve) => {
      const out = request(
        {
          host: this.#upstream.hostname,
          port: this.#upstream.port,
          method: req.method,
          path: target,
          headers: { ...endToEndHeaders(req.headers), 'content-length': body.length },
        },
        (answer) => {
          readAll(answer).then(
            (answerBody) =>
              resolve({ status: answer.statusCode ?? 0, headers: answer.headers, body: answerBody }),
            () => resolve(undefined),
          );
        },
      );
      out.once('error', () => resolve(undefined));
      out.end(body);
    });
  }
}
