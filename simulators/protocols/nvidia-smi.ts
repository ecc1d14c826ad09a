#!/usr/bin/env node
/**
 * A fake `nvidia-smi` that prints what the real one does for `--query-gpu=… --format=csv[,noheader][,nounits]`,
 * from a simulated host's state file (./gpu-host.ts writes it every physics tick):
 *
 *   node simulators/protocols/nvidia-smi.ts --state node-001.json --query-gpu=index,power.draw --format=csv,noheader,nounits
 *
 * As the real tool: `[N/A]` for what the board lacks (fan speed on SXM boards), `Active` / `Not
 * Active` for clock-event reasons, units without `nounits`, a header without `noheader`, an
 * unknown field refused with exit 2, and a GPU that fell off the bus named on stderr with exit 15
 * while the others are printed. `--legacy` acts as a driver before 535 (clocks_throttle_reasons).
 * `--log FILE` appends one line per run (how many GPUs it printed), so tests count invocations.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import type { GpuState, NvidiaSmiState } from './gpu-host.ts';

const REASON_BITS: Record<string, number> = {
  gpu_idle: 0x1,
  applications_clocks_setting: 0x2,
  sw_power_cap: 0x4,
  hw_slowdown: 0x8,
  sync_boost: 0x10,
  sw_thermal_slowdown: 0x20,
  hw_thermal_slowdown: 0x40,
  hw_power_brake_slowdown: 0x80,
};

type Field = { value: (g: GpuState, s: NvidiaSmiState) => string; unit?: string };

function fields(legacy: boolean): Record<string, Field> {
  const reasons = legacy ? 'clocks_throttle_reasons' : 'clocks_event_reasons';
  const out: Record<string, Field> = {
    index: { value: (g) => String(g.index) },
    uuid: { value: (g) => g.uuid },
    name: { value: (g) => g.name },
    'pci.bus_id': { value: (g) => g.pciBusId },
    driver_version: { value: (_g, s) => s.driver },
    pstate: { value: (g) => (g.utilPct > 0 ? 'P0' : 'P0') },
    'power.draw': { value: (g) => g.powerW.toFixed(2), unit: ' W' },
    'power.limit': { value: (g) => g.powerLimitW.toFixed(2), unit: ' W' },
    'enforced.power.limit': { value: (g) => g.powerLimitW.toFixed(2), unit: ' W' },
    'temperature.gpu': { value: (g) => String(g.tempC) },
    'temperature.memory': { value: (g) => String(g.memTempC) },
    'utilization.gpu': { value: (g) => String(g.utilPct), unit: ' %' },
    'utilization.memory': { value: (g) => String(Math.round(g.utilPct * 0.6)), unit: ' %' },
    'memory.used': { value: (g) => String(g.memUsedMiB), unit: ' MiB' },
    'memory.total': { value: (g) => String(g.memTotalMiB), unit: ' MiB' },
    'memory.free': { value: (g) => String(g.memTotalMiB - g.memUsedMiB), unit: ' MiB' },
    'clocks.sm': { value: (g) => String(g.smClockMhz), unit: ' MHz' },
    'clocks.mem': { value: (g) => String(g.memClockMhz), unit: ' MHz' },
    // SXM boards have no fan of their own: the chassis cools them.
    'fan.speed': { value: () => '[N/A]' },
    'ecc.errors.corrected.volatile.total': { value: (g) => String(g.eccSbe) },
    'ecc.errors.uncorrected.volatile.total': { value: (g) => String(g.eccDbe) },
    [`${reasons}.active`]: { value: (g) => `0x${g.throttleMask.toString(16).padStart(16, '0')}` },
  };
  for (const [reason, bit] of Object.entries(REASON_BITS))
    out[`${reasons}.${reason}`] = { value: (g) => ((g.throttleMask & bit) !== 0 ? 'Active' : 'Not Active') };
  return out;
}

function main(argv: string[]): number {
  let stateFile: string | undefined;
  let query: string[] | undefined;
  let format: string[] = [];
  let legacy = false;
  let log: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--state') stateFile = argv[++i];
    else if (a === '--log') log = argv[++i];
    else if (a === '--legacy') legacy = true;
    else if (a.startsWith('--query-gpu=')) query = a.slice('--query-gpu='.length).split(',');
    else if (a.startsWith('--format=')) format = a.slice('--format='.length).split(',');
    else {
      process.stderr.write(`Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n`);
      return 2;
    }
  }
  if (!stateFile) {
    process.stderr.write('fake nvidia-smi: --state FILE is required\n');
    return 2;
  }
  if (!query || !format.includes('csv')) {
    process.stderr.write(`Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n`);
    return 2;
  }
  const known = fields(legacy);
  for (const f of query) {
    if (!(f in known)) {
      process.stdout.write(`Field "${f}" is not a valid field to query.\n\n`);
      return 2;
    }
  }
  let state: NvidiaSmiState;
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8')) as NvidiaSmiState;
  } catch {
    process.stderr.write(
      "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n",
    );
    return 9;
  }
  const units = !format.includes('nounits');
  const lines: string[] = [];
  if (!format.includes('noheader'))
    lines.push(
      query.map((f) => (units && known[f]!.unit ? `${f} [${known[f]!.unit.trim()}]` : f)).join(', '),
    );
  let printed = 0;
  let lost = false;
  for (const g of state.gpus) {
    if (g.lost) {
      lost = true;
      process.stderr.write(
        `Unable to determine the device handle for GPU${g.pciBusId.slice(4)}: GPU is lost. Reboot the system to recover this GPU\n`,
      );
      continue;
    }
    lines.push(
      query
        .map((f) => {
          const v = known[f]!.value(g, state);
          return units && known[f]!.unit && !v.startsWith('[') ? `${v}${known[f]!.unit}` : v;
        })
        .join(', '),
    );
    printed++;
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  if (log) appendFileSync(log, `${printed}\n`);
  return lost ? 15 : 0;
}

process.exitCode = main(process.argv.slice(2));
