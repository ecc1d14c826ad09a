import { clamp, type Noise } from './random.ts';
import type { DeviceStatus } from './reading.ts';

/** Nameplate figures as published by the vendors (stock firmware, air-cooled, 25 °C inlet). */
export interface AsicModel {
  vendor: string;
  /** Short form used in device names, e.g. "s21pro" in "hall-a/r03/s21pro-017". */
  slug: string;
  hashrateThs: number;
  powerW: number;
  hashboards: number;
  minFanRpm: number;
  maxFanRpm: number;
}

export const ASIC_MODELS = {
  'S19j Pro': {
    vendor: 'Bitmain',
    slug: 's19jpro',
    hashrateThs: 104,
    powerW: 3068,
    hashboards: 3,
    minFanRpm: 1800,
    maxFanRpm: 6000,
  },
  'S19 XP': {
    vendor: 'Bitmain',
    slug: 's19xp',
    hashrateThs: 140,
    powerW: 3010,
    hashboards: 3,
    minFanRpm: 1800,
    maxFanRpm: 6000,
  },
  S21: {
    vendor: 'Bitmain',
    slug: 's21',
    hashrateThs: 200,
    powerW: 3500,
    hashboards: 3,
    minFanRpm: 1800,
    maxFanRpm: 6600,
  },
  'S21 Pro': {
    vendor: 'Bitmain',
    slug: 's21pro',
    hashrateThs: 234,
    powerW: 3510,
    hashboards: 3,
    minFanRpm: 1800,
    maxFanRpm: 6600,
  },
  'S21 XP': {
    vendor: 'Bitmain',
    slug: 's21xp',
    hashrateThs: 270,
    powerW: 3645,
    hashboards: 3,
    minFanRpm: 1800,
    maxFanRpm: 6600,
  },
  M60S: {
    vendor: 'MicroBT',
    slug: 'm60s',
    hashrateThs: 186,
    powerW: 3441,
    hashboards: 3,
    minFanRpm: 1800,
    maxFanRpm: 6500,
  },
} as const satisfies Record<string, AsicModel>;

export type AsicModelName = keyof typeof ASIC_MODELS;
export const ASIC_MODEL_NAMES = Object.keys(ASIC_MODELS) as [AsicModelName, ...AsicModelName[]];

/** Joules per terahash at nameplate: the order in which a controller curtails (worst first). */
export function efficiencyJPerTh(model: AsicModelName): number {
  const m = ASIC_MODELS[model];
  return m.powerW / m.hashrateThs;
}

/** Share of power that does not scale with hashboards: fans, control board, PSU losses. */
const FIXED_POWER_SHARE = 0.15;
/** Sleep mode (curtailed): hashboards off, control board and slow fans only. */
const SLEEP_POWER_SHARE = 0.012;
/** A miner in error keeps its control board up and runs fans at full speed to protect the boards. */
const ERROR_POWER_W = 150;
/** Board temperature rise over inlet air at full load, with the fans regulating. */
const FULL_LOAD_RISE_C = 40;
/** Thermal time constant of a hashboard and its heatsink. */
const THERMAL_TAU_S = 120;
/** Hotter silicon leaks more: power rises ~0.15 % per °C above this board temperature. */
const LEAKAGE_KNEE_C = 65;

/** Fixed per-unit spread ("silicon lottery"); hashrate and power stay within ±10 % of nameplate. */
export interface AsicUnit {
  model: AsicModelName;
  hashrateFactor: number;
  powerFactor: number;
}

export type AsicMode = 'hashing' | 'curtailed' | 'error' | 'silent';

export interface AsicHealth {
  /** Hashboards currently lost (chain failure); the unit keeps hashing on the others. */
  boardsLost: number;
  boardsLostUntilTick: number;
  failure: 'none' | 'error' | 'silent';
  failureUntilTick: number;
  tempC: number;
}

export interface AsicSample {
  powerW: number;
  hashrateThs: number;
  tempC: number;
  fanRpm: number;
  status: DeviceStatus;
}

/** Draws the fixed spread of one unit. */
export function createAsicUnit(model: AsicModelName, noise: Noise, device: number): AsicUnit {
  return {
    model,
    hashrateFactor: clamp(1 + 0.015 * noise.normal(device, -1, 1), 0.95, 1.05),
    powerFactor: clamp(1 + 0.012 * noise.normal(device, -1, 2), 0.96, 1.04),
  };
}

/** Share of hashboards still hashing. */
export function boardsFraction(unit: AsicUnit, health: AsicHealth): number {
  const boards = ASIC_MODELS[unit.model].hashboards;
  return (boards - health.boardsLost) / boards;
}

/** Power the unit draws in a mode before noise and temperature: what a curtailment controller plans with. */
export function plannedAsicPowerW(unit: AsicUnit, health: AsicHealth, mode: AsicMode): number {
  const nameplate = ASIC_MODELS[unit.model].powerW * unit.powerFactor;
  switch (mode) {
    case 'hashing':
      return nameplate * (FIXED_POWER_SHARE + (1 - FIXED_POWER_SHARE) * boardsFraction(unit, health));
    case 'curtailed':
      return nameplate * SLEEP_POWER_SHARE;
    case 'error':
      return ERROR_POWER_W;
    case 'silent':
      // A silent unit tripped its PSU or lost its controller: it draws nothing the meter would notice.
      return 0;
  }
}

/** Board temperature the unit settles at in a mode. */
function settledTempC(unit: AsicUnit, mode: AsicMode, powerW: number, ambientC: number): number {
  if (mode === 'hashing') return ambientC + FULL_LOAD_RISE_C * (powerW / ASIC_MODELS[unit.model].powerW);
  return ambientC + (mode === 'curtailed' ? 3 : 1);
}

/** Steady-state health at start: the unit has been running, so its boards are warm. */
export function initialAsicHealth(unit: AsicUnit, ambientC: number): AsicHealth {
  const health: AsicHealth = {
    boardsLost: 0,
    boardsLostUntilTick: 0,
    failure: 'none',
    failureUntilTick: 0,
    tempC: 0,
  };
  health.tempC = settledTempC(unit, 'hashing', plannedAsicPowerW(unit, health, 'hashing'), ambientC);
  return health;
}

/**
 * One sample of a unit in a mode. Advances the board temperature (first-order lag towards the
 * temperature that load and ambient settle at) and returns what the miner's API would report.
 */
export function sampleAsic(
  unit: AsicUnit,
  health: AsicHealth,
  mode: AsicMode,
  ambientC: number,
  dtS: number,
  noise: Noise,
  device: number,
  tick: number,
): AsicSample {
  const model = ASIC_MODELS[unit.model];
  let powerW = plannedAsicPowerW(unit, health, mode);
  let hashrateThs = 0;
  if (mode === 'hashing') {
    powerW *=
      1 + 0.006 * noise.normal(device, tick, 10) + 0.0015 * Math.max(0, health.tempC - LEAKAGE_KNEE_C);
    // The miner reports a moving average, so tick-to-tick noise is small (±1 %).
    hashrateThs =
      model.hashrateThs *
      unit.hashrateFactor *
      boardsFraction(unit, health) *
      (1 + 0.01 * noise.normal(device, tick, 11));
    powerW = Math.min(powerW, model.powerW * 1.1);
    hashrateThs = clamp(hashrateThs, 0, model.hashrateThs * 1.1);
  } else if (mode === 'curtailed') {
    powerW *= 1 + 0.05 * noise.normal(device, tick, 10);
  }
  const target = settledTempC(unit, mode, powerW, ambientC);
  health.tempC += (target - health.tempC) * (1 - Math.exp(-dtS / THERMAL_TAU_S));
  const tempC = health.tempC + 0.3 * noise.normal(device, tick, 12);

  let fanRpm: number;
  if (mode === 'error') fanRpm = model.maxFanRpm;
  else if (mode === 'curtailed') fanRpm = model.minFanRpm / 2;
  else {
    // Firmware speeds fans up as boards warm: minimum below 40 °C, maximum at 85 °C.
    fanRpm = model.minFanRpm + (model.maxFanRpm - model.minFanRpm) * clamp((tempC - 40) / 45, 0, 1);
  }
  fanRpm = Math.max(0, Math.round((fanRpm + 40 * noise.normal(device, tick, 13)) / 10) * 10);

  const status: DeviceStatus = mode === 'hashing' ? 'ok' : mode === 'curtailed' ? 'curtailed' : 'error';
  return { powerW: Math.max(0, powerW), hashrateThs, tempC, fanRpm, status };
}

/** Mean time between failures per unit, and how long a repair takes. */
export interface AsicReliability {
  hashboardMtbfS: number;
  errorMtbfS: number;
  silentMtbfS: number;
  repairMinS: number;
  repairMaxS: number;
}

const DAY_S = 86_400;
export const DEFAULT_ASIC_RELIABILITY: AsicReliability = {
  hashboardMtbfS: 30 * DAY_S,
  errorMtbfS: 60 * DAY_S,
  silentMtbfS: 120 * DAY_S,
  repairMinS: 2 * 3600,
  repairMaxS: 12 * 3600,
};

/**
 * Rolls this tick's random failures and repairs. At tick 0 the fleet starts in steady state: the
 * share of units that are broken at any moment is MTTR / MTBF, so a fresh run already shows a few.
 */
export function advanceAsicHealth(
  health: AsicHealth,
  reliability: AsicReliability,
  intervalS: number,
  noise: Noise,
  device: number,
  tick: number,
): void {
  const meanRepairS = (reliability.repairMinS + reliability.repairMaxS) / 2;
  const repairTicks = (channel: number) =>
    Math.max(
      1,
      Math.round(
        noise.between(device, tick, channel, reliability.repairMinS, reliability.repairMaxS) / intervalS,
      ),
    );
  const p = (mtbfS: number) => (tick === 0 ? meanRepairS / (mtbfS + meanRepairS) : intervalS / mtbfS);
  const remaining = (ticks: number) =>
    tick === 0 ? Math.max(1, Math.round(ticks * noise.uniform(device, 0, 29))) : ticks;

  if (health.boardsLost > 0 && tick >= health.boardsLostUntilTick) health.boardsLost = 0;
  if (health.failure !== 'none' && tick >= health.failureUntilTick) health.failure = 'none';

  if (health.boardsLost === 0 && noise.chance(device, tick, 20, p(reliability.hashboardMtbfS))) {
    health.boardsLost = 1;
    health.boardsLostUntilTick = tick + remaining(repairTicks(21));
  }
  if (health.failure === 'none') {
    if (noise.chance(device, tick, 22, p(reliability.errorMtbfS))) {
      health.failure = 'error';
      health.failureUntilTick = tick + remaining(repairTicks(23));
    } else if (noise.chance(device, tick, 24, p(reliability.silentMtbfS))) {
      health.failure = 'silent';
      health.failureUntilTick = tick + remaining(repairTicks(25));
    }
  }
}
