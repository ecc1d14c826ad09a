import { afterEach, describe, expect, it } from 'vitest';
import {
  type MeterFault,
  type SimMeterModel,
  SimulatedMeter,
} from '../../simulators/protocols/modbus-meter.ts';
import { type MeterTarget, PollError } from '../../src/agent/collectors/collector.ts';
import { ModbusCollector } from '../../src/agent/collectors/modbus/collector.ts';
import { METER_MAPS } from '../../src/agent/collectors/modbus/meters.ts';
import { context } from './support.ts';

const meters: SimulatedMeter[] = [];
afterEach(async () => {
  await Promise.all(meters.splice(0).map((m) => m.close()));
});

async function meter(model: SimMeterModel, options: { fault?: MeterFault; signalUnitId?: number } = {}) {
  const m = new SimulatedMeter({ host: '127.0.0.1', port: 0, model, ...options });
  m.update(1_234_567.8, 2_500_000);
  await m.listen();
  meters.push(m);
  return m;
}

function target(m: SimulatedMeter, extra: Partial<MeterTarget> = {}): MeterTarget {
  return {
    type: 'meter',
    id: `meter:${m.model}`,
    host: m.host,
    port: m.port,
    unitId: 1,
    device: 'main-meter',
    kind: 'meter',
    model: m.model,
    map: METER_MAPS[m.model]!,
    ...extra,
  };
}

async function failure(promise: Promise<unknown>): Promise<PollError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof PollError) return error;
    throw error;
  }
  throw new Error('expected a failure');
}

describe('Modbus TCP meters against simulated ones', () => {
  it.each(['eastron-sdm630', 'schneider-pm5560'] as const)(
    '%s: power and energy from its shipped map',
    async (model) => {
      const m = await meter(model);
      const result = await new ModbusCollector().poll(target(m, { availablePowerW: 5e6 }), context());
      const [reading] = result.readings;
      expect(reading!.power_w).toBeCloseTo(m.reportedPowerW(), 2);
      // float32 in kW rounds a 1.2 MW reading to about 0.06 W; the map reads what the meter holds.
      expect(Math.abs(reading!.power_w! - 1_234_567.8)).toBeLessThan(0.2);
      expect(reading!.available_power_w).toBe(5e6);
      expect((reading!.extras as { energy_j_total: number }).energy_j_total).toBeGreaterThan(4e13);
      expect(m.served).toHaveLength(1);
      expect(m.stats.connections).toBe(1); // one connection per poll, however many reads
      expect(m.stats.requests).toBe(2);
    },
  );

  it("reads the grid operator's allowance from a register on another unit of the same gateway", async () => {
    const m = await meter('eastron-sdm630', { signalUnitId: 2 });
    const result = await new ModbusCollector().poll(
      target(m, {
        availablePowerW: 9e9, // the register wins over the configured figure
        availablePowerRegister: { unitId: 2, address: 100, type: 'u32', unit: 'kW', function: 'holding' },
      }),
      context(),
    );
    expect(result.readings[0]!.available_power_w).toBe(2_500_000);
  });

  it('reassembles answers split inside the MBAP header', async () => {
    const m = await meter('schneider-pm5560', { fault: { kind: 'split' } });
    const result = await new ModbusCollector().poll(target(m), context());
    expect(result.readings[0]!.power_w).toBeCloseTo(m.reportedPowerW(), 2);
  });

  it('reports exceptions by name: a busy meter, a wrong address, a unit the gateway does not have', async () => {
    const busy = await meter('eastron-sdm630', { fault: { kind: 'exception', code: 6 } });
    const e = await failure(new ModbusCollector().poll(target(busy), context()));
    expect(e.code).toBe('command_error');
    expect(e.message).toContain('exception 6 (server device busy)');

    const m = await meter('schneider-pm5560');
    const wrongMap = {
      ...METER_MAPS['schneider-pm5560']!,
      fields: [{ metric: 'power_w' as const, address: 9000, type: 'f32' as const, unit: 'kW' as const }],
    };
    expect(
      (await failure(new ModbusCollector().poll(target(m, { map: wrongMap }), context()))).message,
    ).toContain('illegal data address');
    expect(
      (await failure(new ModbusCollector().poll(target(m, { unitId: 7 }), context()))).message,
    ).toContain('gateway target device failed to respond');
  });

  it('an allowance register that fails leaves the power reading standing, and says so', async () => {
    const m = await meter('eastron-sdm630');
    const result = await new ModbusCollector().poll(
      target(m, { availablePowerRegister: { unitId: 5, address: 100, type: 'u32', unit: 'kW' } }),
      context(),
    );
    expect(result.readings[0]!.power_w).toBeGreaterThan(1e6);
    expect(result.readings[0]!.available_power_w).toBeUndefined();
    expect(result.problems.join()).toContain('available power register');
  });

  it('a hung meter times out; one that resets is reported as reset', async () => {
    const hung = await meter('eastron-sdm630', { fault: { kind: 'hang' } });
    const reset = await meter('eastron-sdm630', { fault: { kind: 'reset' } });
    expect((await failure(new ModbusCollector().poll(target(hung), context(300)))).code).toBe('timeout');
    expect((await failure(new ModbusCollector().poll(target(reset), context()))).code).toBe('reset');
  });
});
