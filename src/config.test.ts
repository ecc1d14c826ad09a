import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, redactValue } from './config.ts';

describe('parseConfig', () => {
  it('applies defaults to an empty environment, embedded database included', () => {
    const config = parseConfig({});
    expect(config).toMatchObject({ port: 8080, host: '0.0.0.0', databaseUrl: undefined, dataDir: './data' });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('bounds the heap growth by default, and leaves it to V8 when set to 0', () => {
    expect(parseConfig({}).heapGrowingPercent).toBe(50);
    expect(parseConfig({ HASHWATT_HEAP_GROWING_PERCENT: '0' }).heapGrowingPercent).toBe(0);
    expect(() => parseConfig({ HASHWATT_HEAP_GROWING_PERCENT: '-5' })).toThrow(
      /HASHWATT_HEAP_GROWING_PERCENT/,
    );
  });

  it('treats an empty variable as unset', () => {
    expect(parseConfig({ PORT: '' }).port).toBe(8080);
  });

  it('names each bad variable and what it expected, one line each', () => {
    const error = (() => {
      try {
        parseConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x', HASHWATT_ADMIN_TOKEN: 'short' });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    const lines = (error as Error).message.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^invalid PORT="eighty": expected/);
    expect(lines.some((l) => l.startsWith('invalid DATABASE_URL="mysql://x": expected a postgres://'))).toBe(
      true,
    );
    expect(lines.some((l) => l.includes('HASHWATT_ADMIN_TOKEN') && l.includes('at least 16'))).toBe(true);
  });

  it('never echoes a password or a token in an error', () => {
    const message = errorOf({
      DATABASE_URL: 'mysql://user:s3cr3tpass@x',
      HASHWATT_WEBHOOK_URLS: 'https://ok.example, ftp://hook:p@ss@hooks.example/x',
      HASHWATT_ADMIN_TOKEN: 'short-secret',
      HASHWATT_METRICS_TOKEN: 'tiny-secret',
    });
    for (const secret of ['s3cr3tpass', 'p@ss', 'ss@hooks', 'short-secret', 'tiny-secret'])
      expect(message).not.toContain(secret);
    expect(message).toContain('invalid DATABASE_URL="mysql://***@x"');
    expect(message).toContain('ftp://***@hooks.example/…');
    expect(message).toContain(
      'invalid HASHWATT_ADMIN_TOKEN (12 characters, not shown): expected at least 16',
    );
  });

  it('shows of every URL in a value only its scheme, host and port', () => {
    expect(redactValue('HASHWATT_WEBHOOK_URLS', 'http://a:1@x,http://y:8080/p,https://b:c@z')).toBe(
      '"http://***@x,http://y:8080/…,https://***@z"',
    );
    // A password may hold "/", "?" or "#"; everything up to the last "@" is user info.
    expect(redactValue('DATABASE_URL', 'mysql://u:pa/ss@x')).toBe('"mysql://***@x"');
    expect(redactValue('DATABASE_URL', 'mysql://u:pa?s#s@x:5432/db')).toBe('"mysql://***@x:5432/…"');
    // A webhook's path is often its secret (Slack, Discord): never shown.
    const hook = 'https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX';
    expect(redactValue('HASHWATT_WEBHOOK_URLS', hook)).toBe('"https://hooks.slack.com/…"');
    expect(redactValue('DATABASE_URL', 'postgres://host/')).toBe('"postgres://host/"');
    expect(redactValue('HOST', 'not a url')).toBe('"not a url"');
  });

  it("says what was expected in plain words, not in zod's", () => {
    const message = errorOf({
      PORT: 'eighty',
      HASHWATT_RETENTION_DAYS: '1.5',
      LOG_LEVEL: 'loud',
      HASHWATT_ALERT_INTERVAL_S: '-3',
      HASHWATT_ALERT_THRESHOLDS: '{"site_down_after_s":"soon","bogus":1}',
    });
    expect(message).not.toMatch(/Invalid input|NaN|received|Unrecognized|expected expected/);
    const lines = message.split('\n');
    expect(lines).toContain('invalid PORT="eighty": expected a whole number from 0 to 65535');
    expect(lines).toContain('invalid HASHWATT_RETENTION_DAYS="1.5": expected a whole number from 1 to 3650');
    expect(lines).toContain(
      'invalid LOG_LEVEL="loud": expected one of fatal, error, warn, info, debug, trace, silent',
    );
    expect(lines).toContain(
      'invalid HASHWATT_ALERT_INTERVAL_S="-3": expected a number of seconds greater than 0',
    );
    expect(lines.some((l) => l.endsWith(': site_down_after_s: expected a number'))).toBe(true);
    expect(lines.some((l) => l.endsWith(': unknown name "bogus"'))).toBe(true);
  });

  it('keeps raw readings 14 days, site minutes 90 and hours 2 years unless told otherwise', () => {
    const c = parseConfig({});
    expect(c.retention).toEqual({ raw: 14, site1m: 90, hourly: 730 });
    expect(c.retentionDays).toBe(14);
    expect(c.alertHistoryDays).toBe(90);
    expect(c.notices).toEqual([]);
    expect(
      parseConfig({ HASHWATT_RETENTION_RAW_DAYS: '7', HASHWATT_RETENTION_1H_DAYS: '365' }).retention,
    ).toEqual({
      raw: 7,
      site1m: 90,
      hourly: 365,
    });
  });

  it('still reads HASHWATT_RETENTION_DAYS as the raw tier, with a notice to rename it', () => {
    const c = parseConfig({ HASHWATT_RETENTION_DAYS: '365' });
    // A default tier below a longer raw retention rises to it: rollups are built from raw.
    expect(c.retention).toEqual({ raw: 365, site1m: 365, hourly: 730 });
    expect(c.notices).toHaveLength(1);
    expect(c.notices[0]).toMatch(/HASHWATT_RETENTION_DAYS=365 is read as HASHWATT_RETENTION_RAW_DAYS/);
    expect(() => parseConfig({ HASHWATT_RETENTION_DAYS: '30', HASHWATT_RETENTION_RAW_DAYS: '14' })).toThrow(
      /disagree: HASHWATT_RETENTION_DAYS is the old name of HASHWATT_RETENTION_RAW_DAYS/,
    );
  });

  it('refuses a tier kept shorter than the one it is built from', () => {
    expect(() =>
      parseConfig({ HASHWATT_RETENTION_RAW_DAYS: '30', HASHWATT_RETENTION_1M_DAYS: '20' }),
    ).toThrow('invalid HASHWATT_RETENTION_1M_DAYS=20: expected at least the raw retention (30 days)');
    expect(() => parseConfig({ HASHWATT_RETENTION_1M_DAYS: '90', HASHWATT_RETENTION_1H_DAYS: '60' })).toThrow(
      'invalid HASHWATT_RETENTION_1H_DAYS=60: expected at least the 1-minute retention (90 days)',
    );
  });

  it('takes an optional metrics token of at least 16 characters', () => {
    expect(parseConfig({}).metricsToken).toBeUndefined();
    expect(parseConfig({ HASHWATT_METRICS_TOKEN: 'scrape-token-0123456789' }).metricsToken).toBe(
      'scrape-token-0123456789',
    );
    expect(errorOf({ HASHWATT_METRICS_TOKEN: 'short' })).toMatch(
      /^invalid HASHWATT_METRICS_TOKEN .*at least 16/,
    );
  });
});

function errorOf(env: Record<string, string>): string {
  try {
    parseConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error('expected a ConfigError');
}
