import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { HashwattError } from '../errors.ts';
import { type BodyLimits, DecodeBudget, decodeUtf8, readJsonBody } from './body.ts';

const LIMITS: BodyLimits = { maxWireBytes: 64 * 1024, maxDecodedBytes: 1024 * 1024 };

function jsonRequest(
  body: string | Uint8Array | ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
): Request {
  return new Request('http://hashwatt.test/api/v1/ingest', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
    duplex: 'half',
  } as RequestInit);
}

const gzipRequest = (bytes: Uint8Array) => jsonRequest(gzipSync(bytes), { 'content-encoding': 'gzip' });

/** A JSON body of `size` bytes that gzip shrinks to almost nothing. */
const padded = (size: number) => Buffer.from(`{"readings":[]${' '.repeat(size - 15)}}`);

async function refusal(promise: Promise<unknown>): Promise<HashwattError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof HashwattError)) throw new Error(`expected a HashwattError, got ${String(error)}`);
  return error;
}

describe('DecodeBudget', () => {
  it('grants room up to its capacity and takes nothing when a request would pass it', () => {
    const budget = new DecodeBudget(100);
    expect(budget.tryAcquire(60)).toBe(true);
    expect(budget.tryAcquire(41)).toBe(false);
    expect(budget.usedBytes).toBe(60);
    expect(budget.tryAcquire(40)).toBe(true);
    budget.release(60);
    expect(budget.usedBytes).toBe(40);
    expect(budget.tryAcquire(60)).toBe(true);
  });

  it("holds a site with other bodies in flight to its share, so the next site's body still fits", () => {
    const budget = new DecodeBudget(100, { floorBytes: 0, headroomRatio: 0.25 });
    // Site 1's single body may use whatever is free, past the headroom line (75) too.
    expect(budget.tryAcquire(80, 1)).toBe(true);
    // Its second body at once is past its share of a budget with only the headroom left.
    expect(budget.tryAcquire(5, 1)).toBe(false);
    // Site 2's first body is let in; its own later bytes too, as its only body.
    expect(budget.tryAcquire(10, 2)).toBe(true);
    expect(budget.tryAcquire(5, 2, 10)).toBe(true);
    expect(budget.heldBytes(1)).toBe(80);
    expect(budget.heldBytes(2)).toBe(15);
    budget.release(80, 1);
    expect(budget.heldBytes(1)).toBe(0);
    // Within its share (37 of 75 with two sites holding), site 1 is let in again.
    expect(budget.tryAcquire(30, 1)).toBe(true);
    expect(budget.tryAcquire(7, 1, 0)).toBe(true);
    expect(budget.usedBytes).toBe(52);
  });

  it('lets a site past its share take spare room beyond the headroom', () => {
    const budget = new DecodeBudget(100, { floorBytes: 0, headroomRatio: 0.25 });
    expect(budget.tryAcquire(40, 1)).toBe(true);
    expect(budget.tryAcquire(5, 2)).toBe(true);
    // Share 37, holds 40, yet 45 + 30 <= 75.
    expect(budget.tryAcquire(30, 1)).toBe(true);
    expect(budget.tryAcquire(1, 1)).toBe(false);
  });
});

describe('readJsonBody', () => {
  it('reads plain and gzip bodies and gives all its room back', async () => {
    const budget = new DecodeBudget(LIMITS.maxDecodedBytes);
    const body = JSON.stringify({ readings: [{ device: 'rig-é', ts: 1 }] });
    const plain = await readJsonBody(jsonRequest(body), LIMITS, { budget });
    const gzip = await readJsonBody(gzipRequest(Buffer.from(body)), LIMITS, { budget });
    expect(plain.value).toEqual(JSON.parse(body));
    expect(gzip.value).toEqual(JSON.parse(body));
    expect(gzip.decodedBytes).toBe(Buffer.byteLength(body));
    expect(gzip.wireBytes).toBeLessThan(gzip.decodedBytes + 30);
    expect(budget.usedBytes).toBe(0);
  });

  it.each([
    ['a truncated sequence', Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x22, 0x7d])],
    [
      'a lone surrogate encoded as UTF-8',
      Buffer.concat([Buffer.from('{"device":"rig-'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]),
    ],
    ['an overlong encoding', Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0x22, 0x7d])],
  ])('refuses invalid UTF-8 (%s) instead of storing U+FFFD', async (_, bytes) => {
    const error = await refusal(
      readJsonBody(jsonRequest(bytes), LIMITS, { budget: new DecodeBudget(LIMITS.maxDecodedBytes) }),
    );
    expect(error).toMatchObject({ code: 'invalid_encoding' });
    const gzipped = await refusal(
      readJsonBody(gzipRequest(bytes), LIMITS, { budget: new DecodeBudget(LIMITS.maxDecodedBytes) }),
    );
    expect(gzipped).toMatchObject({ code: 'invalid_encoding' });
  });

  it('refuses a body that inflates past the per-request limit with 413, having held no more than the limit', async () => {
    const budget = new DecodeBudget(8 * LIMITS.maxDecodedBytes);
    const error = await refusal(
      readJsonBody(gzipRequest(padded(4 * LIMITS.maxDecodedBytes)), LIMITS, { budget }),
    );
    expect(error).toMatchObject({ code: 'payload_too_large' });
    expect(budget.usedBytes).toBe(0);
  });

  it('refuses with 429 and a retry hint once the bodies in flight fill the budget', async () => {
    // Room for one body at the decoded limit: a second one at once must wait its turn.
    const budget = new DecodeBudget(LIMITS.maxDecodedBytes + 1024);
    expect(budget.tryAcquire(LIMITS.maxDecodedBytes - 1024)).toBe(true);
    const error = await refusal(
      readJsonBody(gzipRequest(padded(LIMITS.maxDecodedBytes / 2)), LIMITS, { budget }),
    );
    expect(error).toMatchObject({ code: 'overloaded' });
    expect(error.details.retryAfterMs).toBeGreaterThan(0);
    // What the refused request had taken is back; only the room held outside remains.
    expect(budget.usedBytes).toBe(LIMITS.maxDecodedBytes - 1024);
    budget.release(LIMITS.maxDecodedBytes - 1024);
    await expect(
      readJsonBody(gzipRequest(padded(LIMITS.maxDecodedBytes / 2)), LIMITS, { budget }),
    ).resolves.toMatchObject({ value: { readings: [] } });
  });

  it('refuses the site holding past its share, not the next site, when the budget runs short', async () => {
    const limits: BodyLimits = { maxWireBytes: 1024 * 1024, maxDecodedBytes: 1024 * 1024 };
    const budget = new DecodeBudget(2 * 1024 * 1024, { floorBytes: 0 });
    // The flooding site already has one heavy body in flight...
    expect(budget.tryAcquire(1_400 * 1024, 1)).toBe(true);
    // ...and streams a second one that stays open until the well-behaved site's body is read.
    let open = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    let sent = 0;
    const flood = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent === 5) {
          await gate;
          return controller.close();
        }
        sent++;
        controller.enqueue(new Uint8Array(64 * 1024).fill(0x20));
      },
    });
    let settled = false;
    const flooding = refusal(readJsonBody(jsonRequest(flood), limits, { budget, holder: 1 })).finally(() => {
      settled = true;
    });
    while (sent < 5 && !settled) await new Promise((resolve) => setImmediate(resolve));
    const good = readJsonBody(jsonRequest(padded(512 * 1024)), limits, { budget, holder: 2 });
    await expect(good).resolves.toMatchObject({ value: { readings: [] } });
    open();
    expect(await flooding).toMatchObject({ code: 'overloaded' });
    budget.release(1_400 * 1024, 1);
    expect(budget.usedBytes).toBe(0);
    expect(budget.heldBytes(1) + budget.heldBytes(2)).toBe(0);
  });

  it('holds many concurrent bombs to the budget, never more', async () => {
    const budget = new DecodeBudget(2 * LIMITS.maxDecodedBytes);
    let peak = 0;
    const acquire = budget.tryAcquire.bind(budget);
    budget.tryAcquire = (bytes: number) => {
      const ok = acquire(bytes);
      peak = Math.max(peak, budget.usedBytes);
      return ok;
    };
    const bomb = padded(LIMITS.maxDecodedBytes - 1024);
    const results = await Promise.allSettled(
      Array.from({ length: 16 }, () => readJsonBody(gzipRequest(bomb), LIMITS, { budget })),
    );
    expect(peak).toBeLessThanOrEqual(budget.capacityBytes);
    for (const r of results) {
      if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'overloaded' });
    }
    expect(results.some((r) => r.status === 'fulfilled')).toBe(true);
    expect(budget.usedBytes).toBe(0);
  });

  it('reports a body stream that fails mid-upload as the client closing it (499), not a server fault', async () => {
    const budget = new DecodeBudget(LIMITS.maxDecodedBytes);
    let sent = false;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (!sent) {
          sent = true;
          controller.enqueue(Buffer.from('{"readings":['));
          return;
        }
        controller.error(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
      },
    });
    const error = await refusal(readJsonBody(jsonRequest(stream), LIMITS, { budget }));
    expect(error).toMatchObject({ code: 'client_closed_request' });
    expect(budget.usedBytes).toBe(0);
  });

  it('refuses a body that is not gzip although it says so', async () => {
    const error = await refusal(
      readJsonBody(jsonRequest('{"readings":[]}', { 'content-encoding': 'gzip' }), LIMITS, {
        budget: new DecodeBudget(LIMITS.maxDecodedBytes),
      }),
    );
    expect(error).toMatchObject({ code: 'invalid_encoding', details: { field: 'content-encoding' } });
  });
});

describe('decodeUtf8', () => {
  it('keeps valid text exactly, byte-order mark included', () => {
    expect(decodeUtf8(Buffer.from('\ufeff{"a":"ü😀"}'))).toBe('\ufeff{"a":"ü😀"}');
  });
});
