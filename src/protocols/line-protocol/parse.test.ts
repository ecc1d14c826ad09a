import { Point as InfluxPoint } from '@influxdata/influxdb-client';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type LineError,
  type Point,
  type Precision,
  parseLineProtocol,
  parsePrecision,
  timestampToMicros,
} from './parse.ts';

function parse(text: string, precision: Precision = 'ns') {
  const points: Point[] = [];
  const errors: LineError[] = [];
  parseLineProtocol(
    text,
    precision,
    (p) => points.push(p),
    (e) => errors.push(e),
  );
  return { points, errors };
}

describe('parseLineProtocol', () => {
  it('reads measurement, tags, every field type and the timestamp', () => {
    const { points, errors } = parse(
      'nvidia_smi,host=gpu-node-07,index=3,name=NVIDIA\\ H100 power_draw=612.5,memory_used=81000i,fan_speed=30u,ok=t,driver_version="550.54.15" 1764583200123456789',
    );
    expect(errors).toEqual([]);
    expect(points).toEqual([
      {
        line: 1,
        measurement: 'nvidia_smi',
        tagKeys: ['host', 'index', 'name'],
        tagValues: ['gpu-node-07', '3', 'NVIDIA H100'],
        fieldKeys: ['power_draw', 'memory_used', 'fan_speed', 'ok', 'driver_version'],
        fieldValues: [
          { type: 'float', value: 612.5 },
          { type: 'integer', value: 81000, exact: true },
          { type: 'unsigned', value: 30, exact: true },
          { type: 'boolean', value: true },
          { type: 'string', value: '550.54.15' },
        ],
        tsUs: 1764583200123456,
      },
    ]);
  });

  it('applies each escaping rule where it belongs', () => {
    const { points, errors } = parse(
      'my\\ meas\\,ure=x,tag\\ k\\=ey=v\\,a\\ l\\=ue field\\ k\\=ey="q\\"uo\\\\te\\d",f2=1 10',
    );
    expect(errors).toEqual([]);
    const p = points[0]!;
    expect(p.measurement).toBe('my meas,ure=x'); // `=` needs no escape in a measurement
    expect(p.tagKeys).toEqual(['tag k=ey']);
    expect(p.tagValues).toEqual(['v,a l=ue']);
    expect(p.fieldKeys).toEqual(['field k=ey', 'f2']);
    expect(p.fieldValues[0]).toEqual({ type: 'string', value: 'q"uo\\te\\d' }); // `\d` stays literal
  });

  it('skips comments and blank lines, counts lines across multi-line strings and CRLF', () => {
    const text = '# a comment\n\n  \nm f=1 1\r\nm s="two\nlines" 2\n   # indented comment\nm f=3 3\n';
    const { points, errors } = parse(text, 's');
    expect(errors).toEqual([]);
    expect(points.map((p) => [p.line, p.tsUs])).toEqual([
      [4, 1_000_000],
      [5, 2_000_000],
      [8, 3_000_000],
    ]);
  });

  it('reports each bad line with its number and keeps the good ones', () => {
    const text = [
      'm f=1 1', // 1 good
      'm', // 2 no fields
      'm,t f=1', // 3 tag without value
      'm f=', // 4 empty value
      'm f=1x', // 5 bad value
      'm s="open', // 6 unterminated (runs to the end)
    ].join('\n');
    const { points, errors } = parse(text);
    expect(points.map((p) => p.line)).toEqual([1]);
    expect(errors.map((e) => [e.line, e.code])).toEqual([
      [2, 'missing_fields'],
      [3, 'bad_tag'],
      [4, 'bad_field_value'],
      [5, 'bad_field_value'],
      [6, 'unterminated_string'],
    ]);
  });

  it('refuses out-of-range integers, bad timestamps and garbage after the timestamp', () => {
    const { errors, points } = parse(
      [
        'm i=9223372036854775808i',
        'm u=-1u',
        'm f=1 12abc',
        'm f=1 1 2',
        'm f=1e999',
        'm f=NaN',
        'm,a=b=c f=1',
      ].join('\n'),
    );
    expect(points).toEqual([]);
    expect(errors.map((e) => e.code)).toEqual([
      'integer_out_of_range',
      'bad_unsigned',
      'bad_timestamp',
      'trailing_garbage',
      'bad_field_value',
      'bad_field_value',
      'bad_escape',
    ]);
  });

  it('flags integers a double cannot hold exactly', () => {
    const { points } = parse('m a=9007199254740993i,b=9007199254740991i');
    expect(points[0]!.fieldValues).toEqual([
      { type: 'integer', value: 9007199254740992, exact: false },
      { type: 'integer', value: 9007199254740991, exact: true },
    ]);
  });

  it('bounds tags, fields and token length', () => {
    const tags = Array.from({ length: 65 }, (_, i) => `t${i}=v`).join(',');
    const fields = Array.from({ length: 257 }, (_, i) => `f${i}=1`).join(',');
    const { errors } = parse([`m,${tags} f=1`, `m ${fields}`, `m,t=${'x'.repeat(5000)} f=1`].join('\n'));
    expect(errors.map((e) => e.code)).toEqual(['too_many_tags', 'too_many_fields', 'token_too_long']);
    expect(errors[2]!.text.length).toBeLessThanOrEqual(200);
  });
});

describe('timestampToMicros', () => {
  it('converts every precision exactly, flooring nanoseconds', () => {
    expect(timestampToMicros('1764583200123456789', 'ns')).toBe(1764583200123456);
    expect(timestampToMicros('-1500', 'ns')).toBe(-2);
    expect(timestampToMicros('-1000', 'ns')).toBe(-1);
    expect(timestampToMicros('1764583200123456', 'us')).toBe(1764583200123456);
    expect(timestampToMicros('1764583200123', 'ms')).toBe(1764583200123000);
    expect(timestampToMicros('1764583200', 's')).toBe(1764583200000000);
    expect(timestampToMicros('29409720', 'm')).toBe(1764583200000000);
    expect(timestampToMicros('9223372036854775807', 'ns')).toBeUndefined(); // year 2262: past 2^53 µs
    expect(timestampToMicros('99999999999', 's')).toBeUndefined();
  });

  it('fuzz: agrees with BigInt floor division for nanoseconds', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 62n), max: 2n ** 62n }), (ns) => {
        const expected = ns >= 0n ? ns / 1000n : -((-ns + 999n) / 1000n);
        const got = timestampToMicros(ns.toString(), 'ns');
        if (expected > BigInt(Number.MAX_SAFE_INTEGER) || expected < -BigInt(Number.MAX_SAFE_INTEGER))
          return got === undefined;
        return got === Number(expected);
      }),
      { numRuns: 5000 },
    );
  });

  it('parsePrecision knows the v1 and v2 names', () => {
    expect(['ns', 'n', 'us', 'u', 'ms', 's', 'm', 'h', undefined, 'x'].map(parsePrecision)).toEqual([
      'ns',
      'ns',
      'us',
      'us',
      'ms',
      's',
      'm',
      'h',
      'ns',
      undefined,
    ]);
  });
});

describe('parseLineProtocol fuzz', () => {
  it('never throws on arbitrary text, and every non-comment line is a point or an error', () => {
    const chars = fc.constantFrom(...'ab =,\\"\n\r\t#1i.-eTu '.split(''));
    fc.assert(
      fc.property(
        fc.array(chars, { maxLength: 200 }).map((a) => a.join('')),
        fc.string({ maxLength: 100 }),
        (a, b) => {
          for (const text of [a, b]) {
            const { points, errors } = parse(text);
            for (const e of errors) expect(e.line).toBeGreaterThan(0);
            for (const p of points) expect(p.measurement.length).toBeGreaterThan(0);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  // The official client's encoder is the reference: whatever it writes must parse back to what it
  // was given. Its limits are excluded from the input: it rewrites \n, \r and \t in names as `\n`
  // text, a name ending in a backslash cannot be told from an escape, and it keeps tags and fields
  // in plain objects, where `__proto__` is no key.
  const name = fc
    .string({ minLength: 1, maxLength: 20, unit: 'grapheme' })
    .filter((s) => !/[\n\r\t]/.test(s) && !s.endsWith('\\') && s.isWellFormed() && s !== '__proto__');
  const measurement = name.filter((s) => !s.startsWith('#') && s.trim() === s && s !== '');
  const field = fc.oneof(
    fc.record({
      type: fc.constant('float' as const),
      value: fc.double({ noNaN: true, noDefaultInfinity: true }),
    }),
    fc.record({
      type: fc.constant('integer' as const),
      value: fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }),
    }),
    fc.record({ type: fc.constant('unsigned' as const), value: fc.integer({ min: 0, max: 2 ** 53 - 1 }) }),
    fc.record({
      type: fc.constant('string' as const),
      value: fc.string({ maxLength: 30 }).filter((s) => s.isWellFormed()),
    }),
    fc.record({ type: fc.constant('boolean' as const), value: fc.boolean() }),
  );
  const point = fc.record({
    measurement,
    tags: fc.dictionary(
      name.filter((s) => s.trim() === s),
      name,
      { maxKeys: 4 },
    ),
    fields: fc.dictionary(
      name.filter((s) => s.trim() === s),
      field,
      { minKeys: 1, maxKeys: 4 },
    ),
    ts: fc.option(fc.bigInt({ min: 0n, max: 2n ** 62n }), { nil: undefined }),
  });

  it('round-trips what @influxdata/influxdb-client Point writes', () => {
    fc.assert(
      fc.property(fc.array(point, { minLength: 1, maxLength: 5 }), (list) => {
        const lines: string[] = [];
        for (const p of list) {
          const ip = new InfluxPoint(p.measurement);
          for (const [k, v] of Object.entries(p.tags)) ip.tag(k, v);
          for (const [k, f] of Object.entries(p.fields)) {
            if (f.type === 'float') ip.floatField(k, f.value);
            else if (f.type === 'integer') ip.intField(k, f.value);
            else if (f.type === 'unsigned') ip.uintField(k, f.value);
            else if (f.type === 'string') ip.stringField(k, f.value);
            else ip.booleanField(k, f.value);
          }
          // An empty timestamp stops the client from stamping the current time.
          ip.timestamp(p.ts === undefined ? '' : p.ts.toString());
          const lp = ip.toLineProtocol();
          if (lp !== undefined) lines.push(lp);
        }
        const { points, errors } = parse(lines.join('\n'));
        expect(errors).toEqual([]);
        expect(points).toHaveLength(lines.length);
        points.forEach((got, i) => {
          const want = list[i]!;
          expect(got.measurement).toBe(want.measurement);
          // The client sorts tags and fields by key.
          expect(Object.fromEntries(got.tagKeys.map((k, j) => [k, got.tagValues[j]]))).toEqual(
            Object.fromEntries(Object.entries(want.tags).filter(([, v]) => v !== '')),
          );
          const fields = Object.fromEntries(got.fieldKeys.map((k, j) => [k, got.fieldValues[j]]));
          for (const [k, f] of Object.entries(want.fields)) {
            const g = fields[k]!;
            expect(g.type).toBe(f.type);
            if (f.type === 'float')
              expect(g.value).toBe(f.value === 0 ? 0 : f.value); // -0 prints as 0
            else expect(g.value).toBe(f.value);
          }
          const wantUs = want.ts === undefined ? undefined : Number(want.ts / 1000n);
          expect(got.tsUs).toBe(wantUs);
        });
      }),
      { numRuns: 500 },
    );
  });
});
