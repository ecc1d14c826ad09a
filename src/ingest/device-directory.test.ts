import { describe, expect, it } from 'vitest';
import { DEVICE_KINDS } from '../storage/schema.ts';
import { idOf, kindOf, packDevice } from './device-directory.ts';

describe('a known device packed into one number', () => {
  it('gives back its id and kind, for every kind, from the first id to ids past 32 bits', () => {
    const ids = [1, 2, 7, 8, 268_435_455, 268_435_456, 2 ** 31 + 3, 2 ** 48 - 1];
    for (const [k, kind] of DEVICE_KINDS.entries()) {
      for (const id of ids) {
        const packed = packDevice(id, kind);
        expect(idOf(packed), `${kind} ${id}`).toBe(id);
        expect(kindOf(packed), `${kind} ${id}`).toBe(k);
      }
    }
  });

  it('never gives two devices the same number', () => {
    const seen = new Set<number>();
    for (const kind of DEVICE_KINDS) for (let id = 1; id <= 1000; id++) seen.add(packDevice(id, kind));
    expect(seen.size).toBe(DEVICE_KINDS.length * 1000);
  });
});
