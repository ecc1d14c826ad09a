import { describe, expect, it } from 'vitest';
import { parseCgminerReply, ReplyCompletion } from './repair.ts';

const ok = (text: string) => {
  const r = parseCgminerReply(text);
  if (!r.ok) throw new Error(`expected a repair, got ${r.reason}: ${r.message}`);
  return r;
};

describe('parseCgminerReply', () => {
  it('reads a clean reply and reports nothing repaired', () => {
    const r = ok('{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"GHS 5s":"104012.34"}],"id":1}');
    expect(r.repairs).toEqual([]);
    expect(r.value).toEqual({ STATUS: [{ STATUS: 'S' }], SUMMARY: [{ 'GHS 5s': '104012.34' }], id: 1 });
  });

  it('drops the trailing NUL, and what a reused buffer left after it', () => {
    expect(ok('{"id":1}\0').repairs).toEqual(['trailing_nul']);
    expect(ok('{"id":1}\0\0\n').value).toEqual({ id: 1 });
    expect(ok('{"id":1}\0{"old":').value).toEqual({ id: 1 });
  });

  it("repairs bmminer's stats: the missing comma between objects and the trailing comma", () => {
    const text =
      '{"STATUS":[{"STATUS":"S","Msg":"CGMiner stats"}],"STATS":[{"BMMiner":"1.0.0","Type":"Antminer S19j Pro"}{"STATS":0,"fan1":5400,"chain_rate1":"34600.12",}],"id":1}\0';
    const r = ok(text);
    expect(r.repairs).toEqual(expect.arrayContaining(['missing_comma', 'trailing_comma', 'trailing_nul']));
    expect((r.value as { STATS: unknown[] }).STATS).toEqual([
      { BMMiner: '1.0.0', Type: 'Antminer S19j Pro' },
      { STATS: 0, fan1: 5400, chain_rate1: '34600.12' },
    ]);
  });

  it('repairs `,]`, `[,{` and `,,`', () => {
    expect(ok('{"POOLS":[,{"POOL":0},{"POOL":1},]}').value).toEqual({ POOLS: [{ POOL: 0 }, { POOL: 1 }] });
    expect(ok('{"POOLS":[,{"POOL":0}]}').repairs).toContain('leading_comma');
    expect(ok('{"a":1,,"b":2}').value).toEqual({ a: 1, b: 2 });
  });

  it('reads bare inf and nan as null, never as a number', () => {
    const r = ok(
      '{"SUMMARY":[{"Device Hardware%":nan,"Pool Rejected%":inf,"x":-inf,"y":-nan,"Accepted":12}]}',
    );
    expect(r.repairs).toContain('non_finite');
    expect(r.value).toEqual({
      SUMMARY: [{ 'Device Hardware%': null, 'Pool Rejected%': null, x: null, y: null, Accepted: 12 }],
    });
  });

  it('leaves "inf" and "nan" inside strings alone', () => {
    expect(ok('{"Msg":"inf nan ,} }{ [,{","a":nan}').value).toEqual({ Msg: 'inf nan ,} }{ [,{', a: null });
  });

  it('escapes raw control characters inside strings', () => {
    const r = ok('{"Description":"line one\nline two\tend","a":nan}');
    expect(r.repairs).toContain('control_character');
    expect((r.value as { Description: string }).Description).toBe('line one\nline two\tend');
  });

  it('merges top-level objects written back to back', () => {
    const r = ok('{"STATUS":"S","a":1}{"b":2,"a":3}');
    expect(r.repairs).toContain('concatenated');
    expect(r.value).toEqual({ STATUS: 'S', a: 1, b: 2 });
  });

  it('reports a truncated reply instead of guessing its end', () => {
    for (const cut of [
      '{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"GHS 5s":1',
      '{"SUMMARY":[{"Msg":"half',
      '{"a":[1,2',
    ]) {
      const r = parseCgminerReply(cut);
      expect(r.ok, cut).toBe(false);
      if (!r.ok) expect(r.reason).toBe('truncated');
    }
  });

  it('reports what no repair can read, and an empty answer', () => {
    const bad = parseCgminerReply('{"a":1]');
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.reason).toBe('malformed');
    const word = parseCgminerReply('{"a":bogus}');
    expect(word.ok).toBe(false);
    const empty = parseCgminerReply('\0');
    expect(empty.ok).toBe(false);
    if (!empty.ok) expect(empty.reason).toBe('empty');
  });
});

describe('ReplyCompletion', () => {
  const feed = (...chunks: string[]) => {
    const c = new ReplyCompletion();
    return chunks.map((chunk) => c.feed(Buffer.from(chunk)));
  };

  it('completes at a NUL or when the top-level value closes', () => {
    expect(feed('{"a":', '[1,2]', '}')).toEqual([false, false, true]);
    expect(feed('{"a":1', '\0')).toEqual([false, true]);
  });

  it('is not fooled by brackets and quotes inside strings', () => {
    expect(feed('{"Msg":"} ] \\" }"', ',"b":1}')).toEqual([false, true]);
  });
});
