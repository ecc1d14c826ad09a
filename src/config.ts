import { z } from 'zod';
import { DEFAULT_THRESHOLDS, type Thresholds, ThresholdsSchema } from './fleet/thresholds.ts';

/** Messages written here, in plain words; any other message is zod's own and is reworded. */
const PLAIN = new Set<string>();
const plain = (message: string) => {
  PLAIN.add(message);
  return message;
};

/** A whole number in [min, max]; the message says so in plain words, whatever was wrong. */
const integer = (min: number, max?: number) => {
  const error = plain(
    max === undefined ? `a whole number, at least ${min}` : `a whole number from ${min} to ${max}`,
  );
  const n = z.coerce.number({ error }).int({ error }).min(min, { error });
  return max === undefined ? n : n.max(max, { error });
};
const seconds = (fallback: number) => {
  const error = plain('a number of seconds greater than 0');
  return z.coerce.number({ error }).positive({ error }).default(fallback);
};
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const bearerToken = () => z.string().min(16, plain('at least 16 characters')).optional();

/** Every environment variable hashwatt reads. No other file reads `process.env`. */
const ConfigSchema = z.object({
  PORT: integer(0, 65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, plain('a postgres:// or postgresql:// URL'))
    .optional(),
  /** A streaming standby of DATABASE_URL: series and energy are read there (docs/scaling.md). */
  HASHWATT_READ_DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, plain('a postgres:// or postgresql:// URL'))
    .optional(),
  HASHWATT_DATA_DIR: z.string().min(1).default('./data'),
  HASHWATT_ADMIN_TOKEN: bearerToken(),
  /** Unset: /metrics is open, the Prometheus convention; set: scrapes need `Authorization: Bearer`. */
  HASHWATT_METRICS_TOKEN: bearerToken(),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: plain(`one of ${LOG_LEVELS.join(', ')}`) }).default('info'),
  /**
   * Retention per tier (docs/rollups.md). Raw readings older than the raw tier are rejected at
   * ingest; every tier drops whole partitions past its days, raw only once rolled up.
   */
  HASHWATT_RETENTION_RAW_DAYS: integer(1, 3650).optional(),
  HASHWATT_RETENTION_1M_DAYS: integer(1, 3650).optional(),
  HASHWATT_RETENTION_1H_DAYS: integer(1, 36500).optional(),
  /** The single retention of earlier versions: still honoured as the raw tier's, with a notice. */
  HASHWATT_RETENTION_DAYS: integer(1, 3650).optional(),
  /** Resolved alerts are kept this long, whatever the readings' retention. */
  HASHWATT_ALERT_HISTORY_DAYS: integer(1, 3650).default(90),
  HASHWATT_ROLLUP_INTERVAL_S: seconds(10),
  HASHWATT_PARTITIONS_AHEAD_DAYS: integer(1, 30).default(2),
  HASHWATT_MAX_DEVICES_PER_SITE: integer(1).default(100_000),
  HASHWATT_DB_POOL_SIZE: integer(2, 100).default(10),
  HASHWATT_DB_STATEMENT_TIMEOUT_S: seconds(30),
  HASHWATT_SHUTDOWN_TIMEOUT_S: seconds(25),
  /** Global alert thresholds as JSON, e.g. {"site_down_after_s":90}; names as in the sites API. */
  HASHWATT_ALERT_THRESHOLDS: z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: plain('a JSON object of thresholds') });
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
  HASHWATT_METRICS_PER_DEVICE_MAX: integer(0, 10_000).default(0),
  /** How far V8 lets the heap grow past live data between collections, in % (0: V8's own choice). */
  HASHWATT_HEAP_GROWING_PERCENT: integer(0, 400).default(50),
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
    .pipe(z.array(z.url({ protocol: /^https?$/, error: plain('comma-separated http(s) URLs') })))
    .default([]);
}

export type Config = Readonly<{
  port: number;
  host: string;
  /** Unset: the embedded PGlite database under `dataDir`. */
  databaseUrl: string | undefined;
  /** A read-only standby for history reads; unset: history is read from the primary. */
  readDatabaseUrl: string | undefined;
  dataDir: string;
  adminToken: string | undefined;
  /** Bearer token /metrics asks for; unset: /metrics is open. */
  metricsToken: string | undefined;
  logLevel: (typeof LOG_LEVELS)[number];
  /** Raw readings' retention (the raw tier): nothing older is accepted. */
  retentionDays: number;
  retention: { raw: number; site1m: number; hourly: number };
  alertHistoryDays: number;
  rollupIntervalMs: number;
  /** Notices for the log at start: settings that still work but have a newer name. */
  notices: readonly string[];
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

/** Variables whose value is a secret in full: a bad one is described, never echoed. */
const SECRET_NAME = /TOKEN|SECRET|PASSWORD|KEY/i;

/**
 * A variable's value as an error message may show it. Of every URL in it (lists of URLs included)
 * only the scheme, host and port are shown: the user info becomes `***@` (a password may hold `@`,
 * `/`, `?` or `#`, so everything up to the last `@` goes) and a path or query becomes `/…` (a
 * webhook's path is often its secret). Secret variables show only their length. Error output ends
 * up in terminals, CI logs and log shippers.
 */
export function redactValue(name: string, value: string): string {
  if (SECRET_NAME.test(name)) return `(${value.length} characters, not shown)`;
  return JSON.stringify(
    value.replace(/([a-z][a-z0-9+.-]*:\/\/)([^\s,]*)/gi, (_m, scheme: string, rest: string) =>
      redactUrlRest(scheme, rest),
    ),
  );
}

function redactUrlRest(scheme: string, rest: string): string {
  const at = rest.lastIndexOf('@');
  const afterUser = at >= 0 ? rest.slice(at + 1) : rest;
  const hostEnd = afterUser.search(/[/?#]/);
  const host = hostEnd >= 0 ? afterUser.slice(0, hostEnd) : afterUser;
  const tail = hostEnd >= 0 && afterUser.length > hostEnd + 1 ? '/…' : hostEnd >= 0 ? '/' : '';
  return `${scheme}${at >= 0 ? '***@' : ''}${host}${tail}`;
}

/** One zod issue in plain words ("expected ..."), for the messages zod writes itself (nested fields). */
export function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return `expected ${issue.expected === 'int' ? 'a whole number' : `${/^[aeiou]/.test(issue.expected) ? 'an' : 'a'} ${issue.expected}`}`;
    case 'too_small':
      return `expected ${issue.origin === 'string' ? `at least ${issue.minimum} characters` : `${issue.inclusive ? 'at least' : 'more than'} ${issue.minimum}`}`;
    case 'too_big':
      return `expected ${issue.origin === 'string' ? `at most ${issue.maximum} characters` : `${issue.inclusive ? 'at most' : 'less than'} ${issue.maximum}`}`;
    case 'unrecognized_keys':
      return `unknown ${issue.keys.length > 1 ? 'names' : 'name'} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    case 'invalid_value':
      return `expected one of ${issue.values.map(String).join(', ')}`;
    default:
      return `expected ${issue.message}`;
  }
}

/** Parses the environment once; throws ConfigError with one line per bad variable. */
export function parseConfig(env: Record<string, string | undefined>): Config {
  // An empty variable means "not set": `FOO= npm start` should fall back to the default.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = ConfigSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? 'environment');
      // A field inside a JSON variable is named; an index into a URL list adds nothing.
      const inner = issue.path
        .slice(1)
        .filter((p) => typeof p === 'string')
        .join('.');
      const expected = PLAIN.has(issue.message) ? `expected ${issue.message}` : describeIssue(issue);
      const value = redactValue(name, env[name] ?? '');
      return `invalid ${name}${SECRET_NAME.test(name) ? ' ' : '='}${value}: ${inner ? `${inner}: ` : ''}${expected}`;
    });
    throw new ConfigError(lines.join('\n'));
  }
  const e = parsed.data;
  const { retention, notices } = retentionTiers(e);
  if (e.HASHWATT_READ_DATABASE_URL !== undefined && e.DATABASE_URL === undefined) {
    throw new ConfigError(
      'HASHWATT_READ_DATABASE_URL needs DATABASE_URL: a read standby replicates a Postgres primary, and the embedded PGlite has none',
    );
  }
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    readDatabaseUrl: e.HASHWATT_READ_DATABASE_URL,
    dataDir: e.HASHWATT_DATA_DIR,
    adminToken: e.HASHWATT_ADMIN_TOKEN,
    metricsToken: e.HASHWATT_METRICS_TOKEN,
    logLevel: e.LOG_LEVEL,
    retentionDays: retention.raw,
    retention: Object.freeze(retention),
    alertHistoryDays: e.HASHWATT_ALERT_HISTORY_DAYS,
    rollupIntervalMs: e.HASHWATT_ROLLUP_INTERVAL_S * 1000,
    notices: Object.freeze(notices),
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

const RETENTION_DEFAULTS = { raw: 14, site1m: 90, hourly: 730 };

/**
 * The retention tiers from the environment. Each tier is built from the one below while it is
 * kept, so it may not be kept for less time: an explicit setting that would is refused; a default
 * below a longer raw retention (an upgrade keeping 365 days of raw) rises to it.
 */
function retentionTiers(e: {
  HASHWATT_RETENTION_RAW_DAYS?: number | undefined;
  HASHWATT_RETENTION_1M_DAYS?: number | undefined;
  HASHWATT_RETENTION_1H_DAYS?: number | undefined;
  HASHWATT_RETENTION_DAYS?: number | undefined;
}): { retention: { raw: number; site1m: number; hourly: number }; notices: string[] } {
  const notices: string[] = [];
  const legacy = e.HASHWATT_RETENTION_DAYS;
  if (
    legacy !== undefined &&
    e.HASHWATT_RETENTION_RAW_DAYS !== undefined &&
    legacy !== e.HASHWATT_RETENTION_RAW_DAYS
  ) {
    throw new ConfigError(
      `HASHWATT_RETENTION_DAYS=${legacy} and HASHWATT_RETENTION_RAW_DAYS=${e.HASHWATT_RETENTION_RAW_DAYS} disagree: HASHWATT_RETENTION_DAYS is the old name of HASHWATT_RETENTION_RAW_DAYS; set only the new one`,
    );
  }
  if (legacy !== undefined && e.HASHWATT_RETENTION_RAW_DAYS === undefined) {
    notices.push(
      `HASHWATT_RETENTION_DAYS=${legacy} is read as HASHWATT_RETENTION_RAW_DAYS (raw readings); rename it. Rollups are kept by HASHWATT_RETENTION_1M_DAYS and HASHWATT_RETENTION_1H_DAYS`,
    );
  }
  const raw = e.HASHWATT_RETENTION_RAW_DAYS ?? legacy ?? RETENTION_DEFAULTS.raw;
  const site1m = e.HASHWATT_RETENTION_1M_DAYS ?? Math.max(RETENTION_DEFAULTS.site1m, raw);
  const hourly = e.HASHWATT_RETENTION_1H_DAYS ?? Math.max(RETENTION_DEFAULTS.hourly, site1m);
  if (site1m < raw) {
    throw new ConfigError(
      `invalid HASHWATT_RETENTION_1M_DAYS=${site1m}: expected at least the raw retention (${raw} days); site minutes are built from raw readings while those are kept`,
    );
  }
  if (hourly < site1m) {
    throw new ConfigError(
      `invalid HASHWATT_RETENTION_1H_DAYS=${hourly}: expected at least the 1-minute retention (${site1m} days)`,
    );
  }
  return { retention: { raw, site1m, hourly }, notices };
}
