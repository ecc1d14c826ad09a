import fc from 'fast-check';
import { compressSync } from 'snappy';
import { describe, expect, it } from 'vitest';
import {
  encodeRemoteWriteBody,
  encodeWriteRequest,
  type FixtureSeries,
} from '../testing/prometheus-proto.ts';
import { compileRemoteWriteMapping, decodeRemoteWrite, decodeWriteRequest, isDcgmBlank } from './decode.ts';
import { DEFAULT_REMOTE_WRITE_MAPPING } from './mapping.ts';

const T = Date.UTC(2026, 11, 1, 10, 0, 0);
const gpu = (gpuIndex: number, extra: Record<string, string> = {}) => ({
  Hostname: 'gpu-node-07',
  gpu: String(gpuIndex),
  UUID: `GPU-${gpuIndex}`,
  device: `nvidia${gpuIndex}`,
  modelName: 'NVIDIA H100 80GB HBM3',
  instance: '10.0.0.7:9400',
  job: 'dcgm',
  ...extra,
});
const dcgm = (name: string, gpuIndex: number, value: number, ts = T): FixtureSeries => ({
  labels: { __name__: name, ...gpu(gpuIndex) },
  samples: [{ value, timestamp: ts }],
});

describe('decodeRemoteWrite: DCGM exporter series', () => {
  it('maps core and extra DCGM fields to devices Hostname/gpuN with unit conversion', () => {
    const body = encodeRemoteWriteBody([
      dcgm('DCGM_FI_DEV_POWER_USAGE', 3, 612.25),
      dcgm('DCGM_FI_DEV_GPU_UTIL', 3, 97),
      dcgm('DCGM_FI_DEV_GPU_TEMP', 3, 71),
      dcgm('DCGM_FI_DEV_FB_USED', 3, 81_000),
      dcgm('DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION', 3, 123_456_789_001),
      dcgm('DCGM_FI_DEV_XID_ERRORS', 3, 79),
      dcgm('DCGM_FI_DEV_ECC_DBE_VOL_TOTAL', 3, 2),
      dcgm('DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL', 3, 5),
    ]);
    const r = decodeRemoteWrite(body);
    expect(r.fatal).toBeUndefined();
    expect(r.problems).toEqual([]);
    expect(r.series).toBe(8);
    const base = {
      device: 'gpu-node-07/gpu3',
      kind: 'gpu',
      model: 'NVIDIA H100 80GB HBM3',
      tsMs: T,
      tsUs: T * 1000,
    };
    expect(r.samples).toEqual([
      { ...base, metric: 'power_w', value: 612.25 },
      { ...base, metric: 'gpu_util_pct', value: 97 },
      { ...base, metric: 'temp_c', value: 71 },
      { ...base, metric: 'gpu_mem_used_bytes', value: 81_000 * 1048576 },
      { ...base, metric: 'energy_j_total', value: 123_456_789.001 },
      { ...base, metric: 'gpu_xid_last', value: 79 },
      { ...base, metric: 'gpu_ecc_errors_total', index: 'dbe_volatile', value: 2 },
      { ...base, metric: 'gpu_nvlink_errors_total', index: 'replay', value: 5 },
    ]);
  });

  it('filters DCGM blank values and reports them; counts unmapped series by name', () => {
    const body = encodeRemoteWriteBody([
      dcgm('DCGM_FI_DEV_POWER_USAGE', 0, 2 ** 47 + 2), // DCGM_FP64_NOT_SUPPORTED
      dcgm('DCGM_FI_DEV_GPU_TEMP', 0, 2 ** 63), // DCGM_INT64_NOT_SUPPORTED, 9223372036854775794 as a double
      dcgm('DCGM_FI_DEV_SM_CLOCK', 0, 2147483632), // DCGM_INT32_BLANK
      dcgm('DCGM_FI_DEV_GPU_UTIL', 0, 40),
      dcgm('DCGM_FI_DEV_PCIE_REPLAY_COUNTER', 0, 1),
      dcgm('DCGM_FI_DEV_PCIE_REPLAY_COUNTER', 1, 1),
      dcgm('go_goroutines', 0, 12),
    ]);
    const r = decodeRemoteWrite(body);
    expect(r.samples.map((s) => [s.metric, s.value])).toEqual([['gpu_util_pct', 40]]);
    expect(r.problems.map((p) => [p.where, p.code])).toEqual([
      ['series 0 (DCGM_FI_DEV_POWER_USAGE)', 'dcgm_blank'],
      ['series 1 (DCGM_FI_DEV_GPU_TEMP)', 'dcgm_blank'],
      ['series 2 (DCGM_FI_DEV_SM_CLOCK)', 'dcgm_blank'],
    ]);
    expect(r.unmapped).toBe(3);
    expect(r.unmappedNames).toEqual(['DCGM_FI_DEV_PCIE_REPLAY_COUNTER', 'go_goroutines']);
  });

  it('knows each blank range only for the field type it belongs to', () => {
    const int64 = { metric: 'x', dcgm: 'int64' } as const;
    const fp64 = { metric: 'x', dcgm: 'fp64' } as const;
    expect(isDcgmBlank(int64, 2 ** 63)).toBe(true);
    expect(isDcgmBlank(fp64, 2 ** 63)).toBe(false);
    expect(isDcgmBlank(fp64, 2 ** 47 + 15)).toBe(true);
    expect(isDcgmBlank(int64, 2 ** 47)).toBe(false); // a legitimate int64 (e.g. an energy counter)
    expect(isDcgmBlank(fp64, 2 ** 47 + 16)).toBe(false);
    expect(isDcgmBlank({ metric: 'x' }, 2 ** 63)).toBe(false); // not a DCGM field
  });

  it('falls back to instance when Hostname is missing, and reports a series naming no device', () => {
    const noHost = { ...gpu(1) } as Record<string, string>;
    delete noHost.Hostname;
    const noGpu = { ...gpu(1) } as Record<string, string>;
    delete noGpu.gpu;
    delete noGpu.instance;
    const r = decodeRemoteWrite(
      encodeRemoteWriteBody([
        { labels: { __name__: 'DCGM_FI_DEV_GPU_TEMP', ...noHost }, samples: [{ value: 50, timestamp: T }] },
        { labels: { __name__: 'DCGM_FI_DEV_GPU_TEMP', ...noGpu }, samples: [{ value: 50, timestamp: T }] },
      ]),
    );
    expect(r.samples.map((s) => s.device)).toEqual(['10.0.0.7:9400/gpu1']);
    expect(r.problems.map((p) => p.code)).toEqual(['missing_device_label']);
  });
});

describe('decodeRemoteWrite: Braiins OS and hashwatt names', () => {
  const miner = { instance: '10.35.31.2:8081', job: 'braiinsos-data' };
  it('maps power by source priority, per-board temperatures, fans and shares', () => {
    const s = (name: string, labels: Record<string, string>, value: number): FixtureSeries => ({
      labels: { __name__: name, ...miner, ...labels },
      samples: [{ value, timestamp: T }],
    });
    const r = decodeRemoteWrite(
      encodeRemoteWriteBody([
        s('miner_power', { type: 'estimated' }, 3300),
        s('miner_power', { type: 'wall' }, 3412),
        s('miner_power', { type: 'limit' }, 3500),
        s('chip_temperature_celsius', { hashboard: '1', chip: '0' }, 70),
        s('chip_temperature_celsius', { hashboard: '1', chip: '1' }, 74),
        s('chip_temperature_celsius', { hashboard: '2', chip: '0' }, 77),
        s('fan_rpm_feedback', { idx: '0' }, 5000),
        s('fan_rpm_feedback', { idx: '1' }, 5400),
        s('hashboard_nominal_hashrate_gigahashes_per_second', { hashboard: '1' }, 67_000),
        s('hashboard_nominal_hashrate_gigahashes_per_second', { hashboard: '2' }, 68_000),
        s('hashboard_shares', { hashboard: '1', type: 'valid' }, 1000),
        s('hashboard_shares', { hashboard: '1', type: 'invalid' }, 3),
        s('hashboard_shares', { hashboard: '1', type: 'duplicate' }, 1),
        s('stratum_accepted_shares_counter', { host: 'pool-a', connection_type: 'user' }, 900),
        s('stratum_accepted_shares_counter', { host: 'pool-b', connection_type: 'dev-fee' }, 20),
        s('stratum_rejected_shares_counter', { host: 'pool-a', connection_type: 'user' }, 4),
      ]),
    );
    expect(r.problems).toEqual([]);
    const got = Object.fromEntries(
      r.samples.map((x) => [`${x.metric}${x.index === undefined ? '' : `[${x.index}]`}`, x.value]),
    );
    expect(got).toEqual({
      power_w: 3412,
      power_limit_w: 3500,
      'chip_temp_c[1]': 74,
      'chip_temp_c[2]': 77,
      temp_c: 77,
      'fan_speed_rpm[0]': 5000,
      'fan_speed_rpm[1]': 5400,
      fan_rpm: 5200,
      expected_hashrate_ths: 135,
      'hashboard_shares_total[1]': 1000,
      'hardware_errors_total[1]': 3,
      shares_accepted_total: 920,
      shares_rejected_total: 4,
    });
    expect(r.samples.every((x) => x.device === '10.35.31.2:8081' && x.kind === 'asic')).toBe(true);
    expect(r.unmappedNames).toEqual(['hashboard_shares']); // the duplicate-share series
  });

  it('takes hashwatt_<metric> with device, kind and index labels; refuses unknown metric names', () => {
    const r = decodeRemoteWrite(
      encodeRemoteWriteBody([
        {
          labels: { __name__: 'hashwatt_power_w', device: 'pdu-a1', kind: 'pdu' },
          samples: [{ value: 11_000, timestamp: T }],
        },
        {
          labels: { __name__: 'hashwatt_fan_speed_rpm', device: 's21-017', kind: 'asic', index: '2' },
          samples: [{ value: 4100, timestamp: T }],
        },
        {
          labels: { __name__: 'hashwatt_power_kw', device: 'pdu-a1' },
          samples: [{ value: 11, timestamp: T }],
        },
      ]),
    );
    expect(r.samples).toEqual([
      { device: 'pdu-a1', kind: 'pdu', metric: 'power_w', tsMs: T, tsUs: T * 1000, value: 11_000 },
      {
        device: 's21-017',
        kind: 'asic',
        metric: 'fan_speed_rpm',
        index: '2',
        tsMs: T,
        tsUs: T * 1000,
        value: 4100,
      },
    ]);
    expect(r.problems.map((p) => p.code)).toEqual(['unknown_metric']);
  });

  it('accepts a replacement mapping table', () => {
    const mapping = compileRemoteWriteMapping({
      ...DEFAULT_REMOTE_WRITE_MAPPING,
      families: [
        {
          name: 'pdu',
          device: { device: ['{pdu}/outlet{outlet}'], kind: 'pdu' },
          metrics: { pdu_outlet_watts: [{ metric: 'power_w' }] },
        },
      ],
    });
    const r = decodeRemoteWrite(
      encodeRemoteWriteBody([
        {
          labels: { __name__: 'pdu_outlet_watts', pdu: 'a1', outlet: '4' },
          samples: [{ value: 230, timestamp: T }],
        },
        dcgm('DCGM_FI_DEV_GPU_TEMP', 0, 50),
      ]),
      { mapping },
    );
    expect(r.samples.map((s) => [s.device, s.metric, s.value])).toEqual([['a1/outlet4', 'power_w', 230]]);
    expect(r.unmappedNames).toEqual(['DCGM_FI_DEV_GPU_TEMP']);
  });
});

describe('decodeRemoteWrite: samples, timestamps and markers', () => {
  it('keeps every sample of a series with its own timestamp, skips stale markers', () => {
    const raw = encodeWriteRequest([
      {
        labels: { __name__: 'DCGM_FI_DEV_GPU_TEMP', ...gpu(0) },
        samples: [
          { value: 60, timestamp: T },
          { value: 1234.5, timestamp: T + 15_000 }, // replaced by the stale marker below
          { value: 62, timestamp: T + 30_000 },
        ],
      },
    ]);
    // Prometheus' stale marker is a NaN with a payload; encode its exact bits.
    const marker = Buffer.from(new Float64Array([1234.5]).buffer);
    const at = Buffer.from(raw).indexOf(marker);
    expect(at).toBeGreaterThan(0);
    const patched = Buffer.from(raw);
    patched.writeUInt32LE(0x00000002, at);
    patched.writeUInt32LE(0x7ff00000, at + 4);
    const r = decodeWriteRequest(patched);
    expect(r.samples.map((s) => [s.tsMs, s.value])).toEqual([
      [T, 60],
      [T + 30_000, 62],
    ]);
    expect(r.staleMarkers).toBe(1);
    expect(r.problems).toEqual([]);
  });

  it('reports other NaNs, infinities and out-of-range timestamps per sample', () => {
    const r = decodeRemoteWrite(
      encodeRemoteWriteBody([
        {
          labels: { __name__: 'DCGM_FI_DEV_GPU_TEMP', ...gpu(0) },
          samples: [
            { value: Number.NaN, timestamp: T },
            { value: Number.POSITIVE_INFINITY, timestamp: T + 1 },
            { value: 50, timestamp: 2 ** 62 },
            { value: 51, timestamp: -5 }, // before 1970 is representable; the pipeline's window refuses it
          ],
        },
      ]),
    );
    expect(r.problems.map((p) => p.code)).toEqual(['not_finite', 'not_finite', 'timestamp_out_of_range']);
    expect(r.samples.map((s) => [s.tsMs, s.tsUs, s.value])).toEqual([[-5, -5000, 51]]);
  });

  it('reports a conflict when two series give one metric different values at one instant', () => {
    const r = decodeRemoteWrite(
      encodeRemoteWriteBody([
        {
          labels: { __name__: 'DCGM_FI_DEV_GPU_TEMP', ...gpu(0, { pod: 'a' }) },
          samples: [{ value: 50, timestamp: T }],
        },
        {
          labels: { __name__: 'DCGM_FI_DEV_GPU_TEMP', ...gpu(0, { pod: 'b' }) },
          samples: [{ value: 51, timestamp: T }],
        },
        {
          labels: { __name__: 'DCGM_FI_DEV_GPU_TEMP', ...gpu(0, { pod: 'c' }) },
          samples: [{ value: 50, timestamp: T }],
        },
      ]),
    );
    expect(r.samples.map((s) => s.value)).toEqual([50]);
    expect(r.problems.map((p) => [p.where, p.code])).toEqual([
      ['series 1 (DCGM_FI_DEV_GPU_TEMP)', 'conflicting_series'],
    ]);
  });

  it('counts native histograms as unsupported', () => {
    const r = decodeRemoteWrite(
      encodeRemoteWriteBody([
        {
          labels: { __name__: 'request_duration_seconds' },
          samples: [],
          histograms: [{ count_int: 3, sum: 1.5, timestamp: T }],
        },
      ]),
    );
    expect(r.problems.map((p) => p.code)).toEqual(['unsupported_histogram']);
  });
});

describe('decodeRemoteWrite: malformed and hostile bodies', () => {
  const valid = encodeWriteRequest([
    dcgm('DCGM_FI_DEV_GPU_TEMP', 0, 50),
    dcgm('DCGM_FI_DEV_GPU_UTIL', 0, 10),
  ]);

  it('bad snappy is fatal', () => {
    expect(decodeRemoteWrite(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])).fatal?.code).toBe(
      'bad_snappy',
    );
    expect(decodeRemoteWrite(new Uint8Array([])).fatal?.code).toBe('bad_snappy');
    const truncated = compressSync(Buffer.from(valid)).subarray(0, 20);
    expect(decodeRemoteWrite(truncated).fatal?.code).toBe('bad_snappy');
  });

  it('a forged header and a literal running backwards are refused at once', () => {
    // 6efc09f2ddfa spins snappyjs for ~0.5 s (a negative literal length); 20 bytes declaring 1 MiB
    // cannot be snappy (at most 64 bytes out per 3 in) and must not allocate 1 MiB.
    expect(decodeRemoteWrite(Buffer.from('6efc09f2ddfa', 'hex')).fatal?.code).toBe('bad_snappy');
    const forged = new Uint8Array(20);
    forged.set([0x80, 0x80, 0x40]); // varint 1 MiB
    expect(decodeRemoteWrite(forged).fatal?.message).toMatch(/more than 20 snappy bytes can hold/);
  });

  it('an uncompressed body (a sender forgot snappy) is fatal, never a throw', () => {
    const r = decodeRemoteWrite(valid);
    expect(r.fatal).toBeDefined();
    expect(r.samples).toEqual([]);
  });

  it('refuses a body declaring a huge uncompressed size before decompressing it', () => {
    // Header: varint 0xffffffff (4 GiB), then garbage.
    const bomb = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00]);
    expect(decodeRemoteWrite(bomb).fatal?.code).toBe('too_large');
    const r = decodeRemoteWrite(compressSync(Buffer.from(valid)), { maxUncompressedBytes: 10 });
    expect(r.fatal?.code).toBe('too_large');
  });

  it('every truncation of a valid WriteRequest is fatal or decodes cleanly, never throws', () => {
    for (let cut = 1; cut < valid.length; cut++) {
      const r = decodeWriteRequest(valid.subarray(0, cut));
      if (r.fatal === undefined) expect(r.samples.length).toBeLessThanOrEqual(2);
      else expect(r.fatal.code).toBe('bad_protobuf');
    }
  });

  it('bounds the labels of a series and reports the series', () => {
    const labels: Record<string, string> = { __name__: 'DCGM_FI_DEV_GPU_TEMP', ...gpu(0) };
    for (let i = 0; i < 100; i++) labels[`extra_${i}`] = 'x';
    const long = { __name__: 'DCGM_FI_DEV_GPU_TEMP', ...gpu(1), pod: 'p'.repeat(5000) };
    const r = decodeRemoteWrite(
      encodeRemoteWriteBody([
        { labels, samples: [{ value: 50, timestamp: T }] },
        { labels: long, samples: [{ value: 50, timestamp: T }] },
        dcgm('DCGM_FI_DEV_GPU_TEMP', 2, 50),
      ]),
    );
    expect(r.problems.map((p) => p.code)).toEqual(['too_many_labels', 'too_many_labels']);
    expect(r.samples.map((s) => s.device)).toEqual(['gpu-node-07/gpu2']);
  });

  it('fuzz: arbitrary bytes, and valid bodies with flipped bytes, never throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const a = decodeWriteRequest(bytes);
        const b = decodeRemoteWrite(bytes);
        return Array.isArray(a.samples) && Array.isArray(b.samples);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 }), (at, byte) => {
        const copy = Uint8Array.from(valid);
        copy[at] = byte;
        const r = decodeWriteRequest(copy);
        // A flipped byte may well make another valid message (a label read as a sample): all
        // that holds is that nothing throws and nothing invalid comes out.
        return r.samples.every((x) => Number.isFinite(x.value) && Number.isSafeInteger(x.tsUs));
      }),
      { numRuns: 2000 },
    );
  });

  it('fuzz: round-trips whatever protobufjs encodes for hashwatt_ series', () => {
    const metric = fc.constantFrom('power_w', 'temp_c', 'gpu_util_pct', 'chip_temp_c', 'energy_j_total');
    const series = fc.record({
      metric,
      device: fc.string({ minLength: 1, maxLength: 40 }).filter((s) => s.isWellFormed()),
      samples: fc.array(
        fc.record({
          value: fc.double({ noNaN: true, noDefaultInfinity: true }),
          timestamp: fc.integer({ min: -(2 ** 40), max: 2 ** 43 }),
        }),
        { minLength: 1, maxLength: 4 },
      ),
    });
    fc.assert(
      fc.property(fc.array(series, { maxLength: 8 }), (list) => {
        const r = decodeRemoteWrite(
          encodeRemoteWriteBody(
            list.map((s) => ({
              labels: { __name__: `hashwatt_${s.metric}`, device: s.device },
              samples: s.samples,
            })),
          ),
        );
        // Expected: one sample per (device, metric, ts); the first value wins a repeat.
        const expected = new Map<string, number>();
        for (const s of list)
          for (const x of s.samples) {
            const key = `${s.device}\u0000${s.metric}\u0000${x.timestamp}`;
            if (!expected.has(key)) expected.set(key, x.value);
          }
        const got = new Map(r.samples.map((x) => [`${x.device}\u0000${x.metric}\u0000${x.tsMs}`, x.value]));
        expect(r.fatal).toBeUndefined();
        expect(got.size).toBe(expected.size);
        // proto3 cannot tell -0 from the default 0, so compare values with -0 as 0.
        for (const [k, v] of expected) expect((got.get(k) ?? Number.NaN) + 0).toBe(v + 0);
      }),
      { numRuns: 300 },
    );
  });
});
