import http from 'node:http';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import pg from 'pg';
import { compressSync } from 'snappy';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { readingKey } from '../../simulators/index.ts';
import { ReadingSchema, validateReading } from '../../src/ingest/reading.ts';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import { createSite } from '../support/service.ts';
import { expectNoCrash } from './support/checks.ts';
import {
  blastStream,
  CORE_SAMPLE_COLUMNS,
  decodeOtlpExportResponse,
  EXTRA_SAMPLE_COLUMNS,
  type Expected,
  type ExpectedFrame,
  expectFrame,
  frameArb,
  httpRequestArb,
  IngestModel,
  inflatingBody,
  otlpEncodingOf,
  PUSH_AUTH,
  type PushAnswer,
  PushLedger,
  type PushRequest,
  pushAnswerFault,
  pushRequestArb,
  type RawAnswer,
  rawRequest,
  samplesOfRows,
  type WireRequest,
} from './support/hostile.ts';
import { ADMIN_TOKEN, HashwattProcess, peakRssMb, rssMb } from './support/process.ts';

const DAY_MS = 86_400_000;
// Fixed seeds so a failure replays; HASHWATT_FUZZ_SEED and HASHWATT_FUZZ_RUNS explore further.
const SEED = Number(process.env.HASHWATT_FUZZ_SEED ?? 424_242);
const HTTP_RUNS = Number(process.env.HASHWATT_FUZZ_RUNS ?? 400);
const FRAME_RUNS = HTTP_RUNS;
const PUSH_RUNS = HTTP_RUNS;
/**
 * Peak RSS of the service through the whole run: the fuzzing above plus the memory-hostile load
 * below (bodies that inflate to just under the per-request limit, 16 at once; an admin body of
 * 120 MiB; stream clients that ignore their window). Before the global decode budget, the admin
 * body limit and the stream window held to the pool, one such run peaked at 1.2–1.3 GB.
 */
const MAX_PEAK_RSS_MB = 512;

interface Answer {
  status: number;
  body: string;
}

/** POSTs exact bytes with exact headers (no client-side help). A refusal before the body is read is still an answer. */
function send(base: string, token: string, request: WireRequest): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {
      authorization: `Bearer ${token}`,
      'content-length': request.body.length,
    };
    if (request.contentType !== undefined) headers['content-type'] = request.contentType;
    if (request.contentEncoding !== undefined) headers['content-encoding'] = request.contentEncoding;
    const req = http.request(`${base}/api/v1/ingest`, {
      method: 'POST',
      headers,
      timeout: 30_000,
      agent: false,
    });
    let answered = false;
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    req.on('response', (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.end(request.body);
  });
}

/** POSTs a push request's exact bytes and headers with the site token; the answer whole. */
function sendPush(base: string, token: string, request: PushRequest): Promise<PushAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${request.path}`, {
      method: 'POST',
      headers: {
        ...request.headers,
        authorization: `${PUSH_AUTH[request.protocol]} ${token}`,
        'content-length': request.body.length,
      },
      timeout: 30_000,
      agent: false,
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(res.headers))
          if (typeof value === 'string') headers.set(name, value);
        resolve({ status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks) });
      });
      res.on('error', reject);
    });
    req.end(request.body);
  });
}

/** The rejected data points an OTLP 200 names (0 for a full success). */
function rejectedPointsOf(request: PushRequest, answer: PushAnswer): number {
  if (otlpEncodingOf(request.headers['content-type']) === 'protobuf')
    return decodeOtlpExportResponse(answer.body).rejectedDataPoints;
  const json = JSON.parse(Buffer.from(answer.body).toString('utf8')) as {
    partialSuccess?: { rejectedDataPoints?: string };
  };
  return Number(json.partialSuccess?.rejectedDataPoints ?? 0);
}

interface IngestBody {
  accepted?: number;
  duplicates?: number;
  accepted_samples?: number;
  duplicate_samples?: number;
  rejected?: { index: number; code: string }[];
  error?: { code: string };
}

function checkIngestAnswer(
  expected:
    | Exclude<Expected, { code: string }>
    | Exclude<ExpectedFrame, { close: number } | { code: string }>,
  body: IngestBody,
  sent: Buffer,
): void {
  const rejected = body.rejected ?? [];
  expect(
    {
      accepted: body.accepted,
      duplicates: body.duplicates,
      acceptedSamples: body.accepted_samples,
      duplicateSamples: body.duplicate_samples,
      rejected: rejected.map((r) => r.index),
      kindRequired: rejected.filter((r) => r.code === 'kind_required').map((r) => r.index),
    },
    `sent ${sent.toString('utf8').slice(0, 3000)}\nanswered ${JSON.stringify(body).slice(0, 2000)}`,
  ).toEqual({
    accepted: expected.accepted,
    duplicates: expected.duplicates,
    acceptedSamples: expected.acceptedSamples,
    duplicateSamples: expected.duplicateSamples,
    rejected: expected.rejectedIndexes,
    kindRequired: expected.kindRequired,
  });
}

/** A stream connection for the fuzzer: one frame at a time, its answer or the close code. */
class FuzzStream {
  #ws: WebSocket | undefined;
  #waiter: ((m: { reply: Record<string, unknown> } | { close: number }) => void) | undefined;
  readonly #url: string;
  readonly #token: string;
  connections = 0;

  constructor(url: string, token: string) {
    this.#url = url;
    this.#token = token;
  }

  async #open(): Promise<WebSocket> {
    if (this.#ws && this.#ws.readyState === WebSocket.OPEN) return this.#ws;
    const ws = new WebSocket(`${this.#url.replace(/^http/, 'ws')}/api/v1/stream`, {
      headers: { authorization: `Bearer ${this.#token}` },
      maxPayload: 1024 * 1024,
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    this.connections++;
    ws.on('message', (data) =>
      this.#waiter?.({ reply: JSON.parse(String(data)) as Record<string, unknown> }),
    );
    ws.on('close', (code) => this.#waiter?.({ close: code }));
    ws.on('error', () => {});
    this.#ws = ws;
    return ws;
  }

  async exchange(frame: { data: Buffer; binary: boolean }) {
    const ws = await this.#open();
    const answer = new Promise<{ reply: Record<string, unknown> } | { close: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer to a frame within 30 s')), 30_000);
      this.#waiter = (m) => {
        clearTimeout(timer);
        this.#waiter = undefined;
        resolve(m);
      };
    });
    ws.send(frame.data, { binary: frame.binary });
    return answer;
  }

  close(): void {
    this.#ws?.close();
  }
}

describe('reliability: hostile input over HTTP and WebSocket', () => {
  let db: TestDatabase | undefined;
  let service: HashwattProcess | undefined;
  let token = '';
  let pushToken = '';
  const model = new IngestModel();
  const ledger = new PushLedger();
  const T0 = Date.now() - 2 * DAY_MS;
  let run = 0;
  // Every run's valid readings get timestamps of their own; duplicates come from inside a batch.
  const tsBase = () => T0 + run * 100;
  const counts = {
    requests: 0,
    frames: 0,
    pushes: 0,
    ok: 0,
    refused: 0,
    byStatus: new Map<string, number>(),
  };
  const tally = (key: string) => counts.byStatus.set(key, (counts.byStatus.get(key) ?? 0) + 1);

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await HashwattProcess.start(db.url!);
    token = (await createSite(service.url, 'fuzz', 'mixed', 1_000)).token;
    pushToken = (await createSite(service.url, 'fuzz-push', 'mixed', 1_000)).token;
  });

  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it('answers every HTTP body as the contract says, never with a 5xx', async () => {
    const hashwatt = service!;
    await fc.assert(
      fc.asyncProperty(
        httpRequestArb(tsBase, () => Date.now()),
        async (request) => {
          run++;
          counts.requests++;
          const expected = model.http(request, Date.now());
          const answer = await send(hashwatt.url, token, request);
          tally(`HTTP ${answer.status}`);
          expect(answer.status, `${request.label}: ${answer.body.slice(0, 300)}`).toBeLessThan(500);
          expect(answer.status, `${request.label}: ${answer.body.slice(0, 300)}`).toBe(expected.status);
          const body = JSON.parse(answer.body) as IngestBody;
          if ('code' in expected) expect(body.error?.code, request.label).toBe(expected.code);
          else checkIngestAnswer(expected, body, request.body);
          model.commit();
        },
      ),
      { numRuns: HTTP_RUNS, seed: SEED, endOnFailure: true },
    );
    expect(hashwatt.running).toBe(true);
  });

  it('answers every WebSocket frame as the contract says, never with an internal error', async () => {
    const hashwatt = service!;
    const stream = new FuzzStream(hashwatt.url, token);
    let seq = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          frameArb(tsBase, () => Date.now()),
          async (frame) => {
            run++;
            counts.frames++;
            const wire = frame.render(seq++);
            const expected = expectFrame(model, wire, Date.now());
            const answer = await stream.exchange(wire);
            if ('close' in answer) {
              tally(`close ${answer.close}`);
              expect(expected, frame.label).toEqual({ close: answer.close });
              return;
            }
            const reply = answer.reply as IngestBody & { ack?: number; seq?: number | null };
            tally(reply.error ? `frame ${reply.error.code}` : 'frame ack');
            expect(reply.error?.code, `${frame.label}: ${JSON.stringify(reply).slice(0, 300)}`).not.toBe(
              'internal',
            );
            if ('close' in expected)
              throw new Error(`${frame.label}: expected close ${expected.close}, got a reply`);
            if ('code' in expected) {
              const { seqs = [expected.seq], code } = expected;
              expect(reply.error?.code, frame.label).toBe(code);
              expect(seqs, `${frame.label}: answered seq ${reply.seq}`).toContain(reply.seq ?? null);
            } else {
              expect(reply.ack, frame.label).toBe(expected.ack);
              checkIngestAnswer(expected, reply, wire.data);
            }
            model.commit();
          },
        ),
        { numRuns: FRAME_RUNS, seed: SEED + 1, endOnFailure: true },
      );
    } finally {
      stream.close();
    }
    expect(hashwatt.running).toBe(true);
  });

  it('answers every push-protocol body (remote_write, line protocol, OTLP) as its protocol says, never with a 5xx', async () => {
    const hashwatt = service!;
    const check = async (request: PushRequest, attempt: string) => {
      const answer = await sendPush(hashwatt.url, pushToken, request);
      tally(`${request.protocol} ${answer.status}`);
      const said = `${request.label}${attempt}: ${answer.status} ${Buffer.from(answer.body).toString('utf8').slice(0, 400)}`;
      expect(answer.status, said).toBeLessThan(500);
      expect(
        pushAnswerFault(request.protocol, request.headers['content-type'], answer),
        said,
      ).toBeUndefined();
      expect(answer.status, said).toBe(request.status);
      if (request.protocol === 'otlp' && answer.status === 200)
        expect(rejectedPointsOf(request, answer), said).toBe(request.rejectedPoints);
      if (request.protocol === 'remote_write') {
        const unmapped = answer.headers.get('x-hashwatt-unmapped-series');
        expect(unmapped, said).toBe(
          request.unmappedSeries === undefined ? null : String(request.unmappedSeries),
        );
      }
      ledger.accept(request.good);
    };
    await fc.assert(
      fc.asyncProperty(
        pushRequestArb(tsBase, () => Date.now()),
        async (request) => {
          run++;
          counts.pushes++;
          await check(request, '');
          // Every fifth one again, as a sender retrying after a lost answer: the same answer, nothing new.
          if (run % 5 === 0) await check(request, ' (resent)');
        },
      ),
      { numRuns: PUSH_RUNS, seed: SEED + 2, endOnFailure: true },
    );
    expect(hashwatt.running).toBe(true);
  });

  it('stays within its memory bound under push bodies that are heavy only in aggregate', async () => {
    const hashwatt = service!;
    const { token: heavyToken } = await createSite(hashwatt.url, 'fuzz-push-memory', 'mixed', 1_000);
    const statuses = new Map<string, number>();
    // Each decodes to 31 MiB, inside the 32 MiB per-request limit: only their sum is hostile.
    const decoded = 31 * 1024 * 1024;
    const otlpJson = gzipSync(
      Buffer.concat([
        Buffer.from('{"resourceMetrics":['),
        Buffer.alloc(decoded - 22, 0x20),
        Buffer.from(']}'),
      ]),
      { level: 9 },
    );
    const lines = gzipSync(Buffer.alloc(decoded, 0x0a), { level: 9 });
    const zeros = compressSync(Buffer.alloc(decoded, 0));
    const heavy: {
      name: string;
      path: string;
      auth: string;
      body: Buffer;
      headers: Record<string, string>;
    }[] = [
      {
        name: 'otlp json 31 MiB',
        path: '/v1/metrics',
        auth: 'Bearer',
        body: otlpJson,
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      },
      {
        name: 'line protocol 31 MiB',
        path: '/api/v2/write?precision=ms',
        auth: 'Token',
        body: lines,
        headers: { 'content-encoding': 'gzip' },
      },
      {
        name: 'remote_write 31 MiB',
        path: '/api/v1/write',
        auth: 'Bearer',
        body: zeros,
        headers: { 'content-type': 'application/x-protobuf', 'content-encoding': 'snappy' },
      },
    ];
    const peaks = [peakRssMb(hashwatt.pid!) ?? 0];
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(
        Array.from({ length: 18 }, async (_, i) => {
          const h = heavy[i % heavy.length]!;
          const answer = await rawRequest(`${hashwatt.url}${h.path}`, {
            method: 'POST',
            headers: { ...h.headers, authorization: `${h.auth} ${heavyToken}` },
            body: h.body,
          });
          const key = `${h.name} ${'status' in answer ? answer.status : answer.error}`;
          statuses.set(key, (statuses.get(key) ?? 0) + 1);
          return answer;
        }),
      );
      // Never a 5xx other than a 503 with its retry hint; a refusal may cut the upload short.
      expect(
        answers.filter((a) => 'status' in a && a.status >= 500 && a.status !== 503),
        JSON.stringify([...statuses]),
      ).toEqual([]);
      peaks.push(peakRssMb(hashwatt.pid!) ?? 0);
    }
    console.log(
      `reliability hostile-input (push memory): ${JSON.stringify(Object.fromEntries([...statuses].sort()))}, ` +
        `RSS now ${rssMb(hashwatt.pid!)?.toFixed(0)} MB, peak before and after each round ${peaks.map((p) => p.toFixed(0)).join(' → ')} MB`,
    );
    expect(hashwatt.running).toBe(true);
  });

  it('stays within its memory bound under load that is heavy only in aggregate', async () => {
    const hashwatt = service!;
    const { token: heavyToken } = await createSite(hashwatt.url, 'fuzz-memory', 'mining', 1_000);
    const statuses = new Map<string, number>();
    const note = (prefix: string, a: RawAnswer) => {
      const key = `${prefix} ${'status' in a ? a.status : a.error}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
    };
    // Each inflates to 31 MiB, inside the 32 MiB per-request limit; only their sum is hostile.
    const inflating = inflatingBody(31 * 1024 * 1024);
    const peaks = [peakRssMb(hashwatt.pid!) ?? 0];
    for (let round = 0; round < 3; round++) {
      const [bodies, admin, blast] = await Promise.all([
        Promise.all(
          Array.from({ length: 16 }, () =>
            rawRequest(`${hashwatt.url}/api/v1/ingest`, {
              method: 'POST',
              headers: {
                authorization: `Bearer ${heavyToken}`,
                'content-type': 'application/json',
                'content-encoding': 'gzip',
              },
              body: inflating,
            }),
          ),
        ),
        rawRequest(`${hashwatt.url}/api/v1/sites`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
          bytes: 120 * 1024 * 1024,
        }),
        blastStream({
          url: hashwatt.url,
          token: heavyToken,
          connections: 20,
          frames: 200,
          readingsPerFrame: 50,
          tsBase: T0 + DAY_MS / 2 + round * 300_000,
          devicePrefix: 'heavy',
        }),
      ]);
      for (const a of bodies) note('inflating body', a);
      note('admin 120 MiB', admin);
      statuses.set('stream acked', (statuses.get('stream acked') ?? 0) + blast.acked);
      statuses.set('stream refused', (statuses.get('stream refused') ?? 0) + blast.refused);
      for (const [k, v] of blast.other) statuses.set(`stream ${k}`, (statuses.get(`stream ${k}`) ?? 0) + v);
      // Never a 5xx other than a 503 with its retry hint; a refusal may cut the upload short.
      expect(bodies.every((a) => !('status' in a) || a.status < 500 || a.status === 503)).toBe(true);
      expect(!('status' in admin) || admin.status === 413, JSON.stringify(admin)).toBe(true);
      expect(blast.acked).toBeGreaterThan(0);
      expect(blast.other.size, JSON.stringify([...blast.other])).toBe(0);
      peaks.push(peakRssMb(hashwatt.pid!) ?? 0);
    }
    console.log(
      `reliability hostile-input (memory): ${JSON.stringify(Object.fromEntries([...statuses].sort()))}, ` +
        `RSS now ${rssMb(hashwatt.pid!)?.toFixed(0)} MB, peak before and after each round ${peaks.map((p) => p.toFixed(0)).join(' → ')} MB`,
    );
    expect(hashwatt.running).toBe(true);
  });

  it('is still alive, and stores exactly the readings it accepted, each as it was sent', async () => {
    const hashwatt = service!;
    expect(hashwatt.running).toBe(true);
    expect((await fetch(`${hashwatt.url}/healthz`)).status).toBe(200);

    const client = new pg.Client({ connectionString: db!.url! });
    await client.connect();
    const { rows } = await client.query<Record<string, unknown> & { device: string; ts_ms: string }>(
      `SELECT d.external_id AS device, (extract(epoch FROM r.ts) * 1000)::bigint::text AS ts_ms, r.power_w,
         r.hashrate_ths, r.expected_hashrate_ths, r.temp_c, r.fan_rpm, r.gpu_util_pct, r.gpu_mem_used_bytes,
         r.available_power_w, r.status::text AS status
       FROM readings r JOIN devices d ON d.id = r.device_id JOIN sites s ON s.id = r.site_id WHERE s.name = 'fuzz'`,
    );
    await client.end();

    const storedKeys = new Set<string>();
    const problems: string[] = [];
    const window = { nowMs: Date.now(), oldestMs: Date.now() - 30 * DAY_MS };
    const float8 = [
      'power_w',
      'hashrate_ths',
      'expected_hashrate_ths',
      'gpu_mem_used_bytes',
      'available_power_w',
    ];
    const real = ['temp_c', 'fan_rpm', 'gpu_util_pct'];
    for (const row of rows) {
      const tsMs = Number(row.ts_ms);
      const key = readingKey(row.device, tsMs);
      storedKeys.add(key);
      const sent = model.stored.get(key);
      if (!sent) {
        problems.push(`stored but never accepted: ${JSON.stringify(key)}`);
        continue;
      }
      // The stored row, read back as a reading, satisfies the contract...
      const back: Record<string, unknown> = { device: row.device, ts: tsMs };
      for (const f of [...float8, ...real, 'status']) if (row[f] !== null) back[f] = row[f];
      if (!ReadingSchema.safeParse(back).success || !validateReading(back, 0, window).ok)
        problems.push(`stored reading breaks the contract: ${JSON.stringify(back)}`);
      // ...and holds what was sent: doubles exactly, reals to float4 precision.
      for (const f of float8) {
        const want = sent.values[f] ?? null;
        if (row[f] !== want && !(row[f] === 0 && want === 0))
          problems.push(`${key} ${f}: sent ${want}, stored ${row[f]}`);
      }
      for (const f of real) {
        const sentValue = sent.values[f];
        // The contract stores magnitudes under float4's smallest normal as 0 (a real column refuses them).
        const want =
          typeof sentValue === 'number' && Math.abs(sentValue) < 1.1754944e-38
            ? 0
            : (sentValue as number | undefined);
        const got = row[f];
        const same =
          want === undefined
            ? got === null
            : typeof got === 'number' && Math.abs(got - want) <= Math.abs(Math.fround(want)) * 2 ** -23;
        if (!same) problems.push(`${key} ${f}: sent ${want}, stored ${got}`);
      }
      if ((sent.values.status ?? null) !== row.status)
        problems.push(`${key} status: sent ${sent.values.status}, stored ${row.status}`);
    }
    for (const key of model.stored.keys())
      if (!storedKeys.has(key)) problems.push(`accepted but not stored: ${JSON.stringify(key)}`);

    console.log(
      `reliability hostile-input: generated ${counts.requests} bodies + ${counts.frames} frames, acknowledged ${model.stored.size} readings (${model.fillIns} filled in), ` +
        `stored ${rows.length}, problems ${problems.length} | ${JSON.stringify(Object.fromEntries([...counts.byStatus].sort()))}`,
    );
    expectNoCrash(hashwatt);
    expect(hashwatt.errors.slice(0, 3), 'errors logged by the service').toEqual([]);
    expect(problems.slice(0, 20)).toEqual([]);
    expect(rows.length).toBe(model.stored.size);
  });

  it('stores every sample a push protocol acknowledged, each as it was sent, and nothing else', async () => {
    const client = new pg.Client({ connectionString: db!.url! });
    await client.connect();
    const rowsOf = async (table: 'readings' | 'readings_extra') =>
      (
        await client.query<Record<string, unknown>>(
          `SELECT d.external_id AS device, (extract(epoch FROM r.ts) * 1000000)::float8 AS ts_us, r.*
           FROM ${table} r JOIN devices d ON d.id = r.device_id JOIN sites s ON s.id = r.site_id
           WHERE s.name = 'fuzz-push'`,
        )
      ).rows;
    const stored = [
      ...samplesOfRows(await rowsOf('readings'), CORE_SAMPLE_COLUMNS),
      ...samplesOfRows(await rowsOf('readings_extra'), EXTRA_SAMPLE_COLUMNS),
    ];
    await client.end();
    const problems = ledger.compare(stored);
    console.log(
      `reliability hostile-input (push): ${counts.pushes} requests, acknowledged ${ledger.samples.size} samples ` +
        `(+${ledger.duplicates} sent again), stored ${stored.length}, problems ${problems.length}`,
    );
    expect(service!.running).toBe(true);
    expect(problems.slice(0, 20)).toEqual([]);
    expect(stored.length).toBe(ledger.samples.size);
    expect(ledger.samples.size).toBeGreaterThan(0);
  });

  it('kept its peak RSS under the bound through the whole run', () => {
    const hashwatt = service!;
    const peak = peakRssMb(hashwatt.pid!);
    console.log(
      `reliability hostile-input: RSS at the end ${rssMb(hashwatt.pid!)?.toFixed(0)} MB, peak ${peak?.toFixed(0)} MB (bound ${MAX_PEAK_RSS_MB} MB)`,
    );
    expect(peak).toBeDefined();
    expect(peak!).toBeLessThan(MAX_PEAK_RSS_MB);
  });
});
