import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { HashwattError } from '../errors.ts';
import { mayRead, type Reader, readerAuthenticator } from './reader.ts';

const SITE_TOKENS: Record<string, { id: number; name: string }> = { hw_seven: { id: 7, name: 'seven' } };

/** A tiny app answering with the reader of each request, or its error code. */
function appWith(adminToken: string | undefined) {
  const readerOf = readerAuthenticator({
    adminToken,
    authenticateSite: async (token) => SITE_TOKENS[token],
  });
  return new Hono()
    .get('/', async (c) => c.json(await readerOf(c)))
    .onError((e, c) => c.json({ error: e instanceof HashwattError ? e.code : 'internal' }, 401));
}

async function readerFor(adminToken: string | undefined, authorization?: string) {
  const response = await appWith(adminToken).request('/', {
    headers: authorization === undefined ? {} : { authorization },
  });
  return response.json();
}

describe('readerOf', () => {
  it('knows the admin token and a site token', async () => {
    expect(await readerFor('admin-secret', 'Bearer admin-secret')).toEqual({ kind: 'admin' });
    expect(await readerFor('admin-secret', 'Bearer hw_seven')).toEqual({ kind: 'site', siteId: 7 });
  });

  it('refuses a missing, malformed or unknown token, and has no admin when none is configured', async () => {
    for (const header of [undefined, '', 'admin-secret', 'Basic admin-secret', 'Bearer nope']) {
      expect(await readerFor('admin-secret', header)).toEqual({ error: 'unauthorized' });
    }
    expect(await readerFor(undefined, 'Bearer admin-secret')).toEqual({ error: 'unauthorized' });
    expect(await readerFor(undefined, 'Bearer hw_seven')).toEqual({ kind: 'site', siteId: 7 });
  });
});

describe('mayRead', () => {
  it('lets the admin read every site and a site token only its own', () => {
    const admin: Reader = { kind: 'admin' };
    const site: Reader = { kind: 'site', siteId: 7 };
    expect([1, 7, 8].map((id) => mayRead(admin, id))).toEqual([true, true, true]);
    expect([1, 7, 8].map((id) => mayRead(site, id))).toEqual([false, true, false]);
  });
});
