import type { Fault, SiteSpec } from '../scenario.ts';
import {
  ASIC_MODELS,
  type AsicHealth,
  type AsicMode,
  type AsicModelName,
  type AsicSample,
  type AsicUnit,
  advanceAsicHealth,
  createAsicUnit,
  DEFAULT_ASIC_RELIABILITY,
  initialAsicHealth,
  plannedAsicPowerW,
  sampleAsic,
} from './asic.ts';
import { activeFaults, faultsForSite } from './faults.ts';
import {
  createGpuServer,
  DEFAULT_GPU_RELIABILITY,
  GPUS_PER_SERVER,
  type GpuModelName,
  type GpuSample,
  type GpuServer,
  sampleGpuServer,
} from './gpu.ts';
import { ambientC, localHour, scheduledAvailablePowerW } from './grid.ts';
import { hashString, Noise } from './random.ts';
import { type Reading, roundTo } from './reading.ts';

/** Slots per rack and racks per hall, for device names like "hall-a/r03/s21-017". */
const SLOTS_PER_RACK = 24;
const RACKS_PER_HALL = 20;
/** Noise ids: each device gets its own stream; ranges keep kinds apart. */
const GPU_SERVER_ID_BASE = 1_000_000;
const GPU_ID_BASE = 2_000_000;
const DOWN_CHANNEL = 90;
/**
 * The curtailment controller plans against nameplate-based estimates; keeping 2 % spare absorbs
 * noise and leakage so the meter stays under available power.
 */
const CURTAILMENT_MARGIN = 0.98;
export const METER_DEVICE = 'main-meter';

export interface SiteSimulationOptions {
  /** Fleet seed; the site's own seed is derived from it and the site name. */
  seed: number;
  /** Epoch ms of tick 0. */
  startMs: number;
  intervalS: number;
  /** The scenario's faults; those for other sites are ignored. */
  faults?: readonly Fault[];
  randomFailures?: boolean;
  tsFormat?: 'rfc3339' | 'epoch_ms';
  /**
   * Also report each device's state in `SiteTick.asics` / `gpuServers` (the protocol simulators
   * answer from it: per-hashboard detail and the silent devices a reading cannot show).
   */
  details?: boolean;
}

/** One ASIC's state in a tick, with what its firmware would report (null while it is silent). */
export interface AsicDetail {
  name: string;
  /** Index of the ASIC in the site, stable across ticks. */
  index: number;
  model: AsicModelName;
  mode: AsicMode;
  boardsLost: number;
  sample: AsicSample | null;
}

/** One GPU server's GPUs in a tick (null: fallen off the bus) and its host's power. */
export interface GpuServerDetail {
  name: string;
  model: GpuModelName;
  gpus: (GpuSample | null)[];
  itPowerW: number;
}

/** Everything one tick produced: the readings to send and the ground truth behind them. */
export interface SiteTick {
  tick: number;
  offsetS: number;
  /** The true time of the tick; readings carry this plus any clock skew. */
  trueTsMs: number;
  tsMs: number;
  readings: Reading[];
  itPowerW: number;
  facilityPowerW: number;
  availablePowerW: number;
  hashrateThs: number;
  curtailedAsics: number;
  silentDevices: number;
  /** Inlet air temperature this tick. */
  ambientC: number;
  /** Only with `details`. */
  asics?: AsicDetail[];
  gpuServers?: GpuServerDetail[];
}

interface AsicSlot {
  name: string;
  id: number;
  unit: AsicUnit;
  health: AsicHealth;
}

interface GpuServerSlot {
  name: string;
  id: number;
  server: GpuServer;
}

/** Names an ASIC by its place: hall letter, rack, model and slot. */
function asicDeviceName(index: number, model: AsicModelName): string {
  const perHall = SLOTS_PER_RACK * RACKS_PER_HALL;
  const hall = String.fromCharCode(97 + (Math.floor(index / perHall) % 26));
  const rack = Math.floor((index % perHall) / SLOTS_PER_RACK) + 1;
  const slot = (index % SLOTS_PER_RACK) + 1;
  return `hall-${hall}/r${String(rack).padStart(2, '0')}/${ASIC_MODELS[model].slug}-${String(slot).padStart(3, '0')}`;
}

/** Per-site seed: the same fleet seed gives each site its own but reproducible noise. */
export function siteSeed(seed: number, siteName: string): number {
  return (hashString(siteName) ^ Math.imul(seed | 0, 0x9e3779b1)) >>> 0;
}

/**
 * A site's devices and meter, stepped one tick at a time. Deterministic: the same seed, start time
 * and spec give the same readings, because all randomness is a hash of (seed, device, tick).
 */
export class SiteSimulation {
  readonly site: SiteSpec;
  readonly intervalS: number;
  readonly startMs: number;
  readonly #noise: Noise;
  readonly #faults: Fault[];
  readonly #randomFailures: boolean;
  readonly #epochTs: boolean;
  readonly #details: boolean;
  readonly #asics: AsicSlot[] = [];
  /** ASIC indices best-efficiency first: the controller keeps these hashing longest. */
  readonly #keepOrder: number[];
  readonly #servers: GpuServerSlot[] = [];
  #tick = 0;

  constructor(site: SiteSpec, options: SiteSimulationOptions) {
    this.site = site;
    this.intervalS = options.intervalS;
    this.startMs = options.startMs;
    this.#noise = new Noise(siteSeed(options.seed, site.name));
    this.#faults = faultsForSite(options.faults ?? [], site.name);
    this.#randomFailures = options.randomFailures ?? true;
    this.#epochTs = options.tsFormat === 'epoch_ms';
    this.#details = options.details ?? false;
    const ambient = ambientC(site.ambient_c, localHour(options.startMs, site.timezone));
    for (const [model, count] of Object.entries(site.devices.asic) as [AsicModelName, number][]) {
      for (let i = 0; i < count; i++) {
        const id = this.#asics.length;
        const unit = createAsicUnit(model, this.#noise, id);
        this.#asics.push({
          name: asicDeviceName(id, model),
          id,
          unit,
          health: initialAsicHealth(unit, ambient),
        });
      }
    }
    const joulesPerTh = (a: AsicSlot) =>
      (ASIC_MODELS[a.unit.model].powerW * a.unit.powerFactor) /
      (ASIC_MODELS[a.unit.model].hashrateThs * a.unit.hashrateFactor);
    this.#keepOrder = this.#asics
      .map((_, i) => i)
      .sort((a, b) => joulesPerTh(this.#asics[a]!) - joulesPerTh(this.#asics[b]!) || a - b);
    for (let s = 0; s < site.devices.gpu_servers; s++) {
      const id = GPU_SERVER_ID_BASE + s;
      this.#servers.push({
        name: `node-${String(s + 1).padStart(3, '0')}`,
        id,
        server: createGpuServer(site.devices.gpu_model, this.#noise, id, options.intervalS, ambient),
      });
    }
  }

  /** Devices that report when healthy, the meter included. */
  get deviceCount(): number {
    return this.#asics.length + this.#servers.length * GPUS_PER_SERVER + (this.site.meter ? 1 : 0);
  }

  /** The index of the tick the next step() produces. */
  get nextTick(): number {
    return this.#tick;
  }

  /** Produces the next tick's readings and advances every device's state. */
  step(): SiteTick {
    const tick = this.#tick++;
    const site = this.site;
    const noise = this.#noise;
    const offsetS = tick * this.intervalS;
    const trueTsMs = this.startMs + Math.round(offsetS * 1000);
    let skewMs = 0;
    for (const f of activeFaults(this.#faults, 'clock_skew', offsetS)) skewMs += Math.round(f.skew_s * 1000);
    const tsMs = trueTsMs + skewMs;
    const ts = this.#epochTs ? tsMs : new Date(tsMs).toISOString();
    const hour = localHour(trueTsMs, site.timezone);
    const ambient = ambientC(site.ambient_c, hour);

    const capacityW = site.capacity_kw * 1000;
    let availableW = scheduledAvailablePowerW(capacityW, site.grid, hour);
    for (const f of activeFaults(this.#faults, 'curtailment', offsetS))
      availableW = Math.min(availableW, capacityW * f.available_ratio);
    for (const f of activeFaults(this.#faults, 'surplus', offsetS))
      availableW = Math.max(availableW, capacityW * f.available_ratio);

    const down = activeFaults(this.#faults, 'devices_down', offsetS);
    const forcedDown = (id: number): 'error' | 'silent' | null => {
      for (const f of down) {
        // Which devices a fault takes down depends on the fault's start, so one fault hits one fixed set.
        if (noise.chance(id, Math.round(f.at_s * 1000), DOWN_CHANNEL, f.fraction)) return f.mode;
      }
      return null;
    };

    const readings: Reading[] = [];
    let itPowerW = 0;
    let hashrateThs = 0;
    let silentDevices = 0;

    // GPU load is firm (jobs are not curtailed), so it is served first and ASICs fit into the rest.
    const gpuReadings: Reading[] = [];
    const gpuDetails: GpuServerDetail[] | undefined = this.#details ? [] : undefined;
    for (const slot of this.#servers) {
      const sample = sampleGpuServer(slot.server, {
        tick,
        intervalS: this.intervalS,
        localHour: hour,
        inletC: ambient,
        noise,
        server: slot.id,
        gpuBase: GPU_ID_BASE + (slot.id - GPU_SERVER_ID_BASE) * GPUS_PER_SERVER,
        reliability: this.#randomFailures ? DEFAULT_GPU_RELIABILITY : null,
        forced: (g) => forcedDown(GPU_ID_BASE + (slot.id - GPU_SERVER_ID_BASE) * GPUS_PER_SERVER + g),
      });
      itPowerW += sample.itPowerW;
      gpuDetails?.push({
        name: slot.name,
        model: site.devices.gpu_model,
        gpus: sample.gpus,
        itPowerW: sample.itPowerW,
      });
      sample.gpus.forEach((gpu, g) => {
        if (!gpu) {
          silentDevices++;
          return;
        }
        gpuReadings.push({
          device: `${slot.name}/gpu-${g}`,
          kind: 'gpu',
          ts,
          model: site.devices.gpu_model,
          power_w: roundTo(gpu.powerW, 1),
          temp_c: roundTo(gpu.tempC, 1),
          gpu_util_pct: gpu.utilPct,
          gpu_mem_used_bytes: gpu.memUsedBytes,
          status: gpu.status,
        });
      });
    }

    // Curtailment controller: units that cannot hash (error, silent) draw what they draw; the rest
    // hash best-efficiency first while the budget lasts and the others are put to sleep.
    const modes: AsicMode[] = new Array(this.#asics.length);
    let budgetW = (availableW / site.pue) * CURTAILMENT_MARGIN - itPowerW;
    for (const a of this.#asics) {
      if (this.#randomFailures)
        advanceAsicHealth(a.health, DEFAULT_ASIC_RELIABILITY, this.intervalS, noise, a.id, tick);
      const forced = forcedDown(a.id);
      const mode: AsicMode = forced ?? (a.health.failure === 'none' ? 'hashing' : a.health.failure);
      modes[a.id] = mode;
      if (mode !== 'hashing') budgetW -= plannedAsicPowerW(a.unit, a.health, mode);
    }
    let curtailedAsics = 0;
    for (const i of this.#keepOrder) {
      if (modes[i] !== 'hashing') continue;
      const a = this.#asics[i]!;
      const need = plannedAsicPowerW(a.unit, a.health, 'hashing');
      if (need <= budgetW) budgetW -= need;
      else {
        modes[i] = 'curtailed';
        budgetW -= plannedAsicPowerW(a.unit, a.health, 'curtailed');
        curtailedAsics++;
      }
    }
    const asicDetails: AsicDetail[] | undefined = this.#details ? [] : undefined;
    for (const a of this.#asics) {
      const mode = modes[a.id]!;
      const s = sampleAsic(a.unit, a.health, mode, ambient, this.intervalS, noise, a.id, tick);
      itPowerW += s.powerW;
      hashrateThs += s.hashrateThs;
      asicDetails?.push({
        name: a.name,
        index: a.id,
        model: a.unit.model,
        mode,
        boardsLost: a.health.boardsLost,
        sample: mode === 'silent' ? null : s,
      });
      if (mode === 'silent') {
        silentDevices++;
        continue;
      }
      readings.push({
        device: a.name,
        kind: 'asic',
        ts,
        model: a.unit.model,
        power_w: roundTo(s.powerW, 1),
        hashrate_ths: roundTo(s.hashrateThs, 2),
        expected_hashrate_ths: ASIC_MODELS[a.unit.model].hashrateThs,
        temp_c: roundTo(s.tempC, 1),
        fan_rpm: s.fanRpm,
        status: s.status,
      });
    }
    for (const r of gpuReadings) readings.push(r);

    const facilityPowerW = itPowerW * site.pue;
    if (site.meter) {
      readings.push({
        device: METER_DEVICE,
        kind: 'meter',
        ts,
        power_w: Math.round(facilityPowerW),
        available_power_w: Math.round(availableW),
        status: 'ok',
      });
    }
    return {
      tick,
      offsetS,
      trueTsMs,
      tsMs,
      readings,
      itPowerW,
      facilityPowerW,
      availablePowerW: availableW,
      hashrateThs,
      curtailedAsics,
      silentDevices,
      ambientC: ambient,
      ...(asicDetails && { asics: asicDetails }),
      ...(gpuDetails && { gpuServers: gpuDetails }),
    };
  }
}
