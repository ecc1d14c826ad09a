import type { MiddlewareHandler } from 'hono';
import { HashwattError } from '../errors.ts';
import { bearerToken, digestsEqual, hashToken } from '../sites/tokens.ts';

/**
 * Requires one fixed bearer token (e.g. HASHWATT_METRICS_TOKEN on /metrics). The token is compared
 * by digest in constant time, so a wrong guess says nothing about how close it was.
 */
export function requireBearer(token: string, what: string): MiddlewareHandler {
  const expected = hashToken(token);
  return async (c, next) => {
    const presented = bearerToken(c.req.header('authorization'));
    if (!presented || !digestsEqual(hashToken(presented), expected)) {
      c.header('www-authenticate', `Bearer realm="hashwatt ${what}"`);
      throw new HashwattError('unauthorized', `missing or wrong ${what} token`);
    }
    await next();
  };
}
