/**
 * site.yaml, the agent's one configuration file (docs/agent.md has the reference): parsed once
 * at start with zod into a frozen object. `${NAME}` in any string is replaced from the environment
 * passed in, so the site token can stay out of the file. A bad file stops the agent with one line
 * per problem, naming the field (`site.yaml: miners[2].range: "10.0.1.0/33" is not an IPv4 network`).
 */
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEVICE_NAME_MAX, nameProblem } from '../catalog/index.ts';
import { expandRange } from './address-range.ts';
import type { Target } from './collectors/collector.ts';
import { METER_MAPS } from './collectors/modbus/meters.ts';
import {
  METER_METRICS,
  REGISTER_FUNCTIONS,
  REGISTER_TYPES,
  REGISTER_UNITS,
  type RegisterMap,
  unitFits,
  WORD_ORDERS,
} from './collectors/modbus/registers.ts';

export class AgentConfigError extends Error {
  override name = 'AgentConfigError';
}

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** 1073741824, "1GiB", "512 MiB", "2GB". */
const ByteSize = z.union([z.number().int().positive(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return value;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$/i.exec(value);
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `expected a size like 512MiB or 2GB, got "${value}"` });
    return z.NEVER;
  }
  return Math.floor(Number(m[1]) * BYTE_UNITS[(m[2] ?? '').toLowerCase()]!);
});

const Seconds = z.number().positive().max(86_400);
const Port = z.int().min(1).max(65_535);
const Timing = { interval_s: Seconds.optional(), timeout_s: Seconds.optional() };

const RegisterSpecSchema = z.strictObject({
  address: z.int().min(0).max(65_535),
  type: z.enum(REGISTER_TYPES),
  unit: z.enum(
    Object.keys(REGISTER_UNITS) as [keyof typeof REGISTER_UNITS, ...(keyof typeof REGISTER_UNITS)[]],
  ),
  scale: z.number().finite().optional(),
  word_order: z.enum(WORD_ORDERS).optional(),
  function: z.enum(REGISTER_FUNCTIONS).optional(),
});

const RegisterMapSchema = z.strictObject({
  word_order: z.enum(WORD_ORDERS).default('big'),
  function: z.enum(REGISTER_FUNCTIONS).default('holding'),
  fields: z.array(RegisterSpecSchema.extend({ metric: z.enum(METER_METRICS) })).min(1),
});

const MinerEntry = z
  .strictObject({
    address: z.string().min(1).optional(),
    range: z.string().min(1).optional(),
    port: Port.optional(),
    api: z.enum(['auto', 'cgminer', 'whatsminer-v3']).default('auto'),
    /** Device name template: {ip}, {port}, {i} (1-based position in the range, three digits). */
    name: z.string().min(1).max(DEVICE_NAME_MAX).optional(),
    expected_hashrate_ths: z.number().positive().optional(),
    ...Timing,
  })
  .refine((m) => (m.address === undefined) !== (m.range === undefined), {
    message: 'give either address or range',
  })
  .refine((m) => !(m.api === 'auto' && m.port !== undefined), {
    message: 'a port needs the api named (cgminer or whatsminer-v3): auto asks the standard ports',
    path: ['port'],
  });

const MeterEntry = z
  .strictObject({
    name: z.string().min(1).max(DEVICE_NAME_MAX),
    host: z.string().min(1),
    port: Port.default(502),
    unit_id: z.int().min(0).max(255).default(1),
    kind: z.enum(['meter', 'pdu']).default('meter'),
    model: z.string().optional(),
    registers: RegisterMapSchema.optional(),
    available_power_w: z.number().min(0).optional(),
    available_power_register: RegisterSpecSchema.extend({
      unit_id: z.int().min(0).max(255).optional(),
    }).optional(),
    ...Timing,
  })
  .refine((m) => (m.model === undefined) !== (m.registers === undefined), {
    message: `give either model (${Object.keys(METER_MAPS).join(', ')}) or registers`,
  })
  .refine((m) => m.model === undefined || m.model in METER_MAPS, {
    message: `unknown meter model; shipped: ${Object.keys(METER_MAPS).join(', ')} (or give registers)`,
    path: ['model'],
  })
  .refine((m) => !(m.available_power_w !== undefined && m.available_power_register !== undefined), {
    message: 'give available_power_w or available_power_register, not both',
  });

const GpuEntry = z
  .strictObject({
    name: z
      .string()
      .min(1)
      .max(DEVICE_NAME_MAX - 8),
    dcgm: z.url().optional(),
    /** true: `nvidia-smi` on this host; or the command that runs it (["ssh", "node-017", "nvidia-smi"]). */
    nvidia_smi: z.union([z.literal(true), z.array(z.string().min(1)).min(1)]).optional(),
    ...Timing,
  })
  .refine((g) => (g.dcgm === undefined) !== (g.nvidia_smi === undefined), {
    message: 'give either dcgm or nvidia_smi',
  });

const PollClass = z.strictObject({ interval_s: Seconds.optional(), timeout_s: Seconds.optional() });

export const SiteFile = z.strictObject({
  hashwatt: z
    .strictObject({
      url: z.url({ protocol: /^https?$/ }),
      token: z.string().min(1).optional(),
      token_file: z.string().min(1).optional(),
      transport: z.enum(['ws', 'http']).default('ws'),
    })
    .refine((h) => (h.token === undefined) !== (h.token_file === undefined), {
      message: 'give either token or token_file',
    }),
  spool: z
    .strictObject({
      dir: z.string().min(1).default('spool'),
      max_bytes: ByteSize.default(1024 ** 3),
      sync_interval_ms: z.int().min(1).max(60_000).default(200),
    })
    .default({ dir: 'spool', max_bytes: 1024 ** 3, sync_interval_ms: 200 }),
  health: z
    .strictObject({
      /** host:port of the local /metrics, or false for none. */
      listen: z.union([z.string(), z.literal(false)]).default('127.0.0.1:9108'),
      /** Per-target series (up, failures): bounded by the targets configured. */
      per_target: z.boolean().default(true),
    })
    .default({ listen: '127.0.0.1:9108', per_target: true }),
  poll: z
    .strictObject({
      concurrency: z.int().min(1).max(10_000).default(512),
      connect_timeout_s: Seconds.default(2),
      miners: PollClass.default({}),
      meters: PollClass.default({}),
      gpus: PollClass.default({}),
    })
    .default({ concurrency: 512, connect_timeout_s: 2, miners: {}, meters: {}, gpus: {} }),
  delivery: z
    .strictObject({
      window: z.int().min(1).max(64).optional(),
      max_batch_readings: z.int().min(1).max(10_000).optional(),
      max_batch_bytes: z
        .int()
        .min(16 * 1024)
        .max(4 * 1024 * 1024)
        .optional(),
      gzip_level: z.int().min(0).max(9).optional(),
      /** Longest wait between two tries while hashwatt cannot be reached: how soon its return is noticed. */
      retry_max_s: z.number().min(0.1).max(600).optional(),
    })
    .default({}),
  miners: z.array(MinerEntry).default([]),
  meters: z.array(MeterEntry).default([]),
  gpus: z.array(GpuEntry).default([]),
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});
export type SiteFile = z.infer<typeof SiteFile>;

/** A target with its schedule. */
export type ScheduledTarget = Target & { readonly intervalMs: number; readonly timeoutMs: number };

export interface AgentConfig {
  readonly source: string;
  readonly url: string;
  readonly token: string;
  readonly transport: 'ws' | 'http';
  readonly spool: { readonly dir: string; readonly maxBytes: number; readonly syncIntervalMs: number };
  readonly health: { readonly listen: { host: string; port: number } | null; readonly perTarget: boolean };
  readonly concurrency: number;
  readonly connectTimeoutMs: number;
  readonly delivery: {
    window?: number;
    maxBatchReadings?: number;
    maxBatchBytes?: number;
    gzipLevel?: number;
    retryMaxMs?: number;
  };
  readonly targets: readonly ScheduledTarget[];
  /** The miner ranges and addresses, as written: what `agent discover` scans by default. */
  readonly minerAddresses: readonly string[];
  readonly logLevel: string;
}

/** Default schedules: miners every 10 s, meters every 5 s (the site's power moves fast), GPUs every 10 s. */
export const DEFAULT_SCHEDULE = {
  miners: { interval_s: 10, timeout_s: 5 },
  meters: { interval_s: 5, timeout_s: 3 },
  gpus: { interval_s: 10, timeout_s: 5 },
} as const;

function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const part of p)
    out += typeof part === 'number' ? `[${part}]` : `${out === '' ? '' : '.'}${String(part)}`;
  return out === '' ? '(file)' : out;
}

/** Replaces `${NAME}` in every string of a parsed YAML document. */
function interpolate(
  value: unknown,
  env: Readonly<Record<string, string | undefined>>,
  where: string[],
  missing: Set<string>,
): unknown {
  if (typeof value === 'string')
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const v = env[name];
      if (v === undefined) {
        missing.add(`${where.join('.') || '(file)'}: \${${name}} is not set in the environment`);
        return '';
      }
      return v;
    });
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, [...where, `[${i}]`], missing));
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, interpolate(v, env, [...where, k], missing)]),
    );
  return value;
}

function parseListen(text: string): { host: string; port: number } | undefined {
  const m = /^(.*):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port > 65_535) return undefined;
  return { host: m[1]!.replace(/^\[|\]$/g, '') || '127.0.0.1', port };
}

function renderName(template: string, vars: { ip: string; port: string; i: number }): string {
  return template
    .replaceAll('{ip}', vars.ip)
    .replaceAll('{port}', vars.port)
    .replaceAll('{i}', String(vars.i).padStart(3, '0'));
}

export interface ParseOptions {
  /** Names the file in messages, and `spool.dir` / `token_file` are relative to its directory. */
  source: string;
  env: Readonly<Record<string, string | undefined>>;
  /** Reads token_file. */
  readFile: (file: string) => string;
}

/** Parses and resolves site.yaml's text. Throws AgentConfigError listing every problem. */
export function parseAgentConfig(text: string, options: ParseOptions): AgentConfig {
  const name = path.basename(options.source);
  const fail = (lines: string[]): never => {
    throw new AgentConfigError(lines.map((l) => `${name}: ${l}`).join('\n'));
  };
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    fail([`not YAML: ${(error as Error).message.split('\n')[0]}`]);
  }
  const missing = new Set<string>();
  const interpolated = interpolate(document ?? {}, options.env, [], missing);
  if (missing.size > 0) fail([...missing]);
  const parsed = SiteFile.safeParse(interpolated);
  if (!parsed.success) fail(parsed.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`));
  const file = parsed.data!;
  const base = path.dirname(path.resolve(options.source));
  const problems: string[] = [];

  let token = file.hashwatt.token;
  if (file.hashwatt.token_file !== undefined) {
    try {
      token = options.readFile(path.resolve(base, file.hashwatt.token_file)).trim();
      if (token === '') problems.push(`hashwatt.token_file: ${file.hashwatt.token_file} is empty`);
    } catch (error) {
      problems.push(
        `hashwatt.token_file: cannot read ${file.hashwatt.token_file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
  }
  let listen: { host: string; port: number } | null = null;
  if (file.health.listen !== false) {
    listen = parseListen(file.health.listen) ?? null;
    if (!listen) problems.push(`health.listen: expected host:port, got "${file.health.listen}"`);
  }

  const targets: ScheduledTarget[] = [];
  const devices = new Map<string, string>();
  const claim = (device: string, where: string) => {
    const bad = nameProblem(device, DEVICE_NAME_MAX);
    if (bad) problems.push(`${where}: device name "${device.slice(0, 40)}" ${bad.message}`);
    const other = devices.get(device);
    if (other) problems.push(`${where}: device name "${device}" is also ${other}'s`);
    devices.set(device, where);
  };
  const schedule = (cls: keyof typeof DEFAULT_SCHEDULE, own: { interval_s?: number; timeout_s?: number }) => {
    const intervalS = own.interval_s ?? file.poll[cls].interval_s ?? DEFAULT_SCHEDULE[cls].interval_s;
    const timeoutS = Math.min(
      intervalS,
      own.timeout_s ?? file.poll[cls].timeout_s ?? DEFAULT_SCHEDULE[cls].timeout_s,
    );
    return { intervalMs: Math.round(intervalS * 1000), timeoutMs: Math.round(timeoutS * 1000) };
  };

  const minerAddresses: string[] = [];
  const endpoints = new Set<string>();
  file.miners.forEach((m, i) => {
    const where = `miners[${i}]`;
    const spec = m.range ?? m.address!;
    minerAddresses.push(spec);
    let hosts: string[];
    if (m.range !== undefined) {
      const r = expandRange(m.range);
      if (!r.ok) {
        problems.push(`${where}.range: ${r.message}`);
        return;
      }
      hosts = r.addresses;
    } else hosts = [m.address!];
    const portText = m.port !== undefined ? String(m.port) : m.api === 'whatsminer-v3' ? '4433' : '4028';
    const template = m.name ?? (m.port !== undefined ? 'miner-{ip}-{port}' : 'miner-{ip}');
    if (hosts.length > 1 && !template.includes('{ip}') && !template.includes('{i}'))
      problems.push(`${where}.name: a range needs {ip} or {i} in the name, or every miner gets the same one`);
    hosts.forEach((host, k) => {
      const endpoint = `${host}:${m.api === 'auto' ? 'auto' : portText}`;
      if (endpoints.has(endpoint)) problems.push(`${where}: ${host} is listed twice`);
      endpoints.add(endpoint);
      const device = renderName(template, { ip: host, port: portText, i: k + 1 });
      claim(device, where);
      targets.push({
        type: 'miner',
        id: `miner:${device}`,
        api: m.api,
        host,
        ...(m.port !== undefined && { port: m.port }),
        device,
        ...(m.expected_hashrate_ths !== undefined && { expectedHashrateThs: m.expected_hashrate_ths }),
        ...schedule('miners', m),
      });
    });
  });

  file.meters.forEach((m, i) => {
    const where = `meters[${i}]`;
    claim(m.name, where);
    let map: RegisterMap;
    if (m.model !== undefined) map = METER_MAPS[m.model]!;
    else {
      const r = m.registers!;
      map = {
        model: 'custom',
        label: 'register map from site.yaml',
        wordOrder: r.word_order,
        function: r.function,
        fields: r.fields.map((f) => ({
          metric: f.metric,
          address: f.address,
          type: f.type,
          unit: f.unit,
          ...(f.scale !== undefined && { scale: f.scale }),
          ...(f.word_order !== undefined && { wordOrder: f.word_order }),
          ...(f.function !== undefined && { function: f.function }),
        })),
      };
      r.fields.forEach((f, k) => {
        if (!unitFits(f.metric, f.unit))
          problems.push(`${where}.registers.fields[${k}].unit: ${f.unit} does not measure ${f.metric}`);
      });
    }
    const signal = m.available_power_register;
    if (signal && !unitFits('available_power_w', signal.unit))
      problems.push(`${where}.available_power_register.unit: ${signal.unit} is not a power`);
    targets.push({
      type: 'meter',
      id: `meter:${m.name}`,
      host: m.host,
      port: m.port,
      unitId: m.unit_id,
      device: m.name,
      kind: m.kind,
      model: map.model,
      map,
      ...(m.available_power_w !== undefined && { availablePowerW: m.available_power_w }),
      ...(signal && {
        availablePowerRegister: {
          address: signal.address,
          type: signal.type,
          unit: signal.unit,
          ...(signal.scale !== undefined && { scale: signal.scale }),
          ...(signal.word_order !== undefined && { wordOrder: signal.word_order }),
          ...(signal.function !== undefined && { function: signal.function }),
          ...(signal.unit_id !== undefined && { unitId: signal.unit_id }),
        },
      }),
      ...schedule('meters', m),
    });
  });

  const gpuNames = new Set<string>();
  file.gpus.forEach((g, i) => {
    const where = `gpus[${i}]`;
    if (gpuNames.has(g.name)) problems.push(`${where}.name: "${g.name}" is listed twice`);
    gpuNames.add(g.name);
    targets.push({
      type: 'gpu',
      id: `gpu:${g.name}`,
      source: g.dcgm !== undefined ? 'dcgm' : 'nvidia-smi',
      name: g.name,
      ...(g.dcgm !== undefined && { url: g.dcgm }),
      ...(g.nvidia_smi !== undefined && { command: g.nvidia_smi === true ? ['nvidia-smi'] : g.nvidia_smi }),
      ...schedule('gpus', g),
    });
  });

  if (targets.length === 0 && problems.length === 0)
    problems.push('no miners, meters or gpus: nothing to poll');
  if (problems.length > 0) fail(problems);

  return Object.freeze({
    source: options.source,
    url: file.hashwatt.url,
    token: token!,
    transport: file.hashwatt.transport,
    spool: Object.freeze({
      dir: path.resolve(base, file.spool.dir),
      maxBytes: file.spool.max_bytes,
      syncIntervalMs: file.spool.sync_interval_ms,
    }),
    health: Object.freeze({ listen, perTarget: file.health.per_target }),
    concurrency: file.poll.concurrency,
    connectTimeoutMs: Math.round(file.poll.connect_timeout_s * 1000),
    delivery: Object.freeze({
      ...(file.delivery.window !== undefined && { window: file.delivery.window }),
      ...(file.delivery.max_batch_readings !== undefined && {
        maxBatchReadings: file.delivery.max_batch_readings,
      }),
      ...(file.delivery.max_batch_bytes !== undefined && { maxBatchBytes: file.delivery.max_batch_bytes }),
      ...(file.delivery.gzip_level !== undefined && { gzipLevel: file.delivery.gzip_level }),
      ...(file.delivery.retry_max_s !== undefined && {
        retryMaxMs: Math.round(file.delivery.retry_max_s * 1000),
      }),
    }),
    targets: Object.freeze(targets),
    minerAddresses: Object.freeze(minerAddresses),
    logLevel: file.log_level,
  });
}
