import { HttpError, InfluxDB, Point, setLogger, type WriteApi } from '@influxdata/influxdb-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/alerting/testing.ts';
import type { RunningService } from '../../src/service.ts';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import { FaultProxy } from '../support/fault-proxy.ts';
import { adminRequest, createSite, startTestService } from '../support/service.ts';
import { instantKey, readCounter, readSiteDevices, readSiteInstants } from './support/hashwatt-state.ts';

// InfluxData's official JavaScript client (the v2 write API Telegraf's outputs.influxdb_v2 uses)
// writing to hashwatt as if it were InfluxDB: Telegraf's nvidia_smi measurement and hashwatt's
// own, at ns and µs precision, through a fault proxy that is transparent until a test arms it.

const WRITE = '/api/v2/write';
const MIB = 1048576;
const MODEL = 'NVIDIA H100 80GB HBM3';
/** A whole second half a minute ago, in ns: inside the accepted window. */
const BASE_NS = BigInt(Math.floor(Date.now() / 1000) - 30) * 1_000_000_000n;

/** docs/protocols/line-protocol.md: nvidia_smi field → column, with the conversion (`real` columns rounded). */
const NVIDIA_SMI: Readonly<Record<string, { column: string; convert: (v: number) => number }>> = {
  power_draw: { column: 'power_w', convert: (v) => v },
  utilization_gpu: { column: 'gpu_util_pct', convert: Math.fround },
  temperature_gpu: { column: 'temp_c', convert: Math.fround },
  memory_used: { column: 'gpu_mem_used_bytes', convert: (v) => v * MIB },
  clocks_current_sm: { column: 'gpu_sm_clock_mhz', convert: (v) => v },
};

/** What a test sent, as the cells hashwatt must hold: (device, µs) → column → value. */
class Expected {
  readonly cells = new Map<string, Record<string, number>>();
  add(device: string, ns: bigint, values: Record<string, number>): void {
    // Nanoseconds are floored to the stored microsecond.
    const key = instantKey(device, Number(ns / 1000n));
    this.cells.set(key, { ...this.cells.get(key), ...values });
  }
}

/** A Telegraf nvidia_smi point of one GPU, and the cells it must fill. */
function nvidiaSmiPoint(expected: Expected, host: string, index: number, ns: bigint): Point {
  const fields = {
    power_draw: 301.25 + index * 10.5,
    utilization_gpu: 70 + index,
    temperature_gpu: 58 + index,
    memory_used: 40_000 + 1_024 * index,
    clocks_current_sm: 1980 - 15 * index,
  };
  const values: Record<string, number> = {};
  for (const [field, value] of Object.entries(fields)) {
    const target = NVIDIA_SMI[field]!;
    values[target.column] = target.convert(value);
  }
  expected.add(`${host}/gpu${index}`, ns, values);
  return (
    new Point('nvidia_smi')
      .tag('host', host)
      .tag('index', String(index))
      .tag('name', MODEL)
      .tag('uuid', `GPU-0a1b2c3d-0000-4000-8000-00000000000${index}`)
      .tag('pstate', 'P0')
      .floatField('power_draw', fields.power_draw)
      .intField('utilization_gpu', fields.utilization_gpu)
      .intField('temperature_gpu', fields.temperature_gpu)
      .intField('memory_used', fields.memory_used)
      .intField('clocks_current_sm', fields.clocks_current_sm)
      // A percentage, not rpm: hashwatt leaves it unmapped (counted). The version is ignored.
      .intField('fan_speed', 30 + index)
      .stringField('driver_version', '550.90.07')
      .timestamp(ns.toString())
  );
}

describe('the official InfluxDB client writing to hashwatt', () => {
  let db: TestDatabase;
  let service: RunningService;
  let proxy: FaultProxy;
  let siteId: number;
  let token: string;
  const siteName = 'e2e-influx';
  const clientLog: string[] = [];
  const open: WriteApi[] = [];

  const writeApi = (precision: 'ns' | 'us' | 'ms', options: Parameters<InfluxDB['getWriteApi']>[3] = {}) => {
    const api = new InfluxDB({ url: proxy.url, token }).getWriteApi('site-org', 'telemetry', precision, {
      // Only explicit flushes send: each test knows which request carries what.
      flushInterval: 0,
      ...options,
    });
    open.push(api);
    return api;
  };
  const stored = () => readSiteInstants(service.storage.db, siteId);
  const duplicates = () =>
    readCounter(service.url, 'hashwatt_samples_duplicate_total', { transport: 'influx' });

  beforeAll(async () => {
    // The client logs every failed write it retries or gives up on; keep them for the asserts.
    setLogger({
      error: (message: string) => clientLog.push(`error: ${message}`),
      warn: (message: string) => clientLog.push(`warn: ${message}`),
    });
    db = await createTestDatabase('postgres');
    service = await startTestService(db);
    const created = await createSite(service.url, siteName, 'mixed', 100);
    siteId = created.site.id;
    token = created.token;
    proxy = await FaultProxy.start(service.url);
  }, 60_000);

  afterAll(async () => {
    for (const api of open) api.dispose();
    await proxy?.close();
    await service?.stop();
    await db?.dispose();
  });

  it('stores nvidia_smi and hashwatt points at ns precision, floored to the microsecond, gzip as the client sends it', async () => {
    const expected = new Expected();
    const api = writeApi('ns');
    const points: Point[] = [];
    for (const [i, offsetNs] of [123_456_789n, 1_000_000_999n].entries()) {
      const ns = BASE_NS + offsetNs;
      for (let index = 0; index < 4; index++)
        points.push(nvidiaSmiPoint(expected, 'influx-node-01', index, ns));
      // hashwatt's own measurement fills the same GPU instants with extra metrics...
      points.push(
        new Point('hashwatt')
          .tag('device', 'influx-node-01/gpu0')
          .tag('kind', 'gpu')
          .intField('gpu_xid_last', i === 0 ? 0 : 48)
          .floatField('energy_j_total', 4_521_337.125 + i * 700),
        new Point('hashwatt')
          .tag('device', 'influx-node-01/gpu1')
          .tag('kind', 'gpu')
          .tag('index', 'dbe_volatile')
          .intField('gpu_ecc_errors_total', 3 + i),
      );
      points.at(-2)!.timestamp(ns.toString());
      points.at(-1)!.timestamp(ns.toString());
      expected.add('influx-node-01/gpu0', ns, {
        gpu_xid_last: i === 0 ? 0 : 48,
        energy_j_total: 4_521_337.125 + i * 700,
      });
      expected.add('influx-node-01/gpu1', ns, { gpu_ecc_errors_total_dbe_volatile: 3 + i });
      // ...and an ASIC's per-hashboard temperatures, one line per hashboard with its `index` tag.
      points.push(
        new Point('hashwatt')
          .tag('device', 'influx-s21-001')
          .tag('kind', 'asic')
          .tag('model', 'Antminer S21')
          .floatField('power_w', 3_550.5 + i)
          .floatField('hashrate_ths', 201.25 - i)
          .timestamp(ns.toString()),
      );
      const asic: Record<string, number> = { power_w: 3_550.5 + i, hashrate_ths: 201.25 - i };
      for (let board = 0; board < 3; board++) {
        points.push(
          new Point('hashwatt')
            .tag('device', 'influx-s21-001')
            .tag('kind', 'asic')
            .tag('index', String(board))
            .floatField('chip_temp_c', 71.5 + board + i)
            .floatField('board_temp_c', 60.25 + board)
            .timestamp(ns.toString()),
        );
        asic[`chip_temp_c_${board}`] = 71.5 + board + i;
        asic[`board_temp_c_${board}`] = 60.25 + board;
      }
      expected.add('influx-s21-001', ns, asic);
    }
    api.writePoints(points);
    await api.flush();
    await api.close();

    const [request] = proxy.exchanges.filter((e) => e.path === WRITE);
    expect(request).toMatchObject({
      target: '/api/v2/write?org=site-org&bucket=telemetry&precision=ns',
      upstreamStatus: 204,
      headers: expect.objectContaining({ authorization: `Token ${token}`, 'content-encoding': 'gzip' }),
    });
    const all = await stored();
    expect(new Map([...all].map(([key, instant]) => [key, instant.values]))).toEqual(expected.cells);
    for (const instant of all.values()) expect(instant.rows.readings).toBe(1);

    const devices = await readSiteDevices(service.storage.db, siteId);
    for (let index = 0; index < 4; index++)
      expect(devices.get(`influx-node-01/gpu${index}`)).toEqual({ kind: 'gpu', model: MODEL });
    expect(devices.get('influx-s21-001')).toEqual({ kind: 'asic', model: 'Antminer S21' });

    // fan_speed, 8 points of it, is unmapped and counted under its measurement.
    const unmapped = await adminRequest(service.url, 'GET', `/api/v1/sites/${siteId}/unmapped`);
    expect(await unmapped.json()).toMatchObject({
      total: 8,
      names: [{ protocol: 'influx', name: 'nvidia_smi.fan_speed' }],
    });
    expect(
      await readCounter(service.url, 'hashwatt_ingest_unmapped_total', {
        site: siteName,
        protocol: 'influx',
      }),
    ).toBe(8);
    expect(await duplicates()).toBe(0);
  });

  it('stores points at us precision exactly', async () => {
    const us = BASE_NS / 1000n + 5_000_007n;
    const api = writeApi('us');
    api.writeRecord(
      `nvidia_smi,host=influx-node-02,index=0,name=H100 power_draw=412.75,temperature_gpu=66i ${us}`,
    );
    api.writePoint(
      new Point('hashwatt')
        .tag('device', 'influx-node-02/gpu0')
        .tag('kind', 'gpu')
        .intField('gpu_mem_clock_mhz', 2619)
        .timestamp(us.toString()),
    );
    await api.close();
    const instant = (await stored()).get(instantKey('influx-node-02/gpu0', Number(us)));
    expect(instant?.values).toEqual({ power_w: 412.75, temp_c: 66, gpu_mem_clock_mhz: 2619 });
  });

  it('retries a write whose answer was lost (503 + Retry-After), and hashwatt stores it once', async () => {
    const expected = new Expected();
    const ns = BASE_NS + 10_000_000_321n;
    let written = false;
    const api = writeApi('ns', {
      maxRetries: 3,
      writeSuccess: () => {
        written = true;
      },
    });
    proxy.loseAnswers({ path: WRITE, count: 1 });
    api.writePoints([0, 1].map((index) => nvidiaSmiPoint(expected, 'influx-node-03', index, ns)));
    const duplicatesBefore = await duplicates();

    // The client is told 503 and schedules the resend itself (its retry buffer).
    const failed = await api.flush().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(HttpError);
    expect((failed as HttpError).statusCode).toBe(503);
    await waitFor('the client to resend and be answered 204', () => written, 15_000, 50);

    const exchanges = proxy.exchanges.filter((e) => e.target.includes('precision=ns')).slice(-2);
    expect(exchanges.map((e) => [e.upstreamStatus, e.answeredStatus, e.answerLost])).toEqual([
      [204, 503, true],
      [204, 204, false],
    ]);
    expect(exchanges[1]!.bodySha256).toBe(exchanges[0]!.bodySha256);
    expect(clientLog.some((line) => line.startsWith('warn: Write to InfluxDB failed (attempt: 1)'))).toBe(
      true,
    );

    // Every sample of the resend was already stored: 5 mapped fields × 2 GPUs, all duplicates.
    expect((await duplicates()) - duplicatesBefore).toBe(10);
    const all = await stored();
    for (const [key, values] of expected.cells) {
      expect(all.get(key)?.values, key).toEqual(values);
      expect(all.get(key)?.rows).toEqual({ readings: 1, extra: 1 });
    }
    await api.close();
  });

  it('gets 422 for a batch with a bad line, the good lines stored and nothing retried', async () => {
    const ms = BASE_NS / 1_000_000n + 20_000n;
    const api = writeApi('ms', { maxRetries: 3 });
    api.writeRecords([
      `nvidia_smi,host=influx-node-04,index=0 power_draw=250.5,utilization_gpu=91i ${ms}`,
      'bad line',
      `nvidia_smi,host=influx-node-04,index=1 power_draw=260.5,utilization_gpu=92i ${ms}`,
    ]);
    const failed = await api.flush().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(HttpError);
    const error = failed as HttpError;
    expect(error.statusCode).toBe(422);
    expect(error.json).toMatchObject({
      code: 'unprocessable entity',
      // The counts and the first bad line's number; the wording around them is hashwatt's.
      message: expect.stringMatching(/^partial write: 1 .*of 3 line.*\bline 2\b/),
    });
    // A 422 is not retried: nothing is left in the client's buffers.
    expect(api.dispose()).toBe(0);

    const all = await stored();
    expect(all.get(instantKey('influx-node-04/gpu0', Number(ms) * 1000))?.values).toEqual({
      power_w: 250.5,
      gpu_util_pct: 91,
    });
    expect(all.get(instantKey('influx-node-04/gpu1', Number(ms) * 1000))?.values).toEqual({
      power_w: 260.5,
      gpu_util_pct: 92,
    });
  });
});
