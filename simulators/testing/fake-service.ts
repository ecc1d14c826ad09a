/**
 * A small real ingest service on 127.0.0.1 for the simulators' own tests: it speaks the wire
 * contract (HTTP gzip ingest, WebSocket seq/ack, the admin site API), validates readings strictly
 * and stores each (site, device, ts) once. Tests script its failures per request or frame.
 * It stands in for the real service only until the end-to-end tests against it land.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { type WebSocket, WebSocketServer } from 'ws';
import { z } from 'zod';
import { readingKey } from '../physics/reading.ts';

const gunzipAsync = promisify(gunzip);

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const METRICS = [
  'power_w',
  'hashrate_ths',
  'expected_hashrate_ths',
  'temp_c',
  'fan_rpm',
  'gpu_util_pct',
  'gpu_mem_used_bytes',
  'available_power_w',
  'status',
] as const;

/** The reading as the contract defines it: unknown fields rejected, at least one metric. */
export const ContractReading = z
  .strictObject({
    device: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[\x20-\x7e]+$/, 'printable characters only'),
    kind: z.enum(['asic', 'gpu', 'meter', 'pdu', 'other']),
    ts: z.union([z.string().regex(RFC3339, 'RFC3339 expected'), z.int().min(0)]),
    model: z.string().min(1).optional(),
    power_w: z.number().min(0).optional(),
    hashrate_ths: z.number().min(0).optional(),
    expected_hashrate_ths: z.number().min(0).optional(),
    temp_c: z.number().min(-50).max(150).optional(),
    fan_rpm: z.number().min(0).optional(),
    gpu_util_pct: z.number().min(0).max(100).optional(),
    gpu_mem_used_bytes: z.int().min(0).optional(),
    available_power_w: z.number().min(0).optional(),
    status: z.enum(['ok', 'curtailed', 'idle', 'error', 'offline']).optional(),
  })
  .refine((r) => METRICS.some((m) => r[m] !== undefined), {
    message: 'at least one metric',
    path: ['power_w'],
  });

/** What the fake does with one HTTP ingest request (n counts from 1 per service). */
export type IngestPlan =
  | { kind: 'ok' }
  | { kind: 'status'; status: number; retryAfter?: string; code?: string }
  /** Stores the batch, then cuts the connection before answering: the agent must resend (duplicates). */
  | { kind: 'commit_then_drop' };

/** What the fake does with one WebSocket frame (n counts from 1 per service). */
export type FramePlan =
  | { kind: 'ack' }
  | { kind: 'retry_after'; ms: number }
  | { kind: 'error'; code: string }
  /** Stores the frame, then kills the connection without acknowledging. */
  | { kind: 'commit_then_drop' }
  /** Kills the connection before storing. */
  | { kind: 'drop' }
  /** Never answers (a wedged service). */
  | { kind: 'ignore' };

export interface FakeServiceOptions {
  /** Site token → site name. */
  tokens?: Record<string, string>;
  adminToken?: string;
  onIngest?: (n: number, site: string) => IngestPlan;
  onFrame?: (n: number, site: string) => FramePlan;
  /** Status to refuse the n-th WebSocket upgrade with (after auth), e.g. 503. */
  onUpgrade?: (n: number) => { status: number; retryAfter?: string } | null;
  /** Frames above this size close the connection with 1009 (ws maxPayload). */
  maxFrameBytes?: number;
  /** Delay before answering, to keep several requests in flight. */
  answerDelayMs?: number;
  /** Listen on this port (default: any free one), e.g. to bring a "restarted" service back. */
  port?: number;
}

interface FakeSite {
  id: number;
  name: string;
  kind: string;
  capacity_w: number;
  token: string;
  thresholds?: Record<string, number>;
}

export interface FakeService {
  url: string;
  /** (device, ts ms) keys stored per site. */
  stored(site: string): ReadonlySet<string>;
  /** How often each key arrived (1 = once; more = duplicates received). */
  receipts(site: string): ReadonlyMap<string, number>;
  /** Readings as stored, per site, in arrival order (first arrival only). */
  readings(site: string): z.infer<typeof ContractReading>[];
  stats: {
    requests: number;
    frames: number;
    upgrades: number;
    rejectedReadings: number;
    maxInFlight: number;
    connections: number;
  };
  /** Wall times (performance.now) of HTTP requests and frames received, for backoff assertions. */
  arrivals: number[];
  sites: Map<string, FakeSite>;
  /** Drops every open WebSocket connection (not a clean close). */
  dropConnections(): void;
  close(): Promise<void>;
}

export async function startFakeService(options: FakeServiceOptions = {}): Promise<FakeService> {
  const tokens = new Map(Object.entries(options.tokens ?? {}));
  const sites = new Map<string, FakeSite>();
  const store = new Map<string, Map<string, number>>();
  const rows = new Map<string, z.infer<typeof ContractReading>[]>();
  const stats = { requests: 0, frames: 0, upgrades: 0, rejectedReadings: 0, maxInFlight: 0, connections: 0 };
  const arrivals: number[] = [];
  let inFlight = 0;
  let nextSiteId = 1;
  let tokenSerial = 0;

  const siteOf = (authorization: string | undefined): string | null => {
    const m = /^Bearer (.+)$/.exec(authorization ?? '');
    return m ? (tokens.get(m[1]!) ?? null) : null;
  };

  /** Validates and stores a batch; returns the ingest answer. */
  const commit = (site: string, readings: unknown) => {
    if (!Array.isArray(readings)) return null;
    let accepted = 0;
    let duplicates = 0;
    const rejected: { index: number; field: string; code: string; message: string }[] = [];
    const siteStore = store.get(site) ?? new Map<string, number>();
    store.set(site, siteStore);
    const siteRows = rows.get(site) ?? [];
    rows.set(site, siteRows);
    readings.forEach((raw, index) => {
      const parsed = ContractReading.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        rejected.push({ index, field: String(issue.path[0] ?? ''), code: 'invalid', message: issue.message });
        stats.rejectedReadings++;
        return;
      }
      const r = parsed.data;
      const key = readingKey(r.device, typeof r.ts === 'number' ? r.ts : Date.parse(r.ts));
      const seen = siteStore.get(key) ?? 0;
      siteStore.set(key, seen + 1);
      if (seen > 0) duplicates++;
      else {
        accepted++;
        siteRows.push(r);
      }
    });
    return { accepted, duplicates, rejected };
  };

  const delay = () => new Promise((r) => setTimeout(r, options.answerDelayMs ?? 0));

  const send = (
    res: http.ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const error = (
    res: http.ServerResponse,
    status: number,
    code: string,
    headers: Record<string, string> = {},
  ) => send(res, status, { error: { code, message: code } }, headers);

  const readBody = (req: http.IncomingMessage) =>
    new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });

  const handleAdmin = async (req: http.IncomingMessage, res: http.ServerResponse, path: string) => {
    if (req.headers.authorization !== `Bearer ${options.adminToken}`) return error(res, 401, 'unauthorized');
    if (req.method === 'POST' && path === '/api/v1/sites') {
      const body = JSON.parse((await readBody(req)).toString('utf8')) as {
        name: string;
        kind: string;
        capacity_kw: number;
      };
      if (sites.has(body.name)) return error(res, 409, 'site_exists');
      const token = `tok-${body.name}-${++tokenSerial}`;
      const site: FakeSite = {
        id: nextSiteId++,
        name: body.name,
        kind: body.kind,
        capacity_w: body.capacity_kw * 1000,
        token,
      };
      sites.set(body.name, site);
      tokens.set(token, body.name);
      return send(res, 201, {
        site: { id: site.id, name: site.name, kind: site.kind, capacity_w: site.capacity_w },
        token,
      });
    }
    if (req.method === 'GET' && path === '/api/v1/sites') {
      return send(res, 200, { sites: [...sites.values()].map(({ token: _t, ...s }) => s) });
    }
    const rotate = /^\/api\/v1\/sites\/(\d+)\/token$/.exec(path);
    if (req.method === 'POST' && rotate) {
      const site = [...sites.values()].find((s) => s.id === Number(rotate[1]));
      if (!site) return error(res, 404, 'not_found');
      tokens.delete(site.token);
      site.token = `tok-${site.name}-${++tokenSerial}`;
      tokens.set(site.token, site.name);
      return send(res, 200, { token: site.token });
    }
    const patch = /^\/api\/v1\/sites\/(\d+)$/.exec(path);
    if (req.method === 'PATCH' && patch) {
      const site = [...sites.values()].find((s) => s.id === Number(patch[1]));
      if (!site) return error(res, 404, 'not_found');
      const body = JSON.parse((await readBody(req)).toString('utf8')) as {
        thresholds?: Record<string, number>;
      };
      site.thresholds = { ...site.thresholds, ...body.thresholds };
      const { token: _t, ...view } = site;
      return send(res, 200, { site: view });
    }
    return error(res, 404, 'not_found');
  };

  const handleIngest = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const site = siteOf(req.headers.authorization);
    const body = await readBody(req);
    if (!site) return error(res, 401, 'unauthorized');
    const n = ++stats.requests;
    arrivals.push(performance.now());
    inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, inFlight);
    try {
      await delay();
      if (!(req.headers['content-type'] ?? '').startsWith('application/json'))
        return error(res, 415, 'unsupported_media_type');
      const plan = options.onIngest?.(n, site) ?? { kind: 'ok' };
      if (plan.kind === 'status') {
        return error(
          res,
          plan.status,
          plan.code ?? `status_${plan.status}`,
          plan.retryAfter ? { 'retry-after': plan.retryAfter } : {},
        );
      }
      const text =
        req.headers['content-encoding'] === 'gzip'
          ? (await gunzipAsync(body)).toString('utf8')
          : body.toString('utf8');
      const parsed = z
        .strictObject({ readings: z.array(z.unknown()).max(10_000) })
        .safeParse(JSON.parse(text));
      if (!parsed.success) return error(res, 400, 'invalid_body');
      const result = commit(site, parsed.data.readings);
      if (plan.kind === 'commit_then_drop') {
        req.socket.destroy();
        return;
      }
      return send(res, 200, result);
    } finally {
      inFlight--;
    }
  };

  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const handler =
      path === '/api/v1/ingest' && req.method === 'POST'
        ? handleIngest(req, res)
        : handleAdmin(req, res, path);
    handler.catch(() => error(res, 500, 'internal'));
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxFrameBytes ?? 100 * 1024 * 1024 });
  const sockets = new Set<WebSocket>();
  server.on('upgrade', (req, socket, head) => {
    const refuse = (status: number, extra = '') => {
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\n${extra}connection: close\r\n\r\n{"error":{"code":"status_${status}","message":"refused"}}`,
      );
    };
    const site = siteOf(req.headers.authorization);
    if (new URL(req.url ?? '/', 'http://x').pathname !== '/api/v1/stream') return refuse(404);
    if (!site) return refuse(401);
    stats.upgrades++;
    const refusal = options.onUpgrade?.(stats.upgrades);
    if (refusal)
      return refuse(refusal.status, refusal.retryAfter ? `retry-after: ${refusal.retryAfter}\r\n` : '');
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      stats.connections++;
      ws.on('close', () => sockets.delete(ws));
      // Oversized frames surface here before ws closes with 1009; that close is what the test wants.
      ws.on('error', () => {});
      ws.on('message', async (data: Buffer) => {
        stats.frames++;
        arrivals.push(performance.now());
        const n = stats.frames;
        inFlight++;
        stats.maxInFlight = Math.max(stats.maxInFlight, inFlight);
        try {
          await delay();
          let frame: { seq?: unknown; readings?: unknown };
          try {
            frame = JSON.parse(data.toString('utf8')) as typeof frame;
          } catch {
            return ws.send(
              JSON.stringify({ seq: null, error: { code: 'invalid_json', message: 'not JSON' } }),
            );
          }
          const seq = frame.seq;
          const plan = options.onFrame?.(n, site) ?? { kind: 'ack' };
          if (plan.kind === 'drop') return ws.terminate();
          if (plan.kind === 'ignore') return;
          if (plan.kind === 'retry_after') return ws.send(JSON.stringify({ seq, retry_after_ms: plan.ms }));
          if (plan.kind === 'error')
            return ws.send(JSON.stringify({ seq, error: { code: plan.code, message: plan.code } }));
          const result = commit(site, frame.readings);
          if (!result)
            return ws.send(
              JSON.stringify({ seq, error: { code: 'invalid_frame', message: 'readings must be an array' } }),
            );
          if (plan.kind === 'commit_then_drop') return ws.terminate();
          if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ ack: seq, ...result }));
        } finally {
          inFlight--;
        }
      });
    });
  });

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    stored: (site) => new Set(store.get(site)?.keys() ?? []),
    receipts: (site) => store.get(site) ?? new Map(),
    readings: (site) => rows.get(site) ?? [],
    stats,
    arrivals,
    sites,
    dropConnections: () => {
      for (const ws of sockets) ws.terminate();
    },
    close: async () => {
      for (const ws of sockets) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
