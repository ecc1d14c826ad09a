/**
 * Modbus register maps (pure): where a meter keeps each value, in which type and word order, and
 * in which unit. Addresses are the protocol's 0-based addresses: a manual's 1-based register
 * number minus one (Eastron's 30053 is input register 52, Schneider's 3060 holding register 3059).
 */

export const REGISTER_TYPES = ['u16', 'i16', 'u32', 'i32', 'f32', 'u64', 'i64', 'f64'] as const;
export type RegisterType = (typeof REGISTER_TYPES)[number];

/** `big`: most significant word first (ABCD, Modbus' own order); `little`: least first (CDAB). */
export const WORD_ORDERS = ['big', 'little'] as const;
export type WordOrder = (typeof WORD_ORDERS)[number];

/** Holding registers (function 3) or input registers (function 4). */
export const REGISTER_FUNCTIONS = ['holding', 'input'] as const;
export type RegisterFunction = (typeof REGISTER_FUNCTIONS)[number];

/** What a meter register can feed: the catalog's metrics a meter or PDU carries. */
export const METER_METRICS = [
  'power_w',
  'available_power_w',
  'energy_j_total',
  'cooling_power_w',
  'inlet_temp_c',
  'outlet_temp_c',
  'power_price_per_mwh',
] as const;
export type MeterMetric = (typeof METER_METRICS)[number];

/** Units a register may hold, with the factor to the catalog's unit (W, J, °C, currency/MWh). */
export const REGISTER_UNITS = {
  W: 1,
  kW: 1e3,
  MW: 1e6,
  J: 1,
  Wh: 3600,
  kWh: 3.6e6,
  MWh: 3.6e9,
  C: 1,
  'currency/MWh': 1,
  'currency/kWh': 1e3,
} as const;
export type RegisterUnit = keyof typeof REGISTER_UNITS;

/** The unit each metric is stored in, so a register's unit can be checked against its metric. */
const METRIC_DIMENSION: Record<MeterMetric, 'power' | 'energy' | 'temperature' | 'price'> = {
  power_w: 'power',
  available_power_w: 'power',
  cooling_power_w: 'power',
  energy_j_total: 'energy',
  inlet_temp_c: 'temperature',
  outlet_temp_c: 'temperature',
  power_price_per_mwh: 'price',
};
const UNIT_DIMENSION: Record<RegisterUnit, 'power' | 'energy' | 'temperature' | 'price'> = {
  W: 'power',
  kW: 'power',
  MW: 'power',
  J: 'energy',
  Wh: 'energy',
  kWh: 'energy',
  MWh: 'energy',
  C: 'temperature',
  'currency/MWh': 'price',
  'currency/kWh': 'price',
};

/** Whether a register unit measures what the metric is (kWh for an energy metric, not for power). */
export function unitFits(metric: MeterMetric, unit: RegisterUnit): boolean {
  return METRIC_DIMENSION[metric] === UNIT_DIMENSION[unit];
}

/** Where one value is and how to read it. */
export interface RegisterSpec {
  readonly address: number;
  readonly type: RegisterType;
  readonly wordOrder?: WordOrder;
  readonly function?: RegisterFunction;
  /** Multiplier applied to the raw number before the unit (a meter that counts 0.1 W steps: 0.1). */
  readonly scale?: number;
  readonly unit: RegisterUnit;
}

export interface RegisterField extends RegisterSpec {
  readonly metric: MeterMetric;
}

/** A meter model's registers. Defaults apply to fields that do not say otherwise. */
export interface RegisterMap {
  readonly model: string;
  readonly label: string;
  readonly wordOrder: WordOrder;
  readonly function: RegisterFunction;
  readonly fields: readonly RegisterField[];
}

/** 16-bit registers a type takes. */
export function registerCount(type: RegisterType): number {
  return type === 'u16' || type === 'i16' ? 1 : type.endsWith('64') ? 4 : 2;
}

/**
 * The number a type holds in these registers (each 0…65535), words ordered as `order` says.
 * 64-bit integers beyond 2^53 lose precision, as any JSON number would.
 */
export function decodeRegisters(words: readonly number[], type: RegisterType, order: WordOrder): number {
  const n = registerCount(type);
  if (words.length < n) throw new RangeError(`${type} needs ${n} registers, got ${words.length}`);
  const ordered = order === 'big' ? words.slice(0, n) : words.slice(0, n).reverse();
  const bytes = Buffer.allocUnsafe(n * 2);
  for (const [i, w] of ordered.entries()) bytes.writeUInt16BE(w & 0xffff, i * 2);
  switch (type) {
    case 'u16':
      return bytes.readUInt16BE(0);
    case 'i16':
      return bytes.readInt16BE(0);
    case 'u32':
      return bytes.readUInt32BE(0);
    case 'i32':
      return bytes.readInt32BE(0);
    case 'f32':
      return bytes.readFloatBE(0);
    case 'u64':
      return Number(bytes.readBigUInt64BE(0));
    case 'i64':
      return Number(bytes.readBigInt64BE(0));
    case 'f64':
      return bytes.readDoubleBE(0);
  }
}

/** A field's value in the catalog's unit, from its raw number. */
export function toMetricValue(raw: number, spec: RegisterSpec): number {
  return raw * (spec.scale ?? 1) * REGISTER_UNITS[spec.unit];
}

/** One read request: a run of registers of one function covering some fields. */
export interface PlannedRead {
  readonly function: RegisterFunction;
  readonly address: number;
  readonly count: number;
  readonly fields: readonly RegisterField[];
}

/** Modbus allows 125 registers per read (function 3 and 4). */
export const MAX_READ_REGISTERS = 125;

/**
 * The fewest reads covering every field: fields of one function whose registers lie within `gap`
 * registers of each other share a read (meters answer unused registers with zeros or, some, with
 * an exception, so the gap is kept small by default).
 */
export function planReads(map: RegisterMap, gap = 8): PlannedRead[] {
  const byFunction = new Map<RegisterFunction, RegisterField[]>();
  for (const f of map.fields) {
    const fn = f.function ?? map.function;
    byFunction.set(fn, [...(byFunction.get(fn) ?? []), f]);
  }
  const reads: PlannedRead[] = [];
  for (const [fn, fields] of byFunction) {
    const sorted = [...fields].sort((a, b) => a.address - b.address);
    let start = -1;
    let end = -1;
    let group: RegisterField[] = [];
    const flush = () => {
      if (group.length > 0) reads.push({ function: fn, address: start, count: end - start, fields: group });
      group = [];
    };
    for (const f of sorted) {
      const fEnd = f.address + registerCount(f.type);
      if (group.length > 0 && f.address <= end + gap && fEnd - start <= MAX_READ_REGISTERS) {
        end = Math.max(end, fEnd);
        group.push(f);
        continue;
      }
      flush();
      start = f.address;
      end = fEnd;
      group = [f];
    }
    flush();
  }
  return reads;
}
