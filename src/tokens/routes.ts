import { Hono } from 'hono';
import { z } from 'zod';
import { adminBodyLimit, parseBody, parseParams, parseQuery, readAdminJson } from '../http/validate.ts';
import type { Storage } from '../storage/database.ts';
import * as service from './service.ts';

const NoQuery = z.strictObject({});

/** The admin API for named tokens; mount behind the admin-token check. */
export function apiTokenRoutes({
  storage,
  onTokensChanged,
}: {
  storage: Storage;
  onTokensChanged?: () => void;
}) {
  return new Hono()
    .use(adminBodyLimit())
    .post('/', async (c) => {
      parseQuery(NoQuery, c.req.query());
      const input = parseBody(service.NewApiTokenRequest, await readAdminJson(c.req.raw));
      return c.json(await service.createApiToken(storage, input), 201);
    })
    .get('/', async (c) => {
      parseQuery(NoQuery, c.req.query());
      return c.json({ tokens: await service.listApiTokens(storage) });
    })
    .delete('/:id', async (c) => {
      const { id } = parseParams(service.ApiTokenIdParams, c.req.param());
      parseQuery(NoQuery, c.req.query());
      await service.revokeApiToken(storage, id);
      // Refused here at once; other replicas hear it from the change feed.
      onTokensChanged?.();
      return c.body(null, 204);
    });
}
