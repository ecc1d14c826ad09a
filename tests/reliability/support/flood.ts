import http from 'node:http';
import WebSocket from 'ws';
import { readingKey } from '../../../simulators/index.ts';
import { sleep } from './process.ts';

/** What a flooder sent and what came back. */
export interface FloodStats {
  /** Distinct readings put on the wire. */
  generated: number;
  /** Readings the service acknowledged (stored or already stored). */
  acknowledged: number;
  /** Requests or frames refused for overload (429 / retry_after_ms), and how many carried the hint. */
  refused: number;
  refusedWithHint: number;
  /** Other answers by status (HTTP) or error code (WebSocket); network errors by code. */
  other: Map<string, number>;
  /** Keys of acknowledged readings. */
  readonly acked: Set<string>;
  /** Keys sent whose fate is unknown (no answer): they may or may not be stored. */
  readonly inDoubt: Set<string>;
}

function newStats(): FloodStats {
  return {
    generated: 0,
    acknowledged: 0,
    refused: 0,
    refusedWithHint: 0,
    other: new Map(),
    acked: new Set(),
    inDoubt: new Set(),
  };
}

const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

/** Builds batches of unique readings fast: ~150 bytes each, devices `${prefix}-${n}`, distinct ms per device. */
export class FloodBatches {
  readonly #prefix: string;
  readonly #devices: number;
  readonly #size: number;
  readonly #t0: number;
  #next = 0;

  constructor(prefix: string, devices: number, size: number, t0: number) {
    this.#prefix = prefix;
    this.#devices = devices;
    this.#size = size;
    this.#t0 = t0;
  }

  /** The next batch: its readings' JSON texts and keys. */
  next(): { json: string[]; keys: string[] } {
    const json: string[] = [];
    const keys: string[] = [];
    for (let i = 0; i < this.#size; i++) {
      const n = this.#next++;
      const device = `${this.#prefix}-${n % this.#devices}`;
      const ts = this.#t0 + Math.floor(n / this.#devices);
      json.push(
        `{"device":"${device}","kind":"asic","ts":${ts},"power_w":${3400 + (n % 200)},"hashrate_ths":200.5,"expected_hashrate_ths":200,"temp_c":65.5,"fan_rpm":4300,"status":"ok"}`,
      );
      keys.push(readingKey(device, ts));
    }
    return { json, keys };
  }
}

interface Answer {
  status: number;
  retryAfter: string | undefined;
  body: string;
}

function post(agent: http.Agent, url: string, token: string, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/api/v1/ingest`, {
      method: 'POST',
      agent,
      timeout: 60_000,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body: text }),
      );
    });
    req.end(body);
  });
}

/**
 * An abusive HTTP agent: `concurrency` requests of `batch` readings always in flight, and a refused
 * request is sent again at once, whatever Retry-After says. Runs until `until` resolves.
 */
export async function floodHttp(options: {
  url: string;
  token: string;
  concurrency: number;
  batches: FloodBatches;
  until: Promise<void>;
}): Promise<FloodStats> {
  const stats = newStats();
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
  let stop = false;
  void options.until.then(() => {
    stop = true;
  });
  const loop = async () => {
    let batch = options.batches.next();
    stats.generated += batch.keys.length;
    let body = `{"readings":[${batch.json.join(',')}]}`;
    while (!stop) {
      let answer: Answer;
      try {
        answer = await post(agent, options.url, options.token, body);
      } catch (error) {
        bump(stats.other, (error as NodeJS.ErrnoException).code ?? (error as Error).message);
        for (const k of batch.keys) stats.inDoubt.add(k);
        await sleep(50);
        batch = options.batches.next();
        stats.generated += batch.keys.length;
        body = `{"readings":[${batch.json.join(',')}]}`;
        continue;
      }
      if (answer.status === 429) {
        stats.refused++;
        const hint = (JSON.parse(answer.body) as { error?: { retry_after_ms?: number } }).error
          ?.retry_after_ms;
        if (Number(answer.retryAfter) >= 1 && typeof hint === 'number' && hint > 0) stats.refusedWithHint++;
        continue; // the same body again, at once: this agent ignores the hint
      }
      if (answer.status === 200) {
        const result = JSON.parse(answer.body) as {
          accepted: number;
          duplicates: number;
          rejected: { index: number }[];
        };
        const rejected = new Set(result.rejected.map((r) => r.index));
        batch.keys.forEach((k, i) => {
          if (!rejected.has(i)) stats.acked.add(k);
        });
        stats.acknowledged += result.accepted + result.duplicates;
      } else {
        bump(stats.other, `HTTP ${answer.status}`);
      }
      batch = options.batches.next();
      stats.generated += batch.keys.length;
      body = `{"readings":[${batch.json.join(',')}]}`;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
  agent.destroy();
  return stats;
}

/**
 * A WebSocket agent that streams frames as fast as TCP lets it and does not read its socket while
 * it floods (a slow consumer of its own acks); afterwards it reads every answer.
 */
export async function floodWebSocket(options: {
  url: string;
  token: string;
  batches: FloodBatches;
  until: Promise<void>;
  /** Bytes the client may have queued locally before it waits. */
  maxBufferedBytes: number;
}): Promise<FloodStats & { frames: number; answered: number }> {
  const stats = newStats();
  const ws = new WebSocket(`${options.url.replace(/^http/, 'ws')}/api/v1/stream`, {
    headers: { authorization: `Bearer ${options.token}` },
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const sent = new Map<number, string[]>();
  let answered = 0;
  ws.on('message', (data: WebSocket.RawData) => {
    const reply = JSON.parse(String(data)) as {
      ack?: number;
      seq?: number | null;
      accepted?: number;
      duplicates?: number;
      rejected?: { index: number }[];
      retry_after_ms?: number;
      error?: { code: string };
    };
    const seq = reply.ack ?? reply.seq;
    const keys = typeof seq === 'number' ? sent.get(seq) : undefined;
    if (!keys) return;
    sent.delete(seq!);
    answered++;
    if (reply.ack !== undefined) {
      const rejected = new Set((reply.rejected ?? []).map((r) => r.index));
      keys.forEach((k, i) => {
        if (!rejected.has(i)) stats.acked.add(k);
      });
      stats.acknowledged += (reply.accepted ?? 0) + (reply.duplicates ?? 0);
    } else if (reply.retry_after_ms !== undefined) {
      stats.refused++;
      if (reply.retry_after_ms > 0) stats.refusedWithHint++;
    } else {
      bump(stats.other, reply.error?.code ?? 'unknown');
    }
  });
  let closed = false;
  ws.on('close', () => {
    closed = true;
  });
  ws.on('error', (error) => bump(stats.other, error.message));
  // Not reading: the acks pile up in the service's socket and ours.
  ws.pause();
  let stop = false;
  void options.until.then(() => {
    stop = true;
  });
  let seq = 0;
  while (!stop && !closed) {
    if (ws.bufferedAmount > options.maxBufferedBytes) {
      await sleep(20);
      continue;
    }
    const batch = options.batches.next();
    stats.generated += batch.keys.length;
    sent.set(seq, batch.keys);
    ws.send(`{"seq":${seq},"readings":[${batch.json.join(',')}]}`);
    seq++;
    // Let the socket write (and the test's timers run) between frames.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  ws.resume();
  const deadline = Date.now() + 60_000;
  while (sent.size > 0 && !closed && Date.now() < deadline) await sleep(50);
  for (const keys of sent.values()) for (const k of keys) stats.inDoubt.add(k);
  ws.close();
  return { ...stats, frames: seq, answered };
}
