import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { int64ToNumber, nanosToMicros, ProtoError, ProtoReader } from './reader.ts';

describe('ProtoReader against protobufjs Writer', () => {
  it('fuzz: reads back uint32, int64, double, fixed64 and strings exactly', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 2 ** 32 - 1 }),
        fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
        fc.double(),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.string({ maxLength: 80, unit: 'grapheme' }),
        (u, i, d, ns, s) => {
          const w = protobuf.Writer.create();
          const lo = Number(ns & 0xffffffffn);
          const hi = Number(ns >> 32n);
          w.uint32(u).int64(i).double(d).fixed32(lo).fixed32(hi).string(s); // fixed64 = two LE halves
          const r = new ProtoReader(w.finish());
          expect(r.uint32()).toBe(u);
          expect(r.int64()).toBe(i);
          expect(Object.is(r.double(), d)).toBe(true);
          const f = r.fixed64();
          expect(BigInt(f.hi) * 2n ** 32n + BigInt(f.lo)).toBe(ns);
          const us = ns / 1000n;
          if (us <= BigInt(Number.MAX_SAFE_INTEGER)) expect(nanosToMicros(f.lo, f.hi)).toBe(Number(us));
          expect(r.string()).toBe(s);
          r.done();
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('int64ToNumber handles two’s complement', () => {
    expect(int64ToNumber(0xffffffff, 0xffffffff)).toBe(-1);
    expect(int64ToNumber(0, 0x80000000)).toBe(-(2 ** 63));
    expect(int64ToNumber(5, 0)).toBe(5);
  });

  it('malformed input raises ProtoError (caught by each decoder), never reads out of bounds', () => {
    const bad = [
      [0x80], // truncated varint
      [0xff, 0xff, 0xff, 0xff, 0x1f], // varint past 32 bits where a uint32 is due
      [0x0a], // length missing
    ];
    for (const bytes of bad)
      expect(() => new ProtoReader(Uint8Array.from(bytes)).length()).toThrow(ProtoError);
    const r = new ProtoReader(Uint8Array.from([0x05, 0x61]));
    expect(() => r.string()).toThrow(/runs past the end/);
    expect(() => new ProtoReader(Uint8Array.from([0x02, 0xc3, 0x28])).string()).toThrow(/UTF-8/);
    expect(() => new ProtoReader(Uint8Array.from([0x01])).double()).toThrow(ProtoError);
    expect(() => new ProtoReader(Uint8Array.from([0x00])).skip(7)).toThrow(/wire type/);
  });
});
