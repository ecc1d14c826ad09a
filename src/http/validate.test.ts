import { describe, expect, it } from 'vitest';
import { canonicalId, findJsonProblem, isNumberKept, MAX_ID, unstorableText } from './validate.ts';

describe('canonicalId', () => {
  it.each(['1', '44', '2147483647'])('reads %s', (raw) => {
    expect(canonicalId(raw)).toBe(Number(raw));
  });

  it.each([
    '0',
    '-1',
    '+44',
    '044',
    '44.0',
    '0x2c',
    '44e0',
    ' 44',
    '44 ',
    '4_4',
    '２',
    '',
    '2147483648',
    '9007199254740991',
    '99999999999',
  ])('refuses %j', (raw) => {
    expect(canonicalId(raw)).toBeUndefined();
  });

  it('stops at the largest integer Postgres stores', () => {
    expect(canonicalId(String(MAX_ID))).toBe(MAX_ID);
    expect(canonicalId(String(MAX_ID + 1))).toBeUndefined();
  });
});

describe('unstorableText', () => {
  it.each(['', 'NO-3', 'Europe/Oslo', 'caf\u00e9 \u{1F600}', '\ufffd'])('accepts %j', (text) => {
    expect(unstorableText(text)).toBeUndefined();
  });

  it.each(['\u0000', 'a\u0000b', '\ud800', 'x\udfff', '\udc00\ud800'])('refuses %j', (text) => {
    expect(unstorableText(text)).toBeTypeOf('string');
  });
});

describe('findJsonProblem', () => {
  const limits = { maxDepth: 4, maxBytes: 1000 };
  const nested = (depth: number): unknown => (depth === 0 ? 1 : { a: nested(depth - 1) });

  it('accepts plain JSON within the bounds, an own __proto__ key included', () => {
    expect(findJsonProblem(JSON.parse('{"__proto__":{"x":[1,true,null,"s"]}}'), limits)).toBeUndefined();
    expect(findJsonProblem(nested(4), limits)).toBeUndefined();
  });

  it('names the path of the first problem', () => {
    expect(findJsonProblem({ a: { b: 'x\u0000' } }, limits)).toMatchObject({ path: ['a', 'b'] });
    expect(findJsonProblem({ a: ['ok', '\ud800'] }, limits)).toMatchObject({ path: ['a', 1] });
    expect(findJsonProblem({ 'k\u0000': 1 }, limits)).toMatchObject({ path: ['k\u0000'] });
    expect(findJsonProblem({ big: Number.POSITIVE_INFINITY }, limits)).toMatchObject({ path: ['big'] });
    expect(findJsonProblem(nested(5), limits)).toMatchObject({ path: ['a', 'a', 'a', 'a'] });
  });

  it('stops at the depth bound however deep the value goes', () => {
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    expect(findJsonProblem(deep, limits)?.message).toMatch(/nested deeper than 4/);
  });

  it('bounds the size', () => {
    expect(findJsonProblem({ s: 'x'.repeat(2000) }, limits)?.message).toMatch(/larger than 1000 bytes/);
  });
});

describe('isNumberKept', () => {
  it('keeps every literal a double writes back as the same decimal', () => {
    for (const [source, parsed] of [
      ['0', 0],
      ['-0', -0],
      ['0.1', 0.1],
      ['1.50', 1.5],
      ['1e21', 1e21],
      ['1E+2', 100],
      ['-273.15', -273.15],
      ['9007199254740991', 9007199254740991],
      ['0.000001', 0.000001],
      ['5e-324', 5e-324],
    ] as const) {
      expect(isNumberKept(source, parsed), source).toBe(true);
    }
  });

  it('refuses literals a double alters: past 2^53, too many digits, underflow, overflow', () => {
    for (const source of [
      '12345678901234567890',
      '9007199254740993',
      '0.1000000000000000000001',
      '1e-400',
      '1e309',
    ]) {
      expect(isNumberKept(source, JSON.parse(source) as number), source).toBe(false);
    }
  });
});
