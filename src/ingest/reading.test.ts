import { describe, expect, it } from 'vitest';
import { countSamples, parseTimestamp, validateReading, validateReadings } from './reading.ts';

const NOW = Date.UTC(2026, 10, 24, 10, 0, 0);
const window = { nowMs: NOW, oldestMs: NOW - 30 * 86_400_000 };
const asic = { device: 'hall-a/r03/s21-017', kind: 'asic', ts: NOW, power_w: 3520, hashrate_ths: 201.3 };

function rejection(raw: unknown) {
  const result = validateReading(raw, 7, window);
  if (result.ok) throw new Error('expected a rejection');
  return result.rejection;
}

describe('validateReading', () => {
  it('accepts the three reading shapes of the wire contract', () => {
    const { valid, rejected } = validateReadings(
      [
        {
          ...asic,
          ts: '2026-11-24T10:00:00.000Z',
          expected_hashrate_ths: 200,
          temp_c: 68,
          fan_rpm: 5400,
          status: 'ok',
        },
        {
          device: 'node-17/gpu-3',
          kind: 'gpu',
          ts: NOW,
          power_w: 612,
          gpu_util_pct: 97,
          temp_c: 61,
          gpu_mem_used_bytes: 68719476736,
        },
        { device: 'main-meter', kind: 'meter', ts: NOW, power_w: 48200000, available_power_w: 55000000 },
      ],
      window,
    );
    expect(rejected).toEqual([]);
    expect(valid.map((r) => r.tsMs)).toEqual([NOW, NOW, NOW]);
    expect(valid[0]).toMatchObject({
      index: 0,
      device: 'hall-a/r03/s21-017',
      kind: 'asic',
      status: 'ok',
      fan_rpm: 5400,
    });
    expect(countSamples(valid[1]!)).toBe(4);
  });

  it.each([
    [{ ...asic, voltage_v: 12 }, 'voltage_v', 'unknown_field'],
    [{ ...asic, power_w: -1 }, 'power_w', 'sentinel_value'],
    [{ ...asic, power_w: -5 }, 'power_w', 'out_of_range'],
    [{ ...asic, gpu_util_pct: JSON.parse('9223372036854775794') }, 'gpu_util_pct', 'sentinel_value'],
    [{ ...asic, hashrate_ths: Number.POSITIVE_INFINITY }, 'hashrate_ths', 'not_finite'],
    [{ ...asic, gpu_util_pct: 100.5 }, 'gpu_util_pct', 'out_of_range'],
    [{ ...asic, power_w: '3520' }, 'power_w', 'invalid_type'],
    [{ ...asic, status: 'hashing' }, 'status', 'invalid_value'],
    [{ ...asic, device: '' }, 'device', 'out_of_range'],
    [{ ...asic, device: 'x'.repeat(129) }, 'device', 'out_of_range'],
    [{ ...asic, device: 'bad\nname' }, 'device', 'invalid'],
    [{ kind: 'asic', ts: NOW, power_w: 1 }, 'device', 'required'],
    [{ device: 'a', kind: 'asic', power_w: 1 }, 'ts', 'required'],
    [{ device: 'a', kind: 'asic', ts: NOW }, '(reading)', 'no_metric'],
    [{ ...asic, ts: NOW + 5 * 60_000 + 1 }, 'ts', 'timestamp_in_future'],
    [{ ...asic, ts: window.oldestMs - 1 }, 'ts', 'timestamp_too_old'],
    [{ ...asic, ts: Math.floor(NOW / 1000) }, 'ts', 'invalid_timestamp'],
    [{ ...asic, ts: '24/11/2026 10:00' }, 'ts', 'invalid_timestamp'],
    [42, '(reading)', 'invalid_type'],
  ])('rejects %j naming %s (%s)', (raw, field, code) => {
    expect(rejection(raw)).toMatchObject({ index: 7, field, code });
  });

  it.each([
    [{ ...asic, model: 'S21\u0000' }, 'model'],
    [{ ...asic, device: 'rig-\ud800' }, 'device'],
    [{ ...asic, model: '\udc00S21' }, 'model'],
  ])('rejects names Postgres would refuse or store differently: %j', (raw, field) => {
    expect(rejection(raw)).toMatchObject({ field, code: 'invalid' });
  });

  it('stores sensor values too small for a real column as 0 instead of failing the batch', () => {
    const result = validateReading(
      { ...asic, temp_c: 1e-50, fan_rpm: 5e-39, gpu_util_pct: 1e-39 },
      0,
      window,
    );
    expect(result.ok && [result.reading.temp_c, result.reading.fan_rpm, result.reading.gpu_util_pct]).toEqual(
      [0, 0, 0],
    );
  });

  it('accepts a reading that only reports a status', () => {
    expect(validateReading({ device: 'a', ts: NOW, status: 'offline' }, 0, window).ok).toBe(true);
  });

  it('keeps the good readings of a batch and reports each bad one by index', () => {
    const { valid, rejected } = validateReadings([asic, { ...asic, power_w: -1 }, asic, { nope: 1 }], window);
    expect(valid.map((r) => r.index)).toEqual([0, 2]);
    expect(rejected.map((r) => r.index)).toEqual([1, 3]);
  });
});

describe('parseTimestamp', () => {
  it('reads RFC 3339 with offsets and fractional seconds to the millisecond', () => {
    expect(parseTimestamp('2026-11-24T12:00:00.123+02:00', window)).toEqual({ ok: true, value: NOW + 123 });
  });

  it('accepts exactly five minutes ahead, not a millisecond more', () => {
    expect(parseTimestamp(NOW + 300_000, window).ok).toBe(true);
    expect(parseTimestamp(NOW + 300_001, window).ok).toBe(false);
  });
});
