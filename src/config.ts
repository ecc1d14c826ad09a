import { z } from 'zod';

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
});

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
      return `invalid ${name}=${JSON.stringify(env[name] ?? '')}: expected ${issue.message}`;
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
  });
}

/** The process's configuration, parsed from `process.env` on first use. */
export function loadConfig(): Config {
  return parseConfig(process.env);
}
