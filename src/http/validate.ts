import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { HashwattError } from '../errors.ts';

interface FirstIssue {
  field: string;
  /** Set for a key the schema does not know. */
  unknown: boolean;
  message: string;
}

function firstIssue(error: z.ZodError, root: string): FirstIssue {
  const issue = error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const field = [...issue.path.map(String), issue.keys[0] ?? ''].join('.');
    return { field, unknown: true, message: '' };
  }
  const field = issue.path.map(String).join('.') || root;
  return { field, unknown: false, message: `${field}: ${issue.message}` };
}

/** Parses a request body with a zod schema, or throws a 400 naming the first bad field. */
export function parseBody<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = firstIssue(result.error, '(body)');
  const message = issue.unknown ? `unknown field "${issue.field}"` : issue.message;
  throw new HashwattError('invalid_body', message, { field: issue.field });
}

/** Parses query parameters, or throws a 400 naming the first bad one. */
export function parseQuery<S extends z.ZodType>(schema: S, query: Record<string, string>): z.infer<S> {
  const result = schema.safeParse(query);
  if (result.success) return result.data;
  const issue = firstIssue(result.error, '(query)');
  const message = issue.unknown ? `unknown query parameter "${issue.field}"` : issue.message;
  throw new HashwattError('invalid_query', message, { field: issue.field });
}

/**
 * Parses path parameters, or throws a 404: a path whose parameter is not well formed names no
 * resource, exactly like a well-formed one that matches nothing, so both answer the same way.
 */
export function parseParams<S extends z.ZodType>(schema: S, params: Record<string, string>): z.infer<S> {
  const result = schema.safeParse(params);
  if (result.success) return result.data;
  const issue = firstIssue(result.error, '(path)');
  const raw = params[issue.field] ?? '';
  // The value is echoed (JSON-escaped by the envelope) but bounded: a path can be kilobytes long.
  const shown = JSON.stringify(raw.length > 40 ? `${raw.slice(0, 40)}…` : raw);
  throw new HashwattError('not_found', `${issue.field} ${shown} names nothing: ${issue.message}`, {
    field: issue.field,
  });
}

/** Largest value of a Postgres `integer`: every id the database generates fits in it. */
export const MAX_ID = 2_147_483_647;

/**
 * The id a path or query parameter names, when it is written canonically: decimal digits, no sign,
 * no leading zero, no exponent, fraction, hex prefix or white space, within `integer`. `Number()`
 * alone would read `44.0`, `0x2c`, `44e0` and ` 44` as 44 and let ids past int4 reach the database.
 */
export function canonicalId(raw: string): number | undefined {
  if (!/^[1-9][0-9]{0,9}$/.test(raw)) return undefined;
  const id = Number(raw);
  return id <= MAX_ID ? id : undefined;
}

/** A path or query parameter holding an id: `canonicalId` as a zod schema, giving the number. */
export const idParam = z.string().transform((raw, ctx) => {
  const id = canonicalId(raw);
  if (id === undefined) {
    ctx.addIssue({ code: 'custom', message: `an id is a decimal integer from 1 to ${MAX_ID}` });
    return z.NEVER;
  }
  return id;
});

/** A query parameter holding a count: canonical decimal digits (`0` allowed) within min..max. */
export function countParam(min: number, max: number) {
  return z.string().transform((raw, ctx) => {
    const n = /^(0|[1-9][0-9]{0,9})$/.test(raw) ? Number(raw) : Number.NaN;
    if (!(n >= min && n <= max)) {
      ctx.addIssue({ code: 'custom', message: `expected a decimal integer from ${min} to ${max}` });
      return z.NEVER;
    }
    return n;
  });
}

/**
 * Why a string cannot be stored exactly as sent, or undefined when it can. Postgres refuses U+0000
 * in `text` and `jsonb`; a lone surrogate has no UTF-8 form, so the driver would store U+FFFD.
 */
export function unstorableText(value: string): string | undefined {
  if (value.includes('\u0000')) return 'contains a NUL character (U+0000), which cannot be stored';
  if (!value.isWellFormed()) return 'contains a lone UTF-16 surrogate, which has no UTF-8 form';
  return undefined;
}

/** A string stored in a `text` column: refused, never altered, when it cannot be stored as sent. */
export function storableString(max: number) {
  return z
    .string()
    .max(max)
    .superRefine((value, ctx) => {
      const problem = unstorableText(value);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    });
}

export interface JsonLimits {
  /** Objects and arrays nested in each other, the value itself included: Postgres parses jsonb recursively. */
  maxDepth: number;
  /** Bytes of the value's JSON text. */
  maxBytes: number;
}

export interface JsonProblem {
  path: (string | number)[];
  message: string;
}

/**
 * The first reason a parsed JSON value cannot be stored in `jsonb` exactly as sent, or undefined.
 * Walks with an explicit stack, so hostile nesting cannot exhaust the call stack; stops at the
 * depth bound. Non-finite numbers come from literals like `1e309` and would be written as `null`.
 */
export function findJsonProblem(value: unknown, limits: JsonLimits): JsonProblem | undefined {
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value, path: [] }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { value: v, path } = item;
    if (typeof v === 'string') {
      const problem = unstorableText(v);
      if (problem) return { path, message: `a string ${problem}` };
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) return { path, message: 'a number out of range (not finite)' };
    } else if (typeof v === 'object' && v !== null) {
      if (path.length >= limits.maxDepth) {
        return { path, message: `nested deeper than ${limits.maxDepth} levels` };
      }
      // Object.keys sees an own `__proto__` key, which JSON.parse creates as a plain property.
      const entries: [string | number, unknown][] = Array.isArray(v)
        ? v.map((element, index) => [index, element])
        : Object.keys(v).map((key) => [key, (v as Record<string, unknown>)[key]]);
      for (const [key, child] of entries) {
        if (typeof key === 'string') {
          const problem = unstorableText(key);
          if (problem) return { path: [...path, key], message: `a key ${problem}` };
        }
        stack.push({ value: child, path: [...path, key] });
      }
    } else if (typeof v !== 'boolean' && v !== null) {
      return { path, message: `not a JSON value (${typeof v})` };
    }
  }
  const bytes = Buffer.byteLength(JSON.stringify(value), 'utf8');
  if (bytes > limits.maxBytes) return { path: [], message: `larger than ${limits.maxBytes} bytes of JSON` };
  return undefined;
}

/**
 * A JSON object stored in a `jsonb` column, returned as parsed: `z.record` would rebuild it and
 * drop an own `__proto__` key on the way (assigning it sets the prototype instead), so the object is
 * checked in place rather than copied.
 */
export function storableJsonObject(limits: JsonLimits) {
  return z
    .custom<Record<string, unknown>>(
      (value) => typeof value === 'object' && value !== null && !Array.isArray(value),
      'expected an object',
    )
    .superRefine((value, ctx) => {
      const problem = findJsonProblem(value, limits);
      if (problem) ctx.addIssue({ code: 'custom', message: problem.message, path: problem.path });
    });
}

const MIB = 1024 * 1024;
/** Body bound of the admin API: its largest real body (a site with metadata) is a few kilobytes. */
export const ADMIN_BODY_MAX_BYTES = MIB;

/**
 * The body bound of an admin route, counted as the body streams when there is no Content-Length
 * (and from Content-Length when there is: the HTTP parser then stops the body there).
 */
export function adminBodyLimit(): MiddlewareHandler {
  return bodyLimit({
    maxSize: ADMIN_BODY_MAX_BYTES,
    onError: (c) => {
      // The rest of the body is left unread: closing the connection after the answer keeps a client
      // from sending its next request on a socket the server is about to drop mid-drain.
      c.header('Connection', 'close');
      throw new HashwattError('payload_too_large', `the body exceeds ${ADMIN_BODY_MAX_BYTES} bytes`);
    },
  });
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The JSON body of an admin request (its size already bounded by the route's body limit). Invalid
 * UTF-8 is refused rather than decoded to U+FFFD, so what is stored is what was sent.
 */
export async function readAdminJson(request: Request): Promise<unknown> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await request.arrayBuffer());
  } catch (error) {
    if (error instanceof HashwattError) throw error;
    // Only the client ends a body early (a reset, an abort): never the database going away.
    throw new HashwattError(
      'client_closed_request',
      'the client closed the connection before the whole body arrived',
      {},
      { cause: error },
    );
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new HashwattError('invalid_encoding', 'the body is not valid UTF-8');
  }
  let inexact: { key: string; source: string; holder: unknown } | undefined;
  let value: unknown;
  try {
    // Node's reviver sees each number's source text: a literal a double cannot carry to the database
    // as written (12345678901234567890, 1e-400) is refused instead of stored as another number.
    // A function, not an arrow: the reviver's `this` is the object holding the value, which names
    // the field exactly (a key alone may stand in several places).
    value = JSON.parse(
      text,
      function (this: unknown, key: string, parsed: unknown, context?: { source?: string }) {
        if (typeof parsed === 'number' && context?.source !== undefined && !inexact) {
          if (!isNumberKept(context.source, parsed)) inexact = { key, source: context.source, holder: this };
        }
        return parsed;
      },
    );
  } catch (error) {
    // The reviver recurses: a body nested thousands deep exhausts the stack. Parsed plainly, it
    // is refused by the depth bound of the field that holds it.
    if (!(error instanceof RangeError)) {
      throw new HashwattError('invalid_json', `malformed JSON: ${(error as Error).message}`);
    }
    value = parsePlain(text);
  }
  if (inexact) {
    const holderPath = pathOfObject(value, inexact.holder);
    const field = holderPath ? `${holderPath}.${inexact.key}` : inexact.key || '(body)';
    throw new HashwattError(
      'invalid_body',
      `${field}: the number ${inexact.source.slice(0, 40)} cannot be stored as sent (a double keeps 15 to 17 significant digits and the range ±1.8e308); send it as a string`,
      { field },
    );
  }
  return value;
}

function parsePlain(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HashwattError('invalid_json', `malformed JSON: ${(error as Error).message}`);
  }
}

/** The dotted path from `root` to the object `target` ('' for the root itself), depth-bounded. */
function pathOfObject(root: unknown, target: unknown, depth = 0): string | undefined {
  if (root === target) return '';
  if (depth > 64 || typeof root !== 'object' || root === null) return undefined;
  for (const k of Object.keys(root)) {
    const below = pathOfObject((root as Record<string, unknown>)[k], target, depth + 1);
    if (below !== undefined) return below === '' ? k : `${k}.${below}`;
  }
  return undefined;
}

const DECIMAL = /^(-)?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

/** A JSON number literal as (sign, significant digits, exponent), or undefined when it is not one. */
function normaliseDecimal(text: string): { negative: boolean; digits: string; exponent: number } | undefined {
  const m = DECIMAL.exec(text);
  if (!m) return undefined;
  const fraction = m[3] ?? '';
  let digits = (m[2]! + fraction).replace(/^0+/, '');
  let exponent = Number(m[4] ?? 0) - fraction.length;
  const trailing = /0*$/.exec(digits)![0].length;
  digits = digits.slice(0, digits.length - trailing);
  exponent += trailing;
  // Zero has no sign worth keeping: JSON.stringify(-0) is "0".
  return digits === ''
    ? { negative: false, digits: '', exponent: 0 }
    : { negative: m[1] === '-', digits, exponent };
}

/**
 * True when the number parsed from `source` is written back (JSON.stringify, then jsonb) as the same
 * decimal value: 0.1 and 1e21 are kept; 12345678901234567890 (past 2^53) and 1e-400 (underflow) are not.
 */
export function isNumberKept(source: string, parsed: number): boolean {
  if (!Number.isFinite(parsed)) return false;
  const sent = normaliseDecimal(source);
  const kept = normaliseDecimal(String(parsed).replace('e+', 'e'));
  if (!sent || !kept) return false;
  return sent.negative === kept.negative && sent.digits === kept.digits && sent.exponent === kept.exponent;
}
