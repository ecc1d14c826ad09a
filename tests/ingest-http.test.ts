import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../src/alerting/testing.ts';
import type { RunningService } from '../src/service.ts';
import { countReadings } from '../src/storage/readings.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';
import {
  adminRequest,
  asicReading,
  type CreatedSite,
  createSite,
  postReadings,
  startTestService,
} from './support/service.ts';

describe.each(BACKENDS)('HTTP ingest on %s', (backend) => {
  let db: TestDatabase;
  let service: RunningService;
  let base: string;
  let alpha: CreatedSite;
  let beta: CreatedSite;
  const t0 = Date.now() - 60_000;

  beforeAll(async () => {
    db = await createTestDatabase(backend);
    service = await startTestService(db, { env: { HASHWATT_MAX_DEVICES_PER_SITE: '5' } });
    base = service.url;
    alpha = await createSite(base, 'alpha');
    beta = await createSite(base, 'beta', 'ai');
  });

  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it('stores the valid readings of a partial batch and names each rejected one', async () => {
    const response = await postReadings(base, alpha.token, [
      asicReading('r1', t0),
      asicReading('r2', t0, { power_w: -1 }),
      asicReading('r3', t0, { gpu_util_pct: 250 }),
      asicReading('r4', t0, { firmware: 'x' }),
      asicReading('r5', t0),
    ]);
    expect(response.status).toBe(200);
    expect(response.body.accepted).toBe(2);
    expect(response.body.duplicates).toBe(0);
    expect(response.body.rejected).toEqual([
      expect.objectContaining({ index: 1, field: 'power_w', code: 'sentinel_value' }),
      expect.objectContaining({ index: 2, field: 'gpu_util_pct', code: 'out_of_range' }),
      expect.objectContaining({ index: 3, field: 'firmware', code: 'unknown_field' }),
    ]);
    expect(await countReadings(service.storage.db, alpha.site.id)).toBe(2);
  });

  it('stores a retried batch once and counts the repeats as duplicates', async () => {
    const batch = [asicReading('r1', t0 + 1000), asicReading('r5', t0 + 1000)];
    const first = await postReadings(base, alpha.token, batch, { gzip: true });
    const retry = await postReadings(base, alpha.token, batch, { gzip: true });
    expect(first.body).toMatchObject({ accepted: 2, duplicates: 0 });
    expect(retry.body).toMatchObject({ accepted: 0, duplicates: 2 });
    expect(await countReadings(service.storage.db, alpha.site.id)).toBe(4);
  });

  it('files readings under the token’s site: two sites may share a device name', async () => {
    const response = await postReadings(base, beta.token, [
      { device: 'r1', kind: 'gpu', ts: t0, power_w: 650, gpu_util_pct: 91 },
    ]);
    expect(response.body.accepted).toBe(1);
    const rows = await service.storage.db
      .selectFrom('devices')
      .select(['site_id', 'kind'])
      .where('external_id', '=', 'r1')
      .orderBy('site_id')
      .execute();
    expect(rows).toEqual([
      { site_id: alpha.site.id, kind: 'asic' },
      { site_id: beta.site.id, kind: 'gpu' },
    ]);
  });

  it('refuses a site token on the admin API, so one site cannot read another’s', async () => {
    const response = await fetch(`${base}/api/v1/sites/${alpha.site.id}`, {
      headers: { authorization: `Bearer ${beta.token}` },
    });
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
  });

  it('answers 401 without a token or with an unknown one, storing nothing', async () => {
    const before = await countReadings(service.storage.db);
    for (const token of [undefined, 'hw_not-a-real-token']) {
      const response = await postReadings(base, token, [asicReading('r1', t0 + 5000)]);
      expect(response.status).toBe(401);
      expect(response.body.error?.code).toBe('unauthorized');
    }
    expect(await countReadings(service.storage.db)).toBe(before);
  });

  it('requires the kind of a device seen for the first time', async () => {
    const response = await postReadings(base, alpha.token, [{ device: 'fresh', ts: t0, power_w: 1 }]);
    expect(response.body.rejected).toEqual([
      expect.objectContaining({ index: 0, field: 'kind', code: 'kind_required' }),
    ]);
  });

  it('rejects readings of devices beyond the site’s device cap', async () => {
    // alpha has r1, r5; the cap is 5.
    const readings = ['c1', 'c2', 'c3', 'c4'].map((d) => asicReading(d, t0));
    const response = await postReadings(base, alpha.token, readings);
    expect(response.body.accepted).toBe(3);
    expect(response.body.rejected).toEqual([
      expect.objectContaining({ index: 3, field: 'device', code: 'device_limit' }),
    ]);
  });

  it.each([
    ['malformed JSON', '{"readings": [', {}, 400, 'invalid_json'],
    ['a non-object body', '[1,2]', {}, 400, 'invalid_body'],
    ['readings not an array', '{"readings": {}}', {}, 400, 'invalid_body'],
    ['an unknown top-level field', '{"readings": [], "site": 3}', {}, 400, 'invalid_body'],
    [
      'a wrong content type',
      '{"readings": []}',
      { 'content-type': 'text/plain' },
      415,
      'unsupported_media_type',
    ],
    ['an unknown encoding', '{"readings": []}', { 'content-encoding': 'br' }, 415, 'unsupported_media_type'],
    [
      'a body that claims gzip but is not',
      '{"readings": []}',
      { 'content-encoding': 'gzip' },
      400,
      'invalid_encoding',
    ],
  ])('answers %s with %i %s', async (_what, body, headers, status, code) => {
    const response = await postReadings(base, alpha.token, body, { headers });
    expect(response.status).toBe(status);
    expect(response.body.error?.code).toBe(code);
  });

  it('answers 413 to more than 10 000 readings', async () => {
    const readings = Array.from({ length: 10_001 }, (_, i) => asicReading('r1', t0 + i));
    const response = await postReadings(base, alpha.token, readings, { gzip: true });
    expect(response.status).toBe(413);
    expect(response.body.error).toMatchObject({ code: 'too_many_readings', field: 'readings' });
  });

  it('answers 413 to a body over 4 MiB on the wire', async () => {
    const response = await postReadings(
      base,
      alpha.token,
      `{"readings": [], "pad": "${'x'.repeat(4 * 1024 * 1024)}"}`,
    );
    expect(response.status).toBe(413);
    expect(response.body.error?.code).toBe('payload_too_large');
  });

  it('cuts a gzip bomb off at 32 MiB while inflating', async () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20)); // ~64 KiB on the wire
    expect(bomb.length).toBeLessThan(4 * 1024 * 1024);
    const response = await postReadings(base, alpha.token, bomb, { headers: { 'content-encoding': 'gzip' } });
    expect(response.status).toBe(413);
    expect(response.body.error?.message).toMatch(/decompressed/);
  });

  it('refuses a body that is not valid UTF-8 instead of storing U+FFFD in a name', async () => {
    const before = await countReadings(service.storage.db);
    const body = Buffer.concat([
      Buffer.from('{"readings":[{"device":"rig-'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from(`","kind":"asic","ts":${t0},"power_w":1}]}`),
    ]);
    for (const gzip of [false, true]) {
      const response = await postReadings(base, alpha.token, body, { gzip });
      expect(response.status).toBe(400);
      expect(response.body.error).toMatchObject({ code: 'invalid_encoding' });
    }
    expect(await countReadings(service.storage.db)).toBe(before);
  });

  it('refuses impossible instants and values out of range instead of storing another value', async () => {
    const response = await postReadings(base, alpha.token, [
      asicReading('i1', t0, { ts: '2026-11-31T00:00:01Z' }),
      asicReading('i1', t0, { ts: '2026-11-24T24:00:00Z' }),
      asicReading('i1', t0, { hashrate_ths: 1e30 }),
      asicReading('i1', t0, { temp_c: 1e39 }),
    ]);
    expect(response.status).toBe(200);
    expect(response.body.rejected?.map((r) => [r.field, r.code])).toEqual([
      ['ts', 'invalid_timestamp'],
      ['ts', 'invalid_timestamp'],
      ['hashrate_ths', 'out_of_range'],
      ['temp_c', 'out_of_range'],
    ]);
  });

  it('counts an upload the client abandons as 499, not as the database being unavailable', async () => {
    const counted = async (status: string) => {
      const text = await (await fetch(`${base}/metrics`)).text();
      const line = text
        .split('\n')
        .find((l) => l.startsWith(`hashwatt_ingest_requests_total{transport="http",status="${status}"}`));
      return line === undefined ? 0 : Number(line.split(' ').at(-1));
    };
    const before = { closed: await counted('499'), unavailable: await counted('503') };
    // Half a body, then one client resets the connection and the other half-closes it.
    for (const hangUp of ['destroy', 'end'] as const) {
      await new Promise<void>((resolve, reject) => {
        const socket = connect(Number(new URL(base).port), '127.0.0.1', () => {
          socket.write(
            'POST /api/v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
              `Authorization: Bearer ${alpha.token}\r\nContent-Type: application/json\r\n` +
              'Content-Length: 100000\r\n\r\n{"readings":[',
            () => {
              if (hangUp === 'destroy') socket.resetAndDestroy();
              else socket.end();
              resolve();
            },
          );
        });
        socket.on('error', () => {});
        socket.once('error', reject);
      });
    }
    await waitFor(
      'both abandoned uploads to be counted',
      async () => (await counted('499')) >= before.closed + 2,
    );
    expect(await counted('503')).toBe(before.unavailable);
  });

  it('decodes only so many bodies at once: past the process budget a bomb gets 429, not memory', async () => {
    // Each inflates to just under the per-request limit; 16 at once would hold ~500 MB decoded.
    const bomb = gzipSync(Buffer.from(`{"readings":[]${' '.repeat(31 * 1024 * 1024)}}`));
    const answers = await Promise.all(
      Array.from({ length: 16 }, () =>
        postReadings(base, alpha.token, bomb, { headers: { 'content-encoding': 'gzip' } }),
      ),
    );
    const statuses = answers.map((a) => a.status);
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    expect(statuses).toContain(429);
    const refused = answers.find((a) => a.status === 429)!;
    expect(refused.body.error).toMatchObject({
      code: 'overloaded',
      message: expect.stringMatching(/decoded/),
    });
    expect(refused.headers.get('retry-after')).not.toBeNull();
  });

  it('stops the old token at once when the token is rotated', async () => {
    const site = await createSite(base, 'gamma');
    const rotated = await adminRequest(base, 'POST', `/api/v1/sites/${site.site.id}/token`);
    const { token } = (await rotated.json()) as { token: string };
    expect((await postReadings(base, site.token, [asicReading('g1', t0)])).status).toBe(401);
    expect((await postReadings(base, token, [asicReading('g1', t0)])).status).toBe(200);
  });
});
