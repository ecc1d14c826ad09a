import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadScenario } from '../scenario.ts';
import {
  countFields,
  escapeMeasurement,
  escapeTag,
  formatFieldValue,
  formatLine,
  LineProtocolGenerator,
} from './line-protocol.ts';
import { LoadGenerator } from './templates.ts';

interface ParsedLine {
  measurement: string;
  tags: Record<string, string>;
  fields: Record<string, number | string | boolean>;
  ts: number | undefined;
}

/** Reads up to an unescaped `stop` character from `at`, unescaping; returns the text and where it stopped. */
function readUntil(s: string, at: number, stop: string): [string, number] {
  let out = '';
  let i = at;
  for (; i < s.length && !stop.includes(s[i]!); i++) out += s[i] === '\\' ? s[++i] : s[i];
  return [out, i];
}

/** A small reader of line protocol, independent of `formatLine`, to check escaping round trips. */
function parseLine(line: string): ParsedLine {
  let [measurement, i] = readUntil(line, 0, ', ');
  const tags: Record<string, string> = {};
  while (line[i] === ',') {
    const [k, eq] = readUntil(line, i + 1, '=');
    const [v, next] = readUntil(line, eq + 1, ', ');
    tags[k] = v;
    i = next;
  }
  const fields: Record<string, number | string | boolean> = {};
  do {
    const [k, eq] = readUntil(line, i + 1, '=');
    if (line[eq + 1] === '"') {
      const [v, close] = readUntil(line, eq + 2, '"');
      fields[k] = v;
      i = close + 1;
    } else {
      const [raw, next] = readUntil(line, eq + 1, ', ');
      fields[k] = raw === 'true' ? true : raw === 'false' ? false : Number(raw);
      i = next;
    }
  } while (line[i] === ',');
  const ts = i < line.length ? Number(line.slice(i + 1)) : undefined;
  return { measurement, tags, fields, ts };
}

describe('escapeTag', () => {
  it('escapes spaces, commas, equals signs and backslashes', () => {
    expect(escapeTag('S21 Pro')).toBe('S21\\ Pro');
    expect(escapeTag('a,b=c')).toBe('a\\,b\\=c');
    expect(escapeTag('back\\slash')).toBe('back\\\\slash');
    expect(escapeTag('trailing\\')).toBe('trailing\\\\');
    expect(escapeTag('hall-1/r001/s21-001')).toBe('hall-1/r001/s21-001');
    expect(escapeTag('é "q"')).toBe('é\\ "q"');
  });

  it('refuses newlines, which line protocol cannot carry', () => {
    expect(() => escapeTag('a\nb')).toThrow(/newline/);
    expect(() => escapeTag('a\rb')).toThrow(/newline/);
  });
});

describe('escapeMeasurement', () => {
  it('escapes spaces, commas and backslashes but not equals signs', () => {
    expect(escapeMeasurement('asic')).toBe('asic');
    expect(escapeMeasurement('my asic,x=1\\')).toBe('my\\ asic\\,x=1\\\\');
  });

  it('refuses empty names and newlines', () => {
    expect(() => escapeMeasurement('')).toThrow(/empty/);
    expect(() => escapeMeasurement('a\nb')).toThrow(/newline/);
  });
});

describe('formatFieldValue', () => {
  it('writes numbers as floats that read back exactly', () => {
    expect(formatFieldValue(3512)).toBe('3512');
    expect(formatFieldValue(64.5)).toBe('64.5');
    expect(formatFieldValue(-12.25)).toBe('-12.25');
    expect(formatFieldValue(-0)).toBe('0');
    expect(formatFieldValue(1e21)).toBe('1e+21');
    expect(formatFieldValue(1e-7)).toBe('1e-7');
    expect(formatFieldValue(0.1 + 0.2)).toBe('0.30000000000000004');
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (v) => {
        const text = formatFieldValue(v);
        expect(text).toMatch(/^-?\d+(\.\d+)?(e[+-]\d+)?$/);
        expect(Number(text)).toBe(v === 0 ? 0 : v);
      }),
    );
  });

  it('refuses NaN and infinities', () => {
    expect(() => formatFieldValue(Number.NaN)).toThrow(/not finite/);
    expect(() => formatFieldValue(Number.POSITIVE_INFINITY)).toThrow(/not finite/);
    expect(() => formatFieldValue(Number.NEGATIVE_INFINITY)).toThrow(/not finite/);
  });

  it('writes booleans bare and strings quoted with quotes and backslashes escaped', () => {
    expect(formatFieldValue(true)).toBe('true');
    expect(formatFieldValue(false)).toBe('false');
    expect(formatFieldValue('ok')).toBe('"ok"');
    expect(formatFieldValue('say "hi", a\\b')).toBe('"say \\"hi\\", a\\\\b"');
  });
});

describe('formatLine', () => {
  it('writes measurement, tags, fields and the ms timestamp', () => {
    expect(
      formatLine(
        'asic',
        { site: 'tx 1', device: 'r1/s21-001', model: 'S21 Pro' },
        { power_w: 3500.5, fan_rpm: 4310 },
        1_700_000_000_123,
      ),
    ).toBe('asic,site=tx\\ 1,device=r1/s21-001,model=S21\\ Pro power_w=3500.5,fan_rpm=4310 1700000000123');
  });

  it('leaves out empty tag values and the timestamp when not given', () => {
    expect(formatLine('m', { a: '', b: 'x' }, { v: 1 })).toBe('m,b=x v=1');
  });

  it('refuses a line without fields and a non-integer timestamp', () => {
    expect(() => formatLine('m', {}, {})).toThrow(/at least one field/);
    expect(() => formatLine('m', {}, { v: 1 }, 1.5)).toThrow(/not an integer/);
  });

  it('round-trips any tag, key and string value without newlines', () => {
    const text = fc.string({ maxLength: 12 }).filter((s) => !/[\n\r]/.test(s));
    const key = text.filter((s) => s !== '' && s !== '__proto__');
    fc.assert(
      fc.property(
        key,
        fc.dictionary(key, key),
        key,
        fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), text, fc.boolean()),
        fc.integer({ min: 0, max: 2 ** 45 }),
        (measurement, tags, fieldKey, value, ts) => {
          const parsed = parseLine(formatLine(measurement, tags, { [fieldKey]: value }, ts));
          expect(parsed.measurement).toBe(measurement);
          expect(parsed.tags).toEqual(tags);
          expect(parsed.fields).toEqual({ [fieldKey]: typeof value === 'number' && value === 0 ? 0 : value });
          expect(parsed.ts).toBe(ts);
        },
      ),
    );
  });
});

describe('countFields', () => {
  it('counts fields past escaped tags and quoted strings', () => {
    expect(countFields('m v=1 1')).toBe(1);
    expect(countFields('asic,model=S21\\ Pro,x=a\\,b power_w=1,temp_c=2 1700000000000')).toBe(2);
    expect(countFields('m a="x, y z",b=2,c=true')).toBe(3);
    expect(countFields('m,t="q a"=1,"b=2 1')).toBe(2);
    expect(countFields('m s="a \\" b, c" 1')).toBe(1);
    expect(countFields('m\\ x\\,y,t=1 a=1,b=2,c=3,d=4,e=5 1')).toBe(5);
  });
});

describe('LineProtocolGenerator', () => {
  const [site] = loadScenario('load', { scale: 0.001 }).sites; // 30 S21 + 20 S21 Pro
  const startMs = 1_700_000_000_000;

  it('renders the same readings as the JSON load generator, with escaped tags', () => {
    const json = new LoadGenerator(site!, 7, 'epoch_ms');
    const lines = new LineProtocolGenerator(site!, 7);
    expect(lines.devices).toEqual(json.devices);
    // 40 cycles over 50 devices: every value variant of both models, and repeats within 1 ms.
    const expected: { json: string; d: number; ts: number }[] = [];
    json.emit(2_000, startMs, 500, (j, d, ts) => expected.push({ json: j, d, ts }));
    const got: { line: string; d: number; ts: number }[] = [];
    lines.emit(2_000, startMs, 500, (line, d, ts) => got.push({ line, d, ts }));
    expect(got).toHaveLength(expected.length);
    for (let i = 0; i < got.length; i++) {
      const e = expected[i]!;
      const g = got[i]!;
      expect([g.d, g.ts]).toEqual([e.d, e.ts]);
      const r = JSON.parse(e.json) as Record<string, number | string>;
      expect(parseLine(g.line)).toEqual({
        measurement: r.kind,
        tags: { site: site!.name, device: r.device, model: r.model, status: r.status },
        fields: {
          power_w: r.power_w,
          hashrate_ths: r.hashrate_ths,
          expected_hashrate_ths: r.expected_hashrate_ths,
          temp_c: r.temp_c,
          fan_rpm: r.fan_rpm,
        },
        ts: e.ts,
      });
      expect(countFields(g.line)).toBe(5);
    }
    expect(got.some((g) => g.line.includes(',model=S21\\ Pro,status=ok '))).toBe(true);
    // Value sets are rendered once: 16 variants per model at most.
    expect(lines.valueSets).toBeLessThanOrEqual(32);
  });

  it('escapes the site name and renders newline-terminated bodies', () => {
    const odd = { ...site!, name: 'hall a,b=c' };
    const body = new LineProtocolGenerator(odd, 1).render(120, startMs, 1000);
    const lines = body.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(120);
    for (const line of lines) {
      expect(line.startsWith('asic,site=hall\\ a\\,b\\=c,device=hall-1/r001/')).toBe(true);
      expect(parseLine(line).tags.site).toBe('hall a,b=c');
      expect(line).toMatch(/ \d{13}$/);
    }
  });

  it('gives each device strictly increasing timestamps, as the JSON generator does', () => {
    const gen = new LineProtocolGenerator(site!, 1);
    const last = new Map<number, number>();
    for (let batch = 0; batch < 10; batch++) {
      gen.emit(137, startMs + batch, 1, (_line, d, ts) => {
        expect(ts).toBeGreaterThan(last.get(d) ?? -1);
        last.set(d, ts);
      });
    }
  });
});
