/**
 * Meters and PDUs over Modbus TCP: each poll reads the model's registers in as few requests as
 * the map allows and makes one reading. The site meter's reading carries `available_power_w` when
 * the site knows it: a configured contract, or a register the grid operator's signal is wired to.
 */
import type { ExtraMetricName } from '../../../catalog/index.ts';
import type { AgentReading } from '../../reading.ts';
import type { Collector, MeterTarget, PollContext, PollResult } from '../collector.ts';
import { PollError } from '../collector.ts';
import { round } from '../values.ts';
import { ModbusConnection } from './client.ts';
import {
  decodeRegisters,
  type MeterMetric,
  planReads,
  type RegisterSpec,
  registerCount,
  toMetricValue,
} from './registers.ts';

const CORE: ReadonlySet<MeterMetric> = new Set(['power_w', 'available_power_w']);

function functionCode(fn: 'holding' | 'input'): 3 | 4 {
  return fn === 'holding' ? 3 : 4;
}

/** Values by metric from registers read (pure): the reading's numbers in catalog units. */
export function meterReading(
  target: Pick<MeterTarget, 'device' | 'kind' | 'model' | 'availablePowerW'>,
  ts: number,
  values: ReadonlyMap<MeterMetric, number>,
): AgentReading {
  const reading: AgentReading = { device: target.device, kind: target.kind, ts, status: 'ok' };
  const extras: Partial<Record<ExtraMetricName, number>> = {};
  for (const [metric, value] of values) {
    const v = round(value, 3);
    if (metric === 'power_w') reading.power_w = v;
    else if (metric === 'available_power_w') reading.available_power_w = v;
    else if (!CORE.has(metric)) extras[metric as ExtraMetricName] = v;
  }
  // A register wins over the configured figure: it is the live signal.
  if (reading.available_power_w === undefined && target.availablePowerW !== undefined)
    reading.available_power_w = target.availablePowerW;
  if (Object.keys(extras).length > 0) reading.extras = extras;
  return reading;
}

export class ModbusCollector implements Collector<MeterTarget> {
  async poll(target: MeterTarget, context: PollContext): Promise<PollResult> {
    const deadline = performance.now() + context.timeoutMs;
    const left = () => Math.max(1, deadline - performance.now());
    const connection = await ModbusConnection.open(
      target.host,
      target.port,
      Math.min(context.connectTimeoutMs, context.timeoutMs),
    );
    const values = new Map<MeterMetric, number>();
    const problems: string[] = [];
    try {
      for (const read of planReads(target.map)) {
        const words = await connection.readRegisters(
          target.unitId,
          functionCode(read.function),
          read.address,
          read.count,
          left(),
        );
        for (const field of read.fields) {
          const offset = field.address - read.address;
          const raw = decodeRegisters(
            words.slice(offset, offset + registerCount(field.type)),
            field.type,
            field.wordOrder ?? target.map.wordOrder,
          );
          values.set(field.metric, toMetricValue(raw, field));
        }
      }
      const signal = target.availablePowerRegister;
      if (signal) {
        try {
          values.set('available_power_w', await readOne(connection, signal, target.unitId, left()));
        } catch (error) {
          // The allowance register failing must not cost the site its power reading.
          if (!(error instanceof PollError) || error.code === 'reset' || error.code === 'timeout')
            throw error;
          problems.push(`available power register: ${error.message}`);
        }
      }
    } finally {
      connection.close();
    }
    if (!values.has('power_w') && target.map.fields.some((f) => f.metric === 'power_w'))
      throw new PollError('malformed', 'no power value');
    return { readings: [meterReading(target, context.ts, values)], problems, repairs: [] };
  }
}

async function readOne(
  connection: ModbusConnection,
  spec: RegisterSpec & { unitId?: number },
  defaultUnit: number,
  timeoutMs: number,
): Promise<number> {
  const words = await connection.readRegisters(
    spec.unitId ?? defaultUnit,
    functionCode(spec.function ?? 'holding'),
    spec.address,
    registerCount(spec.type),
    timeoutMs,
  );
  return toMetricValue(decodeRegisters(words, spec.type, spec.wordOrder ?? 'big'), spec);
}
