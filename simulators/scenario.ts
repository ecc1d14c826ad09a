import { readdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { z } from 'zod';
import { ASIC_MODEL_NAMES } from './physics/asic.ts';
import { GPU_MODEL_NAMES } from './physics/gpu.ts';
import { countReportingDevices, nameplateItPowerW } from './physics/nameplate.ts';

const SCENARIO_DIR = join(import.meta.dirname, 'scenarios');

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const TimeOfDay = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected HH:MM (24-hour local time)');

/** A daily window of the grid schedule: between `from` and `to` local time the site may draw this share of capacity. */
export const GridWindow = z.strictObject({
  from: TimeOfDay,
  to: TimeOfDay,
  available_ratio: z.number().min(0).max(5),
});
export type GridWindow = z.infer<typeof GridWindow>;

/** Delivery settings of a site's agent; all optional, defaults suit a production agent. */
export const AgentSettings = z.strictObject({
  /** Requests (HTTP) or unacknowledged frames (WebSocket) in flight at once. */
  window: z.int().min(1).max(64).optional(),
  max_batch_readings: z.int().min(1).max(10_000).optional(),
  max_batch_bytes: z
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .optional(),
  max_buffer_readings: z.int().min(1).optional(),
  max_buffer_bytes: z.int().min(1024).optional(),
  gzip_level: z.int().min(0).max(9).optional(),
});
export type AgentSettings = z.infer<typeof AgentSettings>;

export const DeviceMixSchema = z.strictObject({
  /** Count per ASIC model, e.g. { "S21": 150, "S19 XP": 100 }. */
  asic: z.partialRecord(z.enum(ASIC_MODEL_NAMES), z.int().min(0)).default({}),
  /** Servers of eight GPUs each. */
  gpu_servers: z.int().min(0).default(0),
  gpu_model: z.enum(GPU_MODEL_NAMES).default('H100 SXM'),
});

/**
 * How a site's readings reach hashwatt: `direct`, the simulator's own agent pushes the physics'
 * readings; `site_agent`, the site's devices answer on their real protocols (CGMiner API, Whatsminer
 * V3, Modbus TCP, dcgm-exporter or nvidia-smi) on loopback addresses and a real `hashwatt agent`
 * polls them and pushes what it read: the whole production path.
 */
export const SiteAgentSettings = z.strictObject({
  /** Address of the first miner; the others follow (127.0.60.1, .2, …), each at its API's real port. */
  miner_base: z
    .string()
    .regex(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/, 'a loopback address, 127.x.y.z')
    .default('127.0.60.1'),
  /** Listen at the real ports on separate addresses (Linux), or at free ports of 127.0.0.1 (anywhere). */
  real_ports: z.boolean().default(true),
  gpu_source: z.enum(['dcgm', 'nvidia-smi']).default('dcgm'),
  meter_model: z.enum(['eastron-sdm630', 'schneider-pm5560']).default('eastron-sdm630'),
  /** The meter also publishes the grid's allowance on this Modbus unit, read as a register. */
  grid_signal_unit_id: z.int().min(0).max(255).optional(),
});
export type SiteAgentSettings = z.infer<typeof SiteAgentSettings>;

export const SiteSpec = z.strictObject({
  name: z.string().min(1).max(100),
  kind: z.enum(['mining', 'ai', 'mixed']),
  /** Contracted grid capacity: what the admin API stores (as capacity_w) and the ceiling of available power. */
  capacity_kw: z.number().positive(),
  region: z.string().min(1).optional(),
  /**
   * Alert threshold overrides the site gets when provisioned (names as in hashwatt's sites API), as
   * an operator would set them: an AI hall's load follows its jobs, so its unused share swings more.
   */
  thresholds: z.record(z.string(), z.number()).optional(),
  timezone: z
    .string()
    .refine(isTimeZone, 'expected an IANA time zone, e.g. "America/Chicago"')
    .default('UTC'),
  transport: z.enum(['http', 'ws']).default('http'),
  /** Facility power over IT power; the site meter reports IT × PUE. */
  pue: z.number().min(1).max(2).default(1.1),
  /** Whether the site has a main meter reporting facility and available power. */
  meter: z.boolean().default(true),
  /** Daily mean inlet air temperature; the day swings ±6 °C around it. */
  ambient_c: z.number().min(-40).max(50).default(25),
  devices: DeviceMixSchema,
  /** Daily grid schedule; outside every window the site may draw its full capacity. */
  grid: z.array(GridWindow).default([]),
  agent: AgentSettings.default({}),
  collection: z.enum(['direct', 'site_agent']).default('direct'),
  site_agent: SiteAgentSettings.default({
    miner_base: '127.0.60.1',
    real_ports: true,
    gpu_source: 'dcgm',
    meter_model: 'eastron-sdm630',
  }),
});
export type SiteSpec = z.infer<typeof SiteSpec>;

const faultTiming = {
  /** Limits the fault to one site; all sites when omitted. */
  site: z.string().optional(),
  /** Offset from scenario start. */
  at_s: z.number().min(0),
  /** Omitted: until the end of the run. */
  duration_s: z.number().positive().optional(),
};

export const Fault = z.discriminatedUnion('type', [
  /** The agent is silent; with backfill it keeps generating into its buffer and sends the lot on recovery. */
  z.strictObject({ type: z.literal('site_outage'), ...faultTiming, backfill: z.boolean().default(true) }),
  /** Connections drop and the network stays down for duration_s (default 5 s). */
  z.strictObject({
    type: z.literal('network_flap'),
    ...faultTiming,
    duration_s: z.number().positive().default(5),
  }),
  /** A fraction of devices goes down: "error" keeps reporting with status error, "silent" reports nothing. */
  z.strictObject({
    type: z.literal('devices_down'),
    ...faultTiming,
    fraction: z.number().gt(0).max(1),
    mode: z.enum(['error', 'silent']).default('silent'),
  }),
  /** Available power far above load (e.g. excess wind behind the meter). */
  z.strictObject({
    type: z.literal('surplus'),
    ...faultTiming,
    available_ratio: z.number().min(1).max(5).default(1.8),
  }),
  /** The grid asks the site to cut to this share of capacity; ASICs are curtailed to fit. */
  z.strictObject({
    type: z.literal('curtailment'),
    ...faultTiming,
    available_ratio: z.number().min(0).max(1),
  }),
  /** The site's clock is off: its readings' ts are shifted by skew_s. */
  z.strictObject({ type: z.literal('clock_skew'), ...faultTiming, skew_s: z.number() }),
]);
export type Fault = z.infer<typeof Fault>;

export const Scenario = z
  .strictObject({
    name: z.string().min(1),
    description: z.string().optional(),
    /** Seconds between two readings of one device. */
    interval_s: z.number().min(0.05).max(3600).default(10),
    /** 0 runs until stopped. */
    duration_s: z.number().min(0).default(0),
    ts_format: z.enum(['rfc3339', 'epoch_ms']).default('rfc3339'),
    /** Background hashboard losses, errors and silent devices at realistic rates. */
    random_failures: z.boolean().default(true),
    /** Load mode: open-loop, this many readings per second over all sites, from precomputed templates. */
    rate_per_s: z.number().positive().optional(),
    sites: z.array(SiteSpec).min(1),
    faults: z.array(Fault).default([]),
  })
  .superRefine((scenario, ctx) => {
    const names = new Set<string>();
    scenario.sites.forEach((site, i) => {
      if (names.has(site.name))
        ctx.addIssue({
          code: 'custom',
          path: ['sites', i, 'name'],
          message: `duplicate site name "${site.name}"`,
        });
      names.add(site.name);
      if (countReportingDevices(site.devices) === 0 && !site.meter) {
        ctx.addIssue({
          code: 'custom',
          path: ['sites', i, 'devices'],
          message: 'a site needs at least one device or a meter',
        });
      }
      if (scenario.rate_per_s !== undefined && site.collection === 'site_agent') {
        ctx.addIssue({
          code: 'custom',
          path: ['sites', i, 'collection'],
          message: 'load scenarios (rate_per_s) push directly; site_agent needs physics',
        });
      }
      if (scenario.rate_per_s !== undefined && site.devices.gpu_servers > 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['sites', i, 'devices', 'gpu_servers'],
          message: 'load scenarios (rate_per_s) simulate ASICs only',
        });
      }
    });
    scenario.faults.forEach((fault, i) => {
      if (fault.site !== undefined && !names.has(fault.site)) {
        ctx.addIssue({
          code: 'custom',
          path: ['faults', i, 'site'],
          message: `unknown site "${fault.site}"`,
        });
      }
      if (scenario.rate_per_s !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['faults', i],
          message: 'load scenarios (rate_per_s) take no faults',
        });
      }
      const agentSites = scenario.sites.filter((s) => s.collection === 'site_agent').map((s) => s.name);
      const delivery =
        fault.type === 'site_outage' || fault.type === 'network_flap' || fault.type === 'clock_skew';
      if (delivery && (fault.site === undefined ? agentSites.length > 0 : agentSites.includes(fault.site))) {
        ctx.addIssue({
          code: 'custom',
          path: ['faults', i, 'type'],
          message: `${fault.type} acts on the simulator's own agent; a site_agent site's agent runs as in production`,
        });
      }
    });
  });
export type Scenario = z.infer<typeof Scenario>;

/** Changes applied after validation, so tests and benchmarks can resize a shipped scenario. */
export interface ScenarioOverrides {
  /** Multiplies every device count (at least one of each kind that was there) and the capacity with it. */
  scale?: number;
  interval_s?: number;
  duration_s?: number;
  transport?: 'http' | 'ws';
  /** Load scenarios only: target readings per second. */
  rate_per_s?: number;
  /** Keep only these sites. */
  sites?: string[];
  random_failures?: boolean;
}

/** Thrown when a scenario file is missing or invalid; the message names the bad field. */
export class ScenarioError extends Error {
  override name = 'ScenarioError';
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(root)' : out;
}

function formatIssues(source: string, issues: readonly z.core.$ZodIssue[]): string {
  const lines = issues.map((issue) => {
    let message = issue.message;
    if (issue.code === 'unrecognized_keys' && issue.path.at(-1) === 'asic')
      message += ` (known ASIC models: ${ASIC_MODEL_NAMES.join(', ')})`;
    return `  ${formatPath(issue.path)}: ${message}`;
  });
  return `invalid scenario ${source}:\n${lines.join('\n')}`;
}

/** Validates a scenario object; `source` names it in error messages. */
export function parseScenario(
  input: unknown,
  source = 'scenario',
  overrides: ScenarioOverrides = {},
): Scenario {
  const result = Scenario.safeParse(input);
  if (!result.success) throw new ScenarioError(formatIssues(source, result.error.issues));
  return applyOverrides(result.data, overrides, source);
}

/** Names of the scenarios shipped in simulators/scenarios. */
export function listScenarios(): string[] {
  return readdirSync(SCENARIO_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => basename(f, '.json'))
    .sort();
}

/** Loads a shipped scenario by name ("demo") or any scenario file by path, validated, with overrides applied. */
export function loadScenario(nameOrPath: string, overrides: ScenarioOverrides = {}): Scenario {
  const isPath = nameOrPath.includes('/') || nameOrPath.includes('\\') || nameOrPath.endsWith('.json');
  const file = isPath ? resolve(nameOrPath) : join(SCENARIO_DIR, `${nameOrPath}.json`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    const known = isPath ? '' : ` (shipped scenarios: ${listScenarios().join(', ')})`;
    throw new ScenarioError(`scenario not found: ${nameOrPath}${known}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ScenarioError(`invalid scenario ${file}: not JSON: ${(err as Error).message}`);
  }
  return parseScenario(json, isPath ? file : `${nameOrPath}.json`, overrides);
}

function scaleCount(count: number, scale: number): number {
  return count === 0 ? 0 : Math.max(1, Math.round(count * scale));
}

function applyOverrides(scenario: Scenario, o: ScenarioOverrides, source: string): Scenario {
  const fail = (message: string) => {
    throw new ScenarioError(`invalid overrides for ${source}: ${message}`);
  };
  if (o.scale !== undefined && !(o.scale > 0)) fail(`scale must be > 0, got ${o.scale}`);
  if (o.interval_s !== undefined && !(o.interval_s >= 0.05))
    fail(`interval_s must be >= 0.05, got ${o.interval_s}`);
  if (o.duration_s !== undefined && !(o.duration_s >= 0))
    fail(`duration_s must be >= 0, got ${o.duration_s}`);
  if (o.rate_per_s !== undefined) {
    if (scenario.rate_per_s === undefined)
      fail('rate_per_s applies to load scenarios only (those with rate_per_s)');
    if (!(o.rate_per_s > 0)) fail(`rate_per_s must be > 0, got ${o.rate_per_s}`);
  }
  let sites = scenario.sites;
  if (o.sites !== undefined) {
    const unknown = o.sites.filter((n) => !sites.some((s) => s.name === n));
    if (unknown.length > 0) fail(`unknown sites: ${unknown.join(', ')}`);
    sites = sites.filter((s) => o.sites?.includes(s.name));
  }
  sites = sites.map((site) => {
    let next = { ...site };
    if (o.transport !== undefined) next.transport = o.transport;
    if (o.scale !== undefined && o.scale !== 1) {
      const scale = o.scale;
      const asic = Object.fromEntries(
        Object.entries(site.devices.asic).map(([m, n]) => [m, scaleCount(n ?? 0, scale)]),
      );
      const devices = { ...site.devices, asic, gpu_servers: scaleCount(site.devices.gpu_servers, scale) };
      // Capacity follows the nameplate that survives rounding, so the headroom of the original stays.
      const before = nameplateItPowerW(site.devices);
      const ratio = before > 0 ? nameplateItPowerW(devices) / before : scale;
      next = { ...next, devices, capacity_kw: Math.max(1, Math.round(site.capacity_kw * ratio * 10) / 10) };
    }
    return next;
  });
  const kept = new Set(sites.map((s) => s.name));
  return {
    ...scenario,
    interval_s: o.interval_s ?? scenario.interval_s,
    duration_s: o.duration_s ?? scenario.duration_s,
    rate_per_s: o.rate_per_s ?? scenario.rate_per_s,
    random_failures: o.random_failures ?? scenario.random_failures,
    sites,
    faults: scenario.faults.filter((f) => f.site === undefined || kept.has(f.site)),
  };
}
