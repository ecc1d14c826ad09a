/**
 * InfluxDB line protocol — `POST /api/v2/write` (InfluxDB 2 clients, Telegraf's influxdb_v2) and
 * `POST /write` (1.x clients). The site token authenticates (`Authorization: Token …` or `Bearer
 * …`; v1 also `?p=` or Basic auth's password); org, bucket and db are accepted and ignored, as the
 * token names the site. Answers as InfluxDB 2.5+ does (docs/protocols/line-protocol.md): 204 when
 * all was written; 422 when some lines or fields were bad and the good ones are kept, naming the
 * first bad line; 400 when nothing could be written; errors as InfluxDB's `{"code","message"}`.
 */
import type { Context } from 'hono';
import { HashwattError } from '../errors.ts';
import { decodeLineProtocol, parsePrecision } from '../protocols/index.ts';
import {
  admitAndDecode,
  authenticateToken,
  type Failure,
  firstReason,
  handleReceiver,
  ingestDecoded,
  invalidCount,
  type ReceiverDeps,
  type ReceiverEnv,
  requireGzipOrIdentity,
} from './respond.ts';

/** InfluxDB's error codes (its `influxdb/kit/platform/errors` names) for hashwatt's statuses. */
function influxCode(status: number): string {
  switch (status) {
    case 400:
      return 'invalid';
    case 401:
      return 'unauthorized';
    case 413:
      return 'request too large';
    case 415:
      return 'unsupported media type';
    case 422:
      return 'unprocessable entity';
    case 429:
      return 'too many requests';
    case 503:
      return 'unavailable';
    default:
      return status >= 500 ? 'internal error' : 'invalid';
  }
}

function render(c: Context<ReceiverEnv>, failure: Failure): Response {
  return c.json({ code: influxCode(failure.status), message: failure.message }, failure.status as 400);
}

/** The token an InfluxDB client presents, in any of the forms 1.x and 2.x clients use. */
export function influxToken(authorization: string | undefined, query: { p?: string }): string | undefined {
  if (authorization) {
    const m = /^(Token|Bearer)\s+(\S+)\s*$/i.exec(authorization);
    if (m) return m[2];
    const basic = /^Basic\s+(\S+)\s*$/i.exec(authorization);
    if (basic) {
      const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      return colon >= 0 && colon < decoded.length - 1 ? decoded.slice(colon + 1) : undefined;
    }
    return undefined;
  }
  return query.p === undefined || query.p === '' ? undefined : query.p;
}

export async function influxWrite(
  c: Context<ReceiverEnv>,
  deps: ReceiverDeps,
  api: 'v1' | 'v2',
  onUnexpected: (error: unknown) => void,
): Promise<Response> {
  return handleReceiver(
    c,
    'influx',
    deps.pipeline,
    async () => {
      const query = c.req.query();
      const token = influxToken(c.req.header('authorization'), api === 'v1' ? query : {});
      const site = await authenticateToken(token, deps.authenticateSite);
      const precision = parsePrecision(query.precision);
      if (
        precision === undefined ||
        (api === 'v2' && !['ns', 'us', 'ms', 's'].includes(query.precision ?? 'ns'))
      ) {
        throw new HashwattError(
          'invalid_query',
          `precision must be ${api === 'v2' ? 'ns, us, ms or s' : 'n, u, ms, s, m or h'}`,
          {
            field: 'precision',
          },
        );
      }
      requireGzipOrIdentity(c);
      const nowUs = Date.now() * 1000;
      const { decoded, batch } = await admitAndDecode(c, deps, site, (body) =>
        decodeLineProtocol(body, { precision, nowUs }),
      );
      if (decoded.fatal) throw new HashwattError('invalid_encoding', decoded.fatal.message);
      const outcome = await ingestDecoded(deps, site, 'influx', decoded, batch);
      Object.assign(c.get('event'), {
        site: site.name,
        lines: decoded.lines,
        bad_lines: decoded.badLines,
        accepted_samples: outcome.result.acceptedSamples,
        duplicate_samples: outcome.result.duplicateSamples,
        unmapped: outcome.unmapped,
        invalid: invalidCount(outcome),
      });
      const reason = firstReason(outcome);
      if (reason === undefined) return c.body(null, 204);
      const written = outcome.result.accepted + outcome.result.duplicates > 0;
      // In body order, so the first is the first bad line (or the first value refused after decoding).
      const first = reason;
      if (!written) {
        return c.json(
          {
            code: 'invalid',
            message: `no point written: ${invalidCount(outcome)} item(s) rejected; first: ${first}`,
          },
          400,
        );
      }
      return c.json(
        {
          code: 'unprocessable entity',
          message: `partial write: ${invalidCount(outcome)} item(s) of ${decoded.lines} line(s) rejected, the rest written; first bad: ${first}`,
        },
        422,
      );
    },
    render,
    onUnexpected,
  );
}
