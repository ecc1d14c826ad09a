import { describe, expect, it } from 'vitest';
import { parseChange } from './feed.ts';
import { TokenCache } from './token-cache.ts';

describe('TokenCache', () => {
  it('answers from memory until the entry expires, and never keeps an unknown token', async () => {
    let now = 0;
    let loads = 0;
    const cache = new TokenCache<{ id: number }>({ ttlMs: 10_000, now: () => now });
    const load = async () => {
      loads++;
      return { id: 7 };
    };
    expect(await cache.get('t', load)).toEqual({ id: 7 });
    expect(await cache.get('t', load)).toEqual({ id: 7 });
    expect(loads).toBe(1);
    now = 10_000;
    await cache.get('t', load);
    expect(loads).toBe(2);
    expect(await cache.get('unknown', async () => undefined)).toBeUndefined();
    expect(cache.size).toBe(1);
  });

  it('drops what a change names, and a load racing a drop does not store its stale answer', async () => {
    const cache = new TokenCache<{ id: number }>({ ttlMs: 60_000 });
    await cache.get('a', async () => ({ id: 1 }));
    await cache.get('b', async () => ({ id: 2 }));
    cache.drop((v) => v.id === 1);
    expect(cache.size).toBe(1);
    let release!: () => void;
    const slow = cache.get('c', () => new Promise((resolve) => (release = () => resolve({ id: 3 }))));
    cache.drop();
    release();
    expect(await slow).toEqual({ id: 3 });
    expect(cache.size).toBe(0);
  });
});

describe('parseChange', () => {
  it('reads the triggers’ payloads and nothing else', () => {
    expect(parseChange('sites:42')).toEqual({ table: 'sites', id: 42 });
    expect(parseChange('api_tokens:3')).toEqual({ table: 'api_tokens', id: 3 });
    expect(parseChange('devices:1')).toBeUndefined();
    expect(parseChange('sites:')).toBeUndefined();
  });
});
