import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from './cursor.ts';

describe('device listing cursor', () => {
  it('round-trips any device name, slashes and non-ASCII included', () => {
    for (const name of ['a', 'hall-a/r01/s21-001', 'gpu-01/0', 'ñ😀/x', 'x'.repeat(128), 'a b=c&d']) {
      const cursor = encodeCursor(name);
      expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decodeCursor(cursor)).toBe(name);
    }
  });

  it('refuses what it did not write', () => {
    const valid = encodeCursor('dev-1');
    const refused = [
      '',
      '!!!',
      `${valid}=`,
      `${valid}.`,
      valid.slice(0, -1),
      Buffer.from('not json').toString('base64url'),
      Buffer.from('"dev-1"').toString('base64url'),
      Buffer.from('{"after":""}').toString('base64url'),
      Buffer.from('{"after":1}').toString('base64url'),
      Buffer.from('{"after":"a","x":1}').toString('base64url'),
      Buffer.from('{"after":"a\\u0000b"}').toString('base64url'),
      Buffer.from('{"after":"\\ud800"}').toString('base64url'),
      Buffer.from(`{"after":"${'x'.repeat(129)}"}`).toString('base64url'),
      Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url'),
      'A'.repeat(5000),
    ];
    for (const cursor of refused) expect(decodeCursor(cursor), cursor.slice(0, 40)).toBeUndefined();
  });
});
