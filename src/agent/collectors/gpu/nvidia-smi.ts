/**
 * GPUs through `nvidia-smi --query-gpu=… --format=csv,noheader,nounits`, run on the GPU node itself
 * or through any command that reaches it (`ssh node-017 nvidia-smi`): one CSV line per GPU, in the
 * order of the fields asked. Values the driver cannot give are `[N/A]`, `[Not Supported]` or
 * `[Unknown Error]`; clock-event reasons are `Active` / `Not Active`, their bitmask a hex string.
 * A GPU that fell off the bus is missing from stdout (the driver says so on stderr and exits
 * non-zero): the others are still read, and the poller reports the missing one offline.
 * Drivers before 535 name the reasons `clocks_throttle_reasons.*`: asked again with those names.
 */
import { execFile } from 'node:child_process';
import type { AgentReading } from '../../reading.ts';
import type { Collector, GpuTarget, PollContext, PollResult } from '../collector.ts';
import { PollError } from '../collector.ts';
import { round } from '../values.ts';
import { gpuModelName } from './dcgm.ts';

const MIB = 1024 * 1024;

/** What the agent asks for, in this order. */
export const NVIDIA_SMI_FIELDS = [
  'index',
  'uuid',
  'name',
  'power.draw',
  'power.limit',
  'temperature.gpu',
  'temperature.memory',
  'utilization.gpu',
  'memory.used',
  'memory.free',
  'clocks.sm',
  'clocks.mem',
  'clocks_event_reasons.active',
  'clocks_event_reasons.sw_power_cap',
  'clocks_event_reasons.hw_slowdown',
  'clocks_event_reasons.sw_thermal_slowdown',
  'clocks_event_reasons.hw_thermal_slowdown',
  'ecc.errors.corrected.volatile.total',
  'ecc.errors.uncorrected.volatile.total',
] as const;

/** NVML's clock-event reason bits, for drivers that give the reasons but not the mask. */
const REASON_BITS: Record<string, number> = {
  sw_power_cap: 0x4,
  hw_slowdown: 0x8,
  sw_thermal_slowdown: 0x20,
  hw_thermal_slowdown: 0x40,
};

/** The field names for drivers before 535 (clocks_throttle_reasons.*). */
export function legacyFieldNames(fields: readonly string[]): string[] {
  return fields.map((f) => f.replace(/^clocks_event_reasons\./, 'clocks_throttle_reasons.'));
}

/** A CSV value as a number; undefined for `[N/A]` and the other bracketed placeholders. */
export function csvNumber(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (v === '' || v.startsWith('[') || v === 'N/A') return undefined;
  if (/^0x[0-9a-fA-F]+$/.test(v)) return Number.parseInt(v.slice(2), 16);
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** `Active` → true, `Not Active` → false, anything else undefined. */
export function csvActive(value: string | undefined): boolean | undefined {
  const v = value?.trim();
  if (v === 'Active') return true;
  if (v === 'Not Active') return false;
  return undefined;
}

/** Readings from nvidia-smi's CSV (pure): one per line, named `{name}/gpu{index}`. */
export function nvidiaSmiReadings(
  stdout: string,
  fields: readonly string[],
  name: string,
  ts: number,
): { readings: AgentReading[]; unreadable: number } {
  const readings: AgentReading[] = [];
  let unreadable = 0;
  const at = (key: string) => fields.findIndex((f) => f === key || f === legacyFieldNames([key])[0]);
  const col = Object.fromEntries(NVIDIA_SMI_FIELDS.map((f) => [f, at(f)])) as Record<
    (typeof NVIDIA_SMI_FIELDS)[number],
    number
  >;
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    const cells = line.split(',').map((c) => c.trim());
    const get = (f: (typeof NVIDIA_SMI_FIELDS)[number]) => (col[f] >= 0 ? cells[col[f]] : undefined);
    const index = csvNumber(get('index'));
    if (cells.length !== fields.length || index === undefined) {
      unreadable++;
      continue;
    }
    const reading: AgentReading = { device: `${name}/gpu${index}`, kind: 'gpu', ts, status: 'ok' };
    const model = gpuModelName(get('name'));
    if (model) reading.model = model;
    const power = csvNumber(get('power.draw'));
    if (power !== undefined) reading.power_w = round(power, 2);
    const temp = csvNumber(get('temperature.gpu'));
    if (temp !== undefined) reading.temp_c = temp;
    const util = csvNumber(get('utilization.gpu'));
    if (util !== undefined) reading.gpu_util_pct = util;
    const used = csvNumber(get('memory.used'));
    if (used !== undefined) reading.gpu_mem_used_bytes = used * MIB;
    const extras: NonNullable<AgentReading['extras']> = {};
    const limit = csvNumber(get('power.limit'));
    if (limit !== undefined) extras.power_limit_w = limit;
    const memTemp = csvNumber(get('temperature.memory'));
    if (memTemp !== undefined) extras.gpu_mem_temp_c = memTemp;
    const free = csvNumber(get('memory.free'));
    if (free !== undefined) extras.gpu_mem_free_bytes = free * MIB;
    const sm = csvNumber(get('clocks.sm'));
    if (sm !== undefined) extras.gpu_sm_clock_mhz = sm;
    const mem = csvNumber(get('clocks.mem'));
    if (mem !== undefined) extras.gpu_mem_clock_mhz = mem;
    let mask = csvNumber(get('clocks_event_reasons.active'));
    if (mask === undefined) {
      // No mask from this driver: build it from the reasons it does report.
      let any = false;
      let bits = 0;
      for (const [reason, bit] of Object.entries(REASON_BITS)) {
        const active = csvActive(get(`clocks_event_reasons.${reason}` as (typeof NVIDIA_SMI_FIELDS)[number]));
        if (active === undefined) continue;
        any = true;
        if (active) bits |= bit;
      }
      if (any) mask = bits;
    }
    if (mask !== undefined) extras.gpu_throttle_reasons = mask;
    const sbe = csvNumber(get('ecc.errors.corrected.volatile.total'));
    const dbe = csvNumber(get('ecc.errors.uncorrected.volatile.total'));
    if (sbe !== undefined || dbe !== undefined)
      extras.gpu_ecc_errors_total = {
        ...(sbe !== undefined && { sbe_volatile: sbe }),
        ...(dbe !== undefined && { dbe_volatile: dbe }),
      };
    if (Object.keys(extras).length > 0) reading.extras = extras;
    readings.push(reading);
  }
  return { readings, unreadable };
}

interface Run {
  stdout: string;
  stderr: string;
  code: number | null;
  timedOut: boolean;
  spawnError?: NodeJS.ErrnoException;
}

function run(command: readonly string[], args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      command[0]!,
      [...command.slice(1), ...args],
      {
        timeout: Math.max(1, Math.round(timeoutMs)),
        killSignal: 'SIGKILL',
        maxBuffer: 4 * MIB,
        windowsHide: true,
      },
      (error, stdout, stderr) => {
        const e = error as (NodeJS.ErrnoException & { killed?: boolean; code?: number | string }) | null;
        resolve({
          stdout: String(stdout),
          stderr: String(stderr),
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          timedOut: e?.killed === true,
          ...(e && typeof e.code === 'string' && { spawnError: e }),
        });
      },
    );
  });
}

export class NvidiaSmiCollector implements Collector<GpuTarget> {
  /** Targets whose driver wants the pre-535 field names. */
  readonly #legacy = new Set<string>();

  async poll(target: GpuTarget, context: PollContext): Promise<PollResult> {
    const command = target.command ?? ['nvidia-smi'];
    const started = performance.now();
    let fields: string[] = this.#legacy.has(target.id)
      ? legacyFieldNames(NVIDIA_SMI_FIELDS)
      : [...NVIDIA_SMI_FIELDS];
    const ask = (f: string[]) =>
      run(
        command,
        [`--query-gpu=${f.join(',')}`, '--format=csv,noheader,nounits'],
        Math.max(1, context.timeoutMs - (performance.now() - started)),
      );
    let result = await ask(fields);
    if (
      result.code !== 0 &&
      /is not a valid field/i.test(result.stderr + result.stdout) &&
      !this.#legacy.has(target.id)
    ) {
      this.#legacy.add(target.id);
      fields = legacyFieldNames(NVIDIA_SMI_FIELDS);
      result = await ask(fields);
    }
    if (result.timedOut)
      throw new PollError('timeout', `${command[0]} did not finish within ${context.timeoutMs} ms`);
    if (result.spawnError)
      throw new PollError(
        'exit_status',
        `${command[0]}: ${result.spawnError.code} ${result.spawnError.message}`,
      );
    const { readings, unreadable } = nvidiaSmiReadings(result.stdout, fields, target.name, context.ts);
    const problems: string[] = [];
    const stderr = result.stderr.trim().split('\n')[0]?.slice(0, 200) ?? '';
    if (readings.length === 0)
      throw new PollError('exit_status', `${command[0]} exited ${result.code}${stderr ? `: ${stderr}` : ''}`);
    if (result.code !== 0) problems.push(`exited ${result.code}${stderr ? `: ${stderr}` : ''}`);
    if (unreadable > 0) problems.push(`${unreadable} unreadable line(s)`);
    return { readings, problems, repairs: [] };
  }
}
