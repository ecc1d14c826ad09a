import { gzipSync } from 'node:zlib';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRemoteWriteBody, type FixtureSeries } from '../src/protocols/testing/prometheus-proto.ts';
import type { RunningService } from '../src/service.ts';
import { readDeviceExtras, readDeviceReadings } from '../src/storage/readings.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';
import { adminRequest, createSite, startTestService } from './support/service.ts';

/** A whole second, well inside the accepted window. */
const T = Math.floor(Date.now() / 1000) * 1000 - 60_000;

const gpu = (name: string, value: number, labels: Record<string, string> = {}, ts = T): FixtureSeries => ({
  labels: { __name__: name, Hostname: 'node-a', gpu: '0', modelName: 'NVIDIA H100 80GB HBM3', ...labels },
  samples: [{ value, timestamp: ts }],
});

describe.each(BACKENDS)('push receivers on %s', (backend) => {
  let testDb: TestDatabase;
  let service: RunningService;
  let base: string;
  let token: string;
  let siteId: number;

  beforeAll(async () => {
    testDb = await createTestDatabase(backend);
    service = await startTestService(testDb);
    base = service.url;
    const created = await createSite(base, `receivers-${backend}`, 'ai');
    token = created.token;
    siteId = created.site.id;
  }, 60_000);

  afterAll(async () => {
    await service?.stop();
    await testDb?.dispose();
  });

  const remoteWrite = (series: FixtureSeries[], headers: Record<string, string> = {}) =>
    fetch(`${base}/api/v1/write`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/x-protobuf',
        'content-encoding': 'snappy',
        'x-prometheus-remote-write-version': '0.1.0',
        ...headers,
      },
      body: Buffer.from(encodeRemoteWriteBody(series)),
    });

  async function deviceId(name: string): Promise<number> {
    const row = await service.storage.db
      .selectFrom('devices')
      .select('id')
      .where('site_id', '=', siteId)
      .where('external_id', '=', name)
      .executeTakeFirstOrThrow();
    return row.id;
  }

  it('remote_write: one GPU instant split over two requests is stored whole, a resend once', async () => {
    const first = await remoteWrite([
      gpu('DCGM_FI_DEV_POWER_USAGE', 301.25),
      gpu('DCGM_FI_DEV_GPU_TEMP', 61),
    ]);
    expect(first.status).toBe(204);
    const second = [
      gpu('DCGM_FI_DEV_GPU_UTIL', 97),
      gpu('DCGM_FI_DEV_XID_ERRORS', 79),
      // A DCGM blank: filtered, not an error.
      gpu('DCGM_FI_DEV_MEMORY_TEMP', 0x7ffffff0 + 0),
      gpu('DCGM_FI_DEV_SOMETHING_NEW', 1),
    ];
    const response = await remoteWrite(second);
    expect(response.status).toBe(204);
    expect(response.headers.get('x-hashwatt-unmapped-series')).toBe('1');
    // The same request again (Prometheus retrying after a lost answer): absorbed.
    expect((await remoteWrite(second)).status).toBe(204);

    const id = await deviceId('node-a/gpu0');
    const rows = await readDeviceReadings(service.storage.db, siteId, id, T, T + 1);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ power_w: 301.25, temp_c: 61, gpu_util_pct: 97 });
    expect(await readDeviceExtras(service.storage.db, siteId, id, T, T + 1)).toEqual([
      { ts_us: T * 1000, extras: { gpu_xid_last: 79 } },
    ]);

    const unmapped = await adminRequest(base, 'GET', `/api/v1/sites/${siteId}/unmapped`);
    expect(unmapped.status).toBe(200);
    expect(await unmapped.json()).toMatchObject({
      site_id: siteId,
      total: 2,
      names: [{ protocol: 'remote_write', name: 'DCGM_FI_DEV_SOMETHING_NEW', requests: 2 }],
    });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(
      /hashwatt_ingest_unmapped_total\{site="receivers-[a-z]+",protocol="remote_write"\} 2/,
    );
    expect(metrics).toMatch(/hashwatt_samples_duplicate_total\{transport="remote_write"\} 2/);
  });

  it('remote_write: invalid data is 400 with the reason, the valid samples of the request stored', async () => {
    const response = await remoteWrite([
      gpu('DCGM_FI_DEV_POWER_USAGE', 250, { gpu: '1' }),
      gpu('DCGM_FI_DEV_GPU_UTIL', 250, { gpu: '1' }),
    ]);
    expect(response.status).toBe(400);
    expect(await response.text()).toMatch(/gpu_util_pct.*out_of_range/);
    const rows = await readDeviceReadings(
      service.storage.db,
      siteId,
      await deviceId('node-a/gpu1'),
      T,
      T + 1,
    );
    expect(rows.map((r) => [r.power_w, r.gpu_util_pct])).toEqual([[250, null]]);
  });

  it.each([
    ['bad snappy', { body: Buffer.from('not snappy at all') }, 400, /snappy/],
    ['no token', { headers: { authorization: '' } }, 401, /token/],
    ['JSON sent', { headers: { 'content-type': 'application/json' } }, 415, /x-protobuf/],
    [
      'remote_write 2.0',
      { headers: { 'content-type': 'application/x-protobuf;proto=io.prometheus.write.v2.Request' } },
      415,
      /1\.0/,
    ],
    ['gzip instead of snappy', { headers: { 'content-encoding': 'gzip' } }, 415, /snappy/],
  ])('remote_write: %s → %i in text', async (_name, change, status, reason) => {
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      'content-type': 'application/x-protobuf',
      'content-encoding': 'snappy',
      ...(change as { headers?: Record<string, string> }).headers,
    };
    const body =
      (change as { body?: Buffer }).body ??
      Buffer.from(encodeRemoteWriteBody([gpu('DCGM_FI_DEV_GPU_UTIL', 1)]));
    const response = await fetch(`${base}/api/v1/write`, { method: 'POST', headers, body });
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await response.text()).toMatch(reason);
  });

  const lineWrite = (
    body: string | Buffer,
    path = '/api/v2/write?org=o&bucket=b&precision=ms',
    headers: Record<string, string> = {},
  ) =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: { authorization: `Token ${token}`, 'content-type': 'text/plain; charset=utf-8', ...headers },
      body,
    });

  it('line protocol: 204 when all is written, 422 naming the first bad line with the good ones kept, 400 when none', async () => {
    const ts = T + 1000;
    const good = `nvidia_smi,host=node-b,index=0,name=H100 power_draw=350.5,utilization_gpu=88i,temperature_gpu=70i ${ts}`;
    expect((await lineWrite(good)).status).toBe(204);
    const partial = await lineWrite(
      [
        `nvidia_smi,host=node-b,index=1 power_draw=100 ${ts}`,
        'nvidia_smi,host=node-b,index=2 power_draw=',
        '',
      ].join('\n'),
    );
    expect(partial.status).toBe(422);
    expect(await partial.json()).toMatchObject({
      code: 'unprocessable entity',
      message: expect.stringMatching(/line 2/),
    });
    const none = await lineWrite('garbage without fields\n');
    expect(none.status).toBe(400);
    expect(await none.json()).toMatchObject({ code: 'invalid', message: expect.stringMatching(/line 1/) });

    const rows = await readDeviceReadings(
      service.storage.db,
      siteId,
      await deviceId('node-b/gpu0'),
      ts,
      ts + 1,
    );
    expect(rows[0]).toMatchObject({ power_w: 350.5, gpu_util_pct: 88, temp_c: 70 });
    const kept = await readDeviceReadings(
      service.storage.db,
      siteId,
      await deviceId('node-b/gpu1'),
      ts,
      ts + 1,
    );
    expect(kept.map((r) => r.power_w)).toEqual([100]);
  });

  it('line protocol: v1 /write with ?p= and gzip, at microsecond precision; errors in InfluxDB format', async () => {
    const us = (T + 2000) * 1000 + 7;
    const body = gzipSync(
      `hashwatt,device=meter-1,kind=meter power_w=1200000,available_power_w=1500000 ${us}`,
    );
    const ok = await fetch(`${base}/write?db=x&precision=u&u=agent&p=${token}`, {
      method: 'POST',
      headers: { 'content-encoding': 'gzip' },
      body,
    });
    expect(ok.status).toBe(204);
    const { rows } = await sql<{ us: number }>`
      SELECT (extract(epoch FROM r.ts) * 1000000)::float8 AS us FROM readings r
      JOIN devices d ON d.id = r.device_id WHERE d.external_id = 'meter-1'`.execute(service.storage.db);
    expect(rows.map((r) => r.us)).toEqual([us]);
    const unauthorized = await lineWrite('x f=1', '/api/v2/write', { authorization: 'Token wrong' });
    expect(unauthorized.status).toBe(401);
    expect(await unauthorized.json()).toEqual({ code: 'unauthorized', message: 'unknown token' });
    const badPrecision = await lineWrite('x f=1', '/api/v2/write?precision=m');
    expect(badPrecision.status).toBe(400);
    expect(await badPrecision.json()).toMatchObject({
      code: 'invalid',
      message: expect.stringMatching(/precision/),
    });
  });

  const otlpJson = (value: number, attributes: { key: string; value: { stringValue: string } }[] = []) => ({
    resourceMetrics: [
      {
        resource: { attributes: [{ key: 'host.name', value: { stringValue: 'node-c' } }] },
        scopeMetrics: [
          {
            metrics: [
              {
                name: 'hw.power',
                unit: 'W',
                gauge: {
                  dataPoints: [
                    {
                      timeUnixNano: String(BigInt(T + 3000) * 1_000_000n),
                      asDouble: value,
                      attributes: [
                        { key: 'hw.id', value: { stringValue: 'gpu0' } },
                        { key: 'hw.type', value: { stringValue: 'gpu' } },
                        ...attributes,
                      ],
                    },
                  ],
                },
              },
            ],
          },
        ],
      },
    ],
  });

  const otlpPost = (body: string | Buffer, type = 'application/json') =>
    fetch(`${base}/v1/metrics`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': type },
      body,
    });

  it('OTLP: 200 with an empty response when all is stored, partial success naming what was rejected', async () => {
    const ok = await otlpPost(JSON.stringify(otlpJson(420)));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({});
    const rows = await readDeviceReadings(
      service.storage.db,
      siteId,
      await deviceId('node-c/gpu0'),
      T + 3000,
      T + 3001,
    );
    expect(rows.map((r) => r.power_w)).toEqual([420]);

    const bad = await otlpPost(
      JSON.stringify(otlpJson(-5, [{ key: 'hw.id', value: { stringValue: 'gpu1' } }])),
    );
    expect(bad.status).toBe(200);
    expect(await bad.json()).toMatchObject({
      partialSuccess: { rejectedDataPoints: '1', errorMessage: expect.stringMatching(/power_w/) },
    });
  });

  it('OTLP: a second, different value for one device, metric and instant is reported as rejected', async () => {
    const body = otlpJson(500, [{ key: 'hw.id', value: { stringValue: 'gpu7' } }]);
    const points = body.resourceMetrics[0]!.scopeMetrics[0]!.metrics[0]!.gauge.dataPoints;
    points.push({ ...points[0]!, asDouble: 501 });
    const response = await otlpPost(JSON.stringify(body));
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      partialSuccess: { rejectedDataPoints: '1', errorMessage: expect.stringMatching(/conflicting_series/) },
    });
  });

  it('OTLP: an undecodable body is 400 with a google.rpc.Status in the request encoding', async () => {
    const json = await otlpPost('{"resourceMetrics": [');
    expect(json.status).toBe(400);
    expect(await json.json()).toMatchObject({ code: 3, message: expect.any(String) });
    const proto = await otlpPost(Buffer.from([0x0a, 0xff, 0xff, 0x01]), 'application/x-protobuf');
    expect(proto.status).toBe(400);
    expect(proto.headers.get('content-type')).toBe('application/x-protobuf');
    const bytes = new Uint8Array(await proto.arrayBuffer());
    expect(bytes[0]).toBe(0x08); // field 1 (code), varint
    expect(bytes[1]).toBe(3);
    const other = await otlpPost('x', 'text/plain');
    expect(other.status).toBe(415);
  });
});
