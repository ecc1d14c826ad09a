import { clamp, type Noise } from './random.ts';
import type { DeviceStatus } from './reading.ts';

const MIB = 1024 * 1024;

/** Published board figures; memory is what nvidia-smi reports as total framebuffer. */
export interface GpuModel {
  tdpW: number;
  /** Power with nothing running but the driver holding HBM refreshed. */
  idleW: number;
  memBytes: number;
  /** Server power outside the GPUs (CPUs, NVSwitch, NICs, fans): idle and with all GPUs busy. */
  hostIdleW: number;
  hostBusyW: number;
}

export const GPU_MODELS = {
  'H100 SXM': { tdpW: 700, idleW: 85, memBytes: 81_559 * MIB, hostIdleW: 1400, hostBusyW: 3000 },
  'H200 SXM': { tdpW: 700, idleW: 90, memBytes: 143_771 * MIB, hostIdleW: 1400, hostBusyW: 3000 },
} as const satisfies Record<string, GpuModel>;

export type GpuModelName = keyof typeof GPU_MODELS;
export const GPU_MODEL_NAMES = Object.keys(GPU_MODELS) as [GpuModelName, ...GpuModelName[]];
export const GPUS_PER_SERVER = 8;

/** What the cluster scheduler has put on one server. */
export type JobKind = 'training' | 'inference' | 'idle';

export interface GpuJob {
  kind: JobKind;
  startTick: number;
  endTick: number;
  /** Training: share of HBM held steady; inference: share held by weights (KV cache grows with load). */
  memShare: number;
  /** Inference only: mean utilisation of this deployment at its daily peak. */
  peakUtil: number;
}

export interface GpuHealth {
  failure: 'none' | 'error' | 'silent';
  failureUntilTick: number;
  tempC: number;
}

export interface GpuServer {
  model: GpuModelName;
  job: GpuJob;
  gpus: GpuHealth[];
}

export interface GpuSample {
  utilPct: number;
  powerW: number;
  memUsedBytes: number;
  tempC: number;
  status: DeviceStatus;
}

export interface GpuServerSample {
  /** Per GPU; null when the GPU fell off the bus and reports nothing. */
  gpus: (GpuSample | null)[];
  /** All GPUs plus the host: what the rack PDU sees. */
  itPowerW: number;
}

const HOUR_S = 3600;
/** Training jobs checkpoint every 30 min; all GPUs stall on I/O for about 90 s. */
const CHECKPOINT_EVERY_S = 30 * 60;
const CHECKPOINT_STALL_S = 90;
const GPU_THERMAL_TAU_S = 30;
/** Driver context and CUDA runtime keep ~500 MiB resident even when nothing runs. */
const IDLE_MEM_BYTES = 512 * MIB;

/** Picks the job that starts at `tick`; at tick 0 the job started some time before the run. */
export function scheduleGpuJob(noise: Noise, server: number, tick: number, intervalS: number): GpuJob {
  const roll = noise.uniform(server, tick, 40);
  const kind: JobKind = roll < 0.45 ? 'training' : roll < 0.85 ? 'inference' : 'idle';
  const [minS, maxS] =
    kind === 'training'
      ? [2 * HOUR_S, 10 * HOUR_S]
      : kind === 'inference'
        ? [1 * HOUR_S, 6 * HOUR_S]
        : [600, 5400];
  const ticks = Math.max(1, Math.round(noise.between(server, tick, 41, minS, maxS) / intervalS));
  const elapsed = tick === 0 ? Math.floor(ticks * noise.uniform(server, tick, 42)) : 0;
  return {
    kind,
    startTick: tick - elapsed,
    endTick: tick - elapsed + ticks,
    memShare:
      kind === 'training'
        ? noise.between(server, tick, 43, 0.7, 0.95)
        : noise.between(server, tick, 43, 0.3, 0.6),
    peakUtil: noise.between(server, tick, 44, 0.55, 0.95),
  };
}

export function createGpuServer(
  model: GpuModelName,
  noise: Noise,
  server: number,
  intervalS: number,
  inletC: number,
): GpuServer {
  const job = scheduleGpuJob(noise, server, 0, intervalS);
  const gpus: GpuHealth[] = [];
  for (let g = 0; g < GPUS_PER_SERVER; g++)
    gpus.push({ failure: 'none', failureUntilTick: 0, tempC: inletC + 10 });
  return { model, job, gpus };
}

/** Power follows utilisation, slightly concave: memory-bound phases draw less than compute-bound ones. */
export function gpuPowerW(model: GpuModelName, utilRatio: number): number {
  const m = GPU_MODELS[model];
  return m.idleW + (m.tdpW - m.idleW) * utilRatio ** 0.85;
}

/** Inference traffic follows the users' day: lowest around 04:00, highest around 16:00 local time. */
export function inferenceDemand(localHour: number): number {
  return 0.6 + 0.4 * Math.sin((2 * Math.PI * (localHour - 10)) / 24);
}

/** Utilisation (0–1) of one GPU running `job`, before failures. */
function jobUtil(
  job: GpuJob,
  tick: number,
  intervalS: number,
  localHour: number,
  noise: Noise,
  gpu: number,
): number {
  switch (job.kind) {
    case 'idle':
      return 0;
    case 'training': {
      const sinceStartS = (tick - job.startTick) * intervalS;
      if (sinceStartS % CHECKPOINT_EVERY_S < CHECKPOINT_STALL_S && sinceStartS >= CHECKPOINT_EVERY_S) {
        return clamp(0.08 + 0.03 * noise.normal(gpu, tick, 50), 0, 1);
      }
      return clamp(0.965 + 0.015 * noise.normal(gpu, tick, 50), 0.9, 1);
    }
    case 'inference':
      return clamp(job.peakUtil * inferenceDemand(localHour) + 0.08 * noise.normal(gpu, tick, 50), 0.02, 1);
  }
}

export interface GpuReliability {
  /** Xid errors that leave the GPU reporting but unusable. */
  errorMtbfS: number;
  /** "GPU has fallen off the bus": it disappears from the driver and reports nothing. */
  silentMtbfS: number;
  repairMinS: number;
  repairMaxS: number;
}

export const DEFAULT_GPU_RELIABILITY: GpuReliability = {
  errorMtbfS: 90 * 86_400,
  silentMtbfS: 180 * 86_400,
  repairMinS: 1 * HOUR_S,
  repairMaxS: 8 * HOUR_S,
};

function advanceGpuHealth(
  health: GpuHealth,
  reliability: GpuReliability,
  intervalS: number,
  noise: Noise,
  gpu: number,
  tick: number,
): void {
  if (health.failure !== 'none' && tick >= health.failureUntilTick) health.failure = 'none';
  if (health.failure !== 'none') return;
  const meanRepairS = (reliability.repairMinS + reliability.repairMaxS) / 2;
  // At tick 0 the cluster is in steady state: MTTR / (MTBF + MTTR) of GPUs are already broken,
  // each some way into its repair.
  const p = (mtbfS: number) => (tick === 0 ? meanRepairS / (mtbfS + meanRepairS) : intervalS / mtbfS);
  let repairS = noise.between(gpu, tick, 61, reliability.repairMinS, reliability.repairMaxS);
  if (tick === 0) repairS *= noise.uniform(gpu, 0, 62);
  const until = tick + Math.max(1, Math.round(repairS / intervalS));
  if (noise.chance(gpu, tick, 60, p(reliability.errorMtbfS))) {
    health.failure = 'error';
    health.failureUntilTick = until;
  } else if (noise.chance(gpu, tick, 63, p(reliability.silentMtbfS))) {
    health.failure = 'silent';
    health.failureUntilTick = until;
  }
}

export interface GpuTickInput {
  tick: number;
  intervalS: number;
  localHour: number;
  inletC: number;
  noise: Noise;
  /** Noise id of the server; GPU g uses gpuBase + g. */
  server: number;
  gpuBase: number;
  reliability: GpuReliability | null;
  /** Forced down by a scheduled fault, per GPU: none, error or silent. */
  forced: (g: number) => 'error' | 'silent' | null;
}

/** Samples the eight GPUs of one server and its host, advancing job schedule, health and temperatures. */
export function sampleGpuServer(server: GpuServer, input: GpuTickInput): GpuServerSample {
  const { tick, intervalS, noise } = input;
  const model = GPU_MODELS[server.model];
  if (tick >= server.job.endTick) server.job = scheduleGpuJob(noise, input.server, tick, intervalS);
  const job = server.job;
  const gpus: (GpuSample | null)[] = [];
  let gpuPowerSum = 0;
  let utilSum = 0;
  for (let g = 0; g < server.gpus.length; g++) {
    const health = server.gpus[g]!;
    const id = input.gpuBase + g;
    if (input.reliability) advanceGpuHealth(health, input.reliability, intervalS, noise, id, tick);
    const failure = input.forced(g) ?? (health.failure === 'none' ? null : health.failure);
    const util = failure ? 0 : jobUtil(job, tick, intervalS, input.localHour, noise, id);
    const powerW = clamp(
      gpuPowerW(server.model, util) * (1 + 0.02 * noise.normal(id, tick, 51)),
      0,
      model.tdpW,
    );
    let memUsed = IDLE_MEM_BYTES;
    if (!failure && job.kind === 'training')
      memUsed = model.memBytes * (job.memShare + 0.002 * noise.normal(id, tick, 52));
    if (!failure && job.kind === 'inference') memUsed = model.memBytes * (job.memShare + 0.3 * util);
    memUsed = Math.round(clamp(memUsed, IDLE_MEM_BYTES, model.memBytes) / MIB) * MIB;
    const targetC = input.inletC + 47 * (powerW / model.tdpW);
    health.tempC += (targetC - health.tempC) * (1 - Math.exp(-intervalS / GPU_THERMAL_TAU_S));
    gpuPowerSum += powerW;
    utilSum += util;
    if (failure === 'silent') {
      gpus.push(null);
      continue;
    }
    gpus.push({
      utilPct: Math.round(util * 100),
      powerW,
      memUsedBytes: memUsed,
      tempC: health.tempC + 0.4 * noise.normal(id, tick, 53),
      status: failure === 'error' ? 'error' : job.kind === 'idle' ? 'idle' : 'ok',
    });
  }
  const hostW = model.hostIdleW + (model.hostBusyW - model.hostIdleW) * (utilSum / server.gpus.length);
  return { gpus, itPowerW: gpuPowerSum + hostW };
}
