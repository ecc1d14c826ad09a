import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  countSamples,
  parsePlainReading,
  parseRfc3339,
  parseTimestamp,
  ReadingSchema,
  validateReading,
  validateReadings,
} from './reading.ts';

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
    expect(valid.map((r) => r.tsUs)).toEqual([NOW * 1000, NOW * 1000, NOW * 1000]);
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
    [{ ...asic, hashrate_ths: 1e30 }, 'hashrate_ths', 'out_of_range'],
    [{ ...asic, gpu_util_pct: 9.2e18 }, 'gpu_util_pct', 'out_of_range'],
    [{ ...asic, fan_rpm: 0x7ffffff0 }, 'fan_rpm', 'sentinel_value'],
    [{ ...asic, power_w: 2 ** 47 + 2 }, 'power_w', 'sentinel_value'],
    [{ ...asic, temp_c: 1e39 }, 'temp_c', 'out_of_range'],
    [{ ...asic, fan_rpm: -1e39 }, 'fan_rpm', 'out_of_range'],
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
  it('reads RFC 3339 with offsets and fractional seconds to the microsecond', () => {
    expect(parseTimestamp('2026-11-24T12:00:00.123+02:00', window)).toEqual({
      ok: true,
      value: (NOW + 123) * 1000,
    });
    expect(parseTimestamp('2026-11-24T10:00:00.000001Z', window)).toEqual({
      ok: true,
      value: NOW * 1000 + 1,
    });
    expect(parseTimestamp(NOW, window)).toEqual({ ok: true, value: NOW * 1000 });
  });

  it.each([
    ['2026-11-31T00:00:01Z', /has no day 31/],
    ['2026-02-29T00:00:00Z', /has no day 29/],
    ['2026-13-01T00:00:00Z', /month 13/],
    ['2026-00-10T00:00:00Z', /month 00/],
    ['2026-11-00T00:00:00Z', /no day 00/],
    ['2026-11-24T24:00:00Z', /not a time of day/],
    ['2026-11-24T10:60:00Z', /not a time of day/],
    ['2026-11-24T23:59:60Z', /leap seconds/],
    ['2026-11-24T10:00:00+24:00', /offset/],
    ['2026-11-24T10:00:00+02:60', /offset/],
    ['2026-11-24T10:00:00.0000001Z', /microsecond/],
    ['2026-11-24T10:00:00.123456789Z', /microsecond/],
  ])('refuses %s rather than storing another instant', (ts, reason) => {
    const result = parseRfc3339(ts);
    expect(result).toMatchObject({ ok: false, code: 'invalid_timestamp' });
    expect(!result.ok && result.message).toMatch(reason);
  });

  it('accepts every real instant, leap days included, and zeros past the microsecond', () => {
    expect(parseRfc3339('2028-02-29T23:59:59.999999Z')).toEqual({
      ok: true,
      value: Date.UTC(2028, 1, 29, 23, 59, 59, 999) * 1000 + 999,
    });
    expect(parseRfc3339('2026-11-24T10:00:00.120000000Z')).toEqual({ ok: true, value: (NOW + 120) * 1000 });
    expect(parseRfc3339('2026-11-24t11:30:00+01:30')).toEqual({ ok: true, value: NOW * 1000 });
    expect(parseRfc3339('2026-11-24 05:00:00.5-05:00')).toEqual({ ok: true, value: (NOW + 500) * 1000 });
    expect(parseRfc3339('0050-01-01T00:00:00Z')).toEqual({
      ok: true,
      value: Date.parse('0050-01-01T00:00:00Z') * 1000,
    });
  });

  it('agrees with Date.parse on every instant that exists', () => {
    const instant = fc.date({
      min: new Date('1970-01-01T00:00:00Z'),
      max: new Date('2100-12-31T23:59:59Z'),
      noInvalidDate: true,
    });
    const offset = fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 });
    fc.assert(
      fc.property(instant, offset, (date, minutes) => {
        const local = new Date(date.getTime() + minutes * 60_000).toISOString().slice(0, 23);
        const sign = minutes < 0 ? '-' : '+';
        const abs = Math.abs(minutes);
        const text = `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
        expect(parseRfc3339(text)).toEqual({ ok: true, value: date.getTime() * 1000 });
        expect(Date.parse(text)).toBe(date.getTime());
      }),
      { numRuns: 2_000 },
    );
  });

  it('accepts exactly five minutes ahead, not a millisecond more', () => {
    expect(parseTimestamp(NOW + 300_000, window).ok).toBe(true);
    expect(parseTimestamp(NOW + 300_001, window).ok).toBe(false);
  });
});

describe('parsePlainReading (the fast path) agrees with ReadingSchema', () => {
  const edgeNumber = fc.oneof(
    fc.double(),
    fc.constantFrom(0, -0, 1e-40, -1e-40, -1, 100, 100.0001, 250, 1e6, 1e9, 1e10, 2 ** 53, 9.2e18),
    fc.integer({ min: -100, max: 300 }),
  );
  const anyValue = fc.oneof(edgeNumber, fc.string(), fc.constantFrom(null, true, [], {}, undefined));
  const label = fc.oneof(
    fc.string({ minLength: 0, maxLength: 140 }),
    fc.string({ unit: 'binary', maxLength: 70 }),
    fc.constantFrom(
      'ok-name',
      '',
      'a\u0000b',
      'tab\there',
      'c1\u0085',
      'del\u007f',
      'c1 end\u009f',
      'after c1\u00a0',
      '\uD800',
      'x'.repeat(64),
      'x'.repeat(65),
      'x'.repeat(128),
      'x'.repeat(129),
    ),
  );
  // Mostly valid fields with the odd edge or wrong value, so both answers are common.
  const mostly = <T>(valid: fc.Arbitrary<T>, odd: fc.Arbitrary<unknown>) =>
    fc.oneof({ weight: 12, arbitrary: valid }, { weight: 1, arbitrary: odd });
  const metric = (min: number, max: number) =>
    mostly(
      fc.oneof(fc.double({ min, max, noNaN: true }), fc.constantFrom(min, max, 1e-40)),
      fc.oneof(edgeNumber, anyValue),
    );
  const reading = fc.record(
    {
      device: mostly(fc.string({ minLength: 1, maxLength: 40 }), fc.oneof(label, anyValue)),
      kind: mostly(
        fc.constantFrom('asic', 'gpu', 'meter'),
        fc.oneof(fc.constantFrom('ASIC', 'pdu'), anyValue),
      ),
      model: mostly(fc.string({ minLength: 1, maxLength: 20 }), fc.oneof(label, anyValue)),
      ts: mostly(fc.oneof(fc.integer(), fc.constantFrom(NOW, '2026-11-24T10:00:00Z', 'soon')), anyValue),
      power_w: metric(0, 1e10),
      hashrate_ths: metric(0, 1e9),
      expected_hashrate_ths: metric(0, 1e9),
      temp_c: metric(-80, 250),
      fan_rpm: metric(0, 1e6),
      gpu_util_pct: metric(0, 100),
      gpu_mem_used_bytes: metric(0, 2 ** 53),
      available_power_w: metric(0, 1e10),
      status: mostly(
        fc.constantFrom('ok', 'error', 'curtailed', 'offline'),
        fc.oneof(fc.constantFrom('OK'), anyValue),
      ),
    },
    { requiredKeys: [] },
  );
  const withOddKey = fc.tuple(
    reading,
    fc.option(fc.constantFrom('extra', 'constructor', 'toString'), { freq: 10 }),
    anyValue,
  );

  it('accepts only what the schema accepts, with the same result', () => {
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(withOddKey, fc.boolean(), ([fields, oddKey, oddValue], viaJson) => {
        const raw: Record<string, unknown> = { ...fields };
        if (oddKey) raw[oddKey] = oddValue;
        // Over the wire every reading has been through JSON.parse; objects built in code need not have.
        const input: unknown = viaJson ? JSON.parse(JSON.stringify(raw)) : raw;
        const plain = parsePlainReading(input);
        const schema = ReadingSchema.safeParse(input);
        if (plain) {
          accepted++;
          expect(schema.success).toBe(true);
          expect(plain).toStrictEqual(schema.data);
        } else {
          refused++;
          // The schema may accept what the fast path leaves to it, but only for what JSON cannot carry.
          if (schema.success) expect(viaJson).toBe(false);
        }
      }),
      { numRuns: 20_000 },
    );
    // Both answers were exercised in earnest.
    expect(accepted).toBeGreaterThan(500);
    expect(refused).toBeGreaterThan(500);
  });

  it('leaves a "__proto__" field (an own key after JSON.parse) to the schema, which refuses it', () => {
    const raw = JSON.parse(`{"__proto__":1,"device":"d","kind":"asic","ts":${NOW},"power_w":1}`);
    expect(parsePlainReading(raw)).toBeUndefined();
    expect(ReadingSchema.safeParse(raw).success).toBe(false);
  });
});
