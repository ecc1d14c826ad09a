import { describe, expect, it } from 'vitest';
import { expandRange, formatIpv4, parseIpv4 } from './address-range.ts';

const addresses = (spec: string) => {
  const r = expandRange(spec);
  if (!r.ok) throw new Error(r.message);
  return r.addresses;
};

describe('address ranges', () => {
  it('expands networks without their network and broadcast addresses', () => {
    const a = addresses('10.0.1.0/24');
    expect(a).toHaveLength(254);
    expect([a[0], a.at(-1)]).toEqual(['10.0.1.1', '10.0.1.254']);
    expect(addresses('10.0.1.4/31')).toEqual(['10.0.1.4', '10.0.1.5']);
    expect(addresses('10.0.1.7/32')).toEqual(['10.0.1.7']);
  });

  it('expands dashed ranges, long and short, across octets', () => {
    expect(addresses('127.0.0.2-127.0.0.4')).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    expect(addresses('10.0.1.10-12')).toEqual(['10.0.1.10', '10.0.1.11', '10.0.1.12']);
    expect(addresses('10.0.1.255-10.0.2.1')).toEqual(['10.0.1.255', '10.0.2.0', '10.0.2.1']);
  });

  it('says what is wrong instead of guessing', () => {
    for (const bad of [
      '10.0.1.0/33',
      '10.0.1.1/24',
      '10.0.256.1',
      '10.0.01.1',
      'miner-17',
      '10.0.1.9-10.0.1.2',
      '10.0.1.250-3',
      '10.0.0.0/8',
    ]) {
      const r = expandRange(bad);
      expect(r.ok, bad).toBe(false);
    }
    expect(expandRange('10.0.1.9-10.0.1.2')).toMatchObject({
      message: expect.stringContaining('ends before'),
    });
    expect(expandRange('10.0.0.0/8')).toMatchObject({ message: expect.stringContaining('more than') });
  });

  it('round-trips addresses', () => {
    for (const a of ['0.0.0.0', '127.0.0.1', '255.255.255.255', '10.20.30.40'])
      expect(formatIpv4(parseIpv4(a)!)).toBe(a);
  });
});
