import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './config.ts';

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
});
