import { ASIC_MODELS, type AsicModelName } from './asic.ts';
import { GPU_MODELS, GPUS_PER_SERVER, type GpuModelName } from './gpu.ts';

/** The device mix of a site, as a scenario states it. */
export interface DeviceMix {
  asic: Partial<Record<AsicModelName, number>>;
  gpu_servers: number;
  gpu_model: GpuModelName;
}

/** IT power at nameplate: every ASIC hashing, every GPU at TDP and hosts busy. */
export function nameplateItPowerW(devices: DeviceMix): number {
  let watts = 0;
  for (const [model, count] of Object.entries(devices.asic) as [AsicModelName, number][]) {
    watts += ASIC_MODELS[model].powerW * count;
  }
  const gpu = GPU_MODELS[devices.gpu_model];
  return watts + devices.gpu_servers * (GPUS_PER_SERVER * gpu.tdpW + gpu.hostBusyW);
}

/** Devices that report readings (ASICs and GPUs; the meter not included). */
export function countReportingDevices(devices: DeviceMix): number {
  let n = devices.gpu_servers * GPUS_PER_SERVER;
  for (const count of Object.values(devices.asic)) n += count ?? 0;
  return n;
}
