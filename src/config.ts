import { z } from 'zod';
import { DEFAULT_THRESHOLDS, type Thresholds, ThresholdsSchema } from './fleet/thresholds.ts';

const seconds = (fallback: number) => z.coerce.number().positive().default(fallback);

/** Every environment variable hashwatt reads. No other file reads `process.env`. */
const ConfigSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'a postgres:// or postgresql:// URL')
    .optional(),
  HASHWATT_DATA_DIR: z.string().min(1).default('./data'),
  HASHWATT_ADMIN_TOKEN: z.string().min(16, 'at least 16 characters').optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Raw readings older than this are rejected at ingest and their partitions dropped. */
  HASHWATT_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  HASHWATT_PARTITIONS_AHEAD_DAYS: z.coerce.number().int().min(1).max(30).default(2),
  HASHWATT_MAX_DEVICES_PER_SITE: z.coerce.number().int().positive().default(100_000),
  HASHWATT_DB_POOL_SIZE: z.coerce.number().int().min(2).max(100).default(10),
  HASHWATT_DB_STATEMENT_TIMEOUT_S: seconds(30),
  HASHWATT_SHUTDOWN_TIMEOUT_S: seconds(25),
  /** Global alert thresholds as JSON, e.g. {"site_down_after_s":90}; names as in the sites API. */
  HASHWATT_ALERT_THRESHOLDS: z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'a JSON object of thresholds' });
        return z.NEVER;
      }
    })
    .pipe(ThresholdsSchema.partial())
    .optional(),
  HASHWATT_ALERT_INTERVAL_S: seconds(15),
  /** Comma-separated Alertmanager base URLs (alerts go to POST {url}/api/v2/alerts). */
  HASHWATT_ALERTMANAGER_URLS: urlList(),
  /** Comma-separated webhook URLs that receive every firing and resolution as JSON. */
  HASHWATT_WEBHOOK_URLS: urlList(),
  /** Per-device metric series for sites with at most this many devices (0: off). */
  HASHWATT_METRICS_PER_DEVICE_MAX: z.coerce.number().int().min(0).max(10_000).default(0),
  /** How far V8 lets the heap grow past live data between collections, in % (0: V8's own choice). */
  HASHWATT_HEAP_GROWING_PERCENT: z.coerce.number().int().min(0).max(400).default(50),
});

function urlList() {
  return z
    .string()
    .transform((text) =>
      text
        .split(',')
        .map((u) => u.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.url({ protocol: /^https?$/, error: 'comma-separated http(s) URLs' })))
    .default([]);
}

export type Config = Readonly<{
  port: number;
  host: string;
  /** Unset: the embedded PGlite database under `dataDir`. */
  databaseUrl: string | undefined;
  dataDir: string;
  adminToken: string | undefined;
  logLevel: z.infer<typeof ConfigSchema>['LOG_LEVEL'];
  retentionDays: number;
  partitionsAheadDays: number;
  maxDevicesPerSite: number;
  dbPoolSize: number;
  dbStatementTimeoutMs: number;
  shutdownTimeoutMs: number;
  /** Defaults for every site; each site may override some (sites API). */
  thresholds: Thresholds;
  alertIntervalMs: number;
  alertmanagerUrls: readonly string[];
  webhookUrls: readonly string[];
  metricsPerDeviceMax: number;
  heapGrowingPercent: number;
}>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment once; throws ConfigError with one line per bad variable. */
export function parseConfig(env: Record<string, string | undefined>): Config {
  // An empty variable means "not set": `FOO= npm start` should fall back to the default.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = ConfigSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? 'environment');
      const inner = issue.path.slice(1).join('.');
      return `invalid ${name}=${JSON.stringify(env[name] ?? '')}: ${inner ? `${inner}: ` : 'expected '}${issue.message}`;
    });
    throw new ConfigError(lines.join('\n'));
  }
  const e = parsed.data;
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.HASHWATT_DATA_DIR,
    adminToken: e.HASHWATT_ADMIN_TOKEN,
    logLevel: e.LOG_LEVEL,
    retentionDays: e.HASHWATT_RETENTION_DAYS,
    partitionsAheadDays: e.HASHWATT_PARTITIONS_AHEAD_DAYS,
    maxDevicesPerSite: e.HASHWATT_MAX_DEVICES_PER_SITE,
    dbPoolSize: e.HASHWATT_DB_POOL_SIZE,
    dbStatementTimeoutMs: e.HASHWATT_DB_STATEMENT_TIMEOUT_S * 1000,
    shutdownTimeoutMs: e.HASHWATT_SHUTDOWN_TIMEOUT_S * 1000,
    thresholds: Object.freeze({ ...DEFAULT_THRESHOLDS, ...e.HASHWATT_ALERT_THRESHOLDS }) as Thresholds,
    alertIntervalMs: e.HASHWATT_ALERT_INTERVAL_S * 1000,
    alertmanagerUrls: Object.freeze(e.HASHWATT_ALERTMANAGER_URLS),
    webhookUrls: Object.freeze(e.HASHWATT_WEBHOOK_URLS),
    metricsPerDeviceMax: e.HASHWATT_METRICS_PER_DEVICE_MAX,
    heapGrowingPercent: e.HASHWATT_HEAP_GROWING_PERCENT,
  });
}

/** The process's configuration, parsed from `process.env` on first use. */
export function loadConfig(): Config {
  return parseConfig(process.env);
}
