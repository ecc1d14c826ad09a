import { describe, expect, it } from 'vitest';
import { encodeReadRequest } from './client.ts';
import { meterReading } from './collector.ts';
import { EASTRON_SDM630, SCHNEIDER_PM5560 } from './meters.ts';
import { decodeRegisters, planReads, type RegisterMap, toMetricValue, unitFits } from './registers.ts';

/** Registers (16-bit words, most significant first) of a value written the way a meter does. */
function words(bytes: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i += 2) out.push(bytes.readUInt16BE(i));
  return out;
}

describe('decodeRegisters', () => {
  it('reads every type in big-endian word order (ABCD)', () => {
    const f32 = Buffer.alloc(4);
    f32.writeFloatBE(3250.5);
    expect(decodeRegisters(words(f32), 'f32', 'big')).toBe(3250.5);
    const f64 = Buffer.alloc(8);
    f64.writeDoubleBE(1234567.891);
    expect(decodeRegisters(words(f64), 'f64', 'big')).toBe(1234567.891);
    const i64 = Buffer.alloc(8);
    i64.writeBigInt64BE(-9_007_199_254_740_000n);
    expect(decodeRegisters(words(i64), 'i64', 'big')).toBe(-9_007_199_254_740_000);
    expect(decodeRegisters([0x0001, 0x86a0], 'u32', 'big')).toBe(100_000);
    expect(decodeRegisters([0xffff, 0xfffe], 'i32', 'big')).toBe(-2);
    expect(decodeRegisters([0xfffe], 'i16', 'big')).toBe(-2);
    expect(decodeRegisters([0xfffe], 'u16', 'big')).toBe(65534);
    expect(decodeRegisters([0, 0, 0x0001, 0x0000], 'u64', 'big')).toBe(65536);
  });

  it('reads little-endian word order (CDAB), as Carlo Gavazzi and many PDUs write', () => {
    expect(decodeRegisters([0x86a0, 0x0001], 'u32', 'little')).toBe(100_000);
    const f32 = Buffer.alloc(4);
    f32.writeFloatBE(-12.25);
    expect(decodeRegisters(words(f32).reverse(), 'f32', 'little')).toBe(-12.25);
  });

  it('refuses too few registers', () => {
    expect(() => decodeRegisters([1], 'u32', 'big')).toThrow(RangeError);
  });
});

describe('units and scale', () => {
  it('converts to the catalog units', () => {
    expect(toMetricValue(3.25, { address: 0, type: 'f32', unit: 'kW' })).toBe(3250);
    expect(toMetricValue(10, { address: 0, type: 'f32', unit: 'kWh' })).toBe(3.6e7);
    expect(toMetricValue(32505, { address: 0, type: 'i32', unit: 'W', scale: 0.1 })).toBeCloseTo(3250.5, 9);
    expect(unitFits('power_w', 'kW')).toBe(true);
    expect(unitFits('energy_j_total', 'kW')).toBe(false);
  });
});

describe('planReads', () => {
  it('reads nearby registers in one request and distant ones apart', () => {
    expect(planReads(EASTRON_SDM630).map((r) => [r.function, r.address, r.count])).toEqual([
      ['input', 52, 2],
      ['input', 72, 2],
    ]);
    const map: RegisterMap = {
      ...EASTRON_SDM630,
      fields: [
        { metric: 'power_w', address: 52, type: 'f32', unit: 'W' },
        { metric: 'cooling_power_w', address: 56, type: 'f32', unit: 'W' },
        { metric: 'energy_j_total', address: 0x48, type: 'f32', unit: 'kWh', function: 'holding' },
      ],
    };
    expect(planReads(map).map((r) => [r.function, r.address, r.count, r.fields.length])).toEqual([
      ['input', 52, 6, 2],
      ['holding', 72, 2, 1],
    ]);
  });

  it('never asks more than 125 registers at once', () => {
    const fields = Array.from({ length: 100 }, (_, i) => ({
      metric: 'power_w' as const,
      address: i * 2,
      type: 'f32' as const,
      unit: 'W' as const,
    }));
    const reads = planReads({ ...SCHNEIDER_PM5560, fields });
    expect(Math.max(...reads.map((r) => r.count))).toBeLessThanOrEqual(125);
    expect(reads.reduce((n, r) => n + r.fields.length, 0)).toBe(100);
  });
});

describe('the wire and the reading', () => {
  it('frames a read request with the MBAP header', () => {
    expect([...encodeReadRequest(0x1234, 1, 4, 52, 2)]).toEqual([0x12, 0x34, 0, 0, 0, 6, 1, 4, 0, 52, 0, 2]);
  });

  it('carries the configured allowance unless a register gives it', () => {
    const target = {
      device: 'main-meter',
      kind: 'meter' as const,
      model: 'eastron-sdm630',
      availablePowerW: 5e6,
    };
    expect(meterReading(target, 1, new Map([['power_w', 1234.5678]]))).toEqual({
      device: 'main-meter',
      kind: 'meter',
      ts: 1,
      status: 'ok',
      power_w: 1234.568,
      available_power_w: 5e6,
    });
    expect(
      meterReading(
        target,
        1,
        new Map([
          ['power_w', 1],
          ['available_power_w', 3e6],
          ['energy_j_total', 7.2e9],
        ]),
      ),
    ).toMatchObject({ available_power_w: 3e6, extras: { energy_j_total: 7.2e9 } });
  });
});
