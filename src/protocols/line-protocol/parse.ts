/**
 * InfluxDB line protocol (shared by the v1 and v2 write APIs), parsed by hand: no maintained npm
 * parser exists, and this one is fuzzed against the official client's encoder
 * (@influxdata/influxdb-client `Point`) in parse.test.ts.
 *
 *   measurement[,tag=value...] field=value[,field=value...] [timestamp]
 *
 * Escaping: in the measurement a backslash escapes `,` and space; in tag keys, tag values and
 * field keys it escapes `,`, `=` and space; in string field values it escapes `"` and `\`. A
 * backslash before any other character is kept literally, as InfluxDB does. String field values
 * may span lines. Lines whose first non-blank character is `#` are comments.
 *
 * Field values: float (`1`, `-1.5`, `1e3`), integer (`1i`, signed 64-bit), unsigned (`1u`,
 * 64-bit), string (`"..."`), boolean (t, T, true, True, TRUE, f, F, false, False, FALSE).
 *
 * Timestamps are integers in the request's precision (ns, us, ms, s; v1 also m and h) and become
 * integer microseconds, hashwatt's stored precision: nanoseconds are floored to the microsecond
 * with BigInt arithmetic, so no digit is lost to doubles.
 *
 * Pure and total: every malformed line is reported with its 1-based line number; nothing throws.
 */

export type Precision = 'ns' | 'us' | 'ms' | 's' | 'm' | 'h';

/** The precision names of the v2 (`ns|us|ms|s`) and v1 (`n|u|ms|s|m|h`) write APIs. */
export function parsePrecision(value: string | undefined): Precision | undefined {
  switch (value) {
    case undefined:
    case '':
    case 'ns':
    case 'n':
      return 'ns';
    case 'us':
    case 'u':
      return 'us';
    case 'ms':
      return 'ms';
    case 's':
      return 's';
    case 'm':
      return 'm';
    case 'h':
      return 'h';
    default:
      return undefined;
  }
}

export type FieldValue =
  | { type: 'float'; value: number }
  /** `exact` is false when the integer's magnitude exceeds 2^53 and `value` is the nearest double. */
  | { type: 'integer' | 'unsigned'; value: number; exact: boolean }
  | { type: 'string'; value: string }
  | { type: 'boolean'; value: boolean };

export interface Point {
  /** 1-based line on which the point starts. */
  line: number;
  measurement: string;
  tagKeys: string[];
  tagValues: string[];
  fieldKeys: string[];
  fieldValues: FieldValue[];
  /** Integer microseconds since the epoch; undefined when the line had no timestamp. */
  tsUs: number | undefined;
}

export interface LineError {
  line: number;
  code: string;
  message: string;
  /** The start of the offending line, for an error message. */
  text: string;
}

export interface ParseLimits {
  maxTags: number;
  maxFields: number;
  /** Longest measurement, key, tag value or string field value, in UTF-16 code units. */
  maxTokenLength: number;
}

export const DEFAULT_PARSE_LIMITS: ParseLimits = { maxTags: 64, maxFields: 256, maxTokenLength: 4096 };

class LineFailure {
  readonly code: string;
  readonly message: string;
  constructor(code: string, message: string) {
    this.code = code;
    this.message = message;
  }
}

const NEWLINE = 10;
const CR = 13;
const SPACE = 32;
const TAB = 9;
const COMMA = 44;
const EQUALS = 61;
const QUOTE = 34;
const BACKSLASH = 92;
const HASH = 35;

const FLOAT_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INT_RE = /^[+-]?\d+$/;
const UINT_RE = /^\d+$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

const US_PER: Record<Exclude<Precision, 'ns'>, number> = {
  us: 1,
  ms: 1000,
  s: 1_000_000,
  m: 60_000_000,
  h: 3_600_000_000,
};

/** Timestamp digits in a precision → integer microseconds, floored; undefined out of range. */
export function timestampToMicros(digits: string, precision: Precision): number | undefined {
  if (!INT_RE.test(digits)) return undefined;
  if (precision === 'ns') {
    const ns = BigInt(digits);
    let us = ns / 1000n; // truncates toward zero; floor for negatives with a remainder
    if (ns < 0n && us * 1000n !== ns) us -= 1n;
    if (us > SAFE_MAX || us < -SAFE_MAX) return undefined;
    return Number(us);
  }
  // Past 16 digits a double may not hold the count exactly; such a count is out of range anyway.
  if (digits.replace(/^[+-]/, '').length > 16) return undefined;
  const us = Number(digits) * US_PER[precision];
  return Number.isSafeInteger(us) ? us : undefined;
}

/** Parses a field value token (not a string: those are read by the scanner). */
function parseScalar(token: string): FieldValue | LineFailure {
  const last = token.charCodeAt(token.length - 1);
  if (last === 105 /* i */) {
    const digits = token.slice(0, -1);
    if (!INT_RE.test(digits)) return new LineFailure('bad_integer', `invalid integer ${token.slice(0, 64)}`);
    const n = BigInt(digits);
    if (n < INT64_MIN || n > INT64_MAX)
      return new LineFailure('integer_out_of_range', `integer ${token.slice(0, 64)} exceeds int64`);
    return { type: 'integer', value: Number(n), exact: n <= SAFE_MAX && n >= -SAFE_MAX };
  }
  if (last === 117 /* u */) {
    const digits = token.slice(0, -1);
    if (!UINT_RE.test(digits))
      return new LineFailure('bad_unsigned', `invalid unsigned integer ${token.slice(0, 64)}`);
    const n = BigInt(digits);
    if (n > UINT64_MAX)
      return new LineFailure('integer_out_of_range', `unsigned ${token.slice(0, 64)} exceeds uint64`);
    return { type: 'unsigned', value: Number(n), exact: n <= SAFE_MAX };
  }
  switch (token) {
    case 't':
    case 'T':
    case 'true':
    case 'True':
    case 'TRUE':
      return { type: 'boolean', value: true };
    case 'f':
    case 'F':
    case 'false':
    case 'False':
    case 'FALSE':
      return { type: 'boolean', value: false };
  }
  if (!FLOAT_RE.test(token))
    return new LineFailure('bad_field_value', `invalid field value ${token.slice(0, 64)}`);
  const v = Number(token);
  if (!Number.isFinite(v))
    return new LineFailure('bad_field_value', `float ${token.slice(0, 64)} is out of range`);
  return { type: 'float', value: v };
}

/**
 * Parses a body. Calls `onPoint` for each good line and `onError` for each bad one, in body order.
 */
export function parseLineProtocol(
  text: string,
  precision: Precision,
  onPoint: (p: Point) => void,
  onError: (e: LineError) => void,
  limits: ParseLimits = DEFAULT_PARSE_LIMITS,
): void {
  const n = text.length;
  let i = 0;
  let line = 1;

  /** Reads an escaped token up to one of the stop characters; i ends on the stop (or n). */
  const readToken = (stopEquals: boolean, what: string): string => {
    let out = '';
    let start = i;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === BACKSLASH && i + 1 < n) {
        const d = text.charCodeAt(i + 1);
        if (d === COMMA || d === SPACE || (stopEquals && d === EQUALS)) {
          out += text.slice(start, i);
          start = i + 1; // keep the escaped character, drop the backslash
          i++;
          continue;
        }
        continue;
      }
      if (c === COMMA || c === SPACE || c === NEWLINE || (stopEquals && c === EQUALS)) break;
    }
    out += text.slice(start, i);
    if (out.length > limits.maxTokenLength)
      throw new LineFailure('token_too_long', `${what} longer than ${limits.maxTokenLength}`);
    return out;
  };

  const fail = (code: string, message: string): never => {
    throw new LineFailure(code, message);
  };

  while (i < n) {
    const lineStart = i;
    const startLine = line;
    // Leading whitespace, blank lines and comments.
    while (i < n && (text.charCodeAt(i) === SPACE || text.charCodeAt(i) === TAB || text.charCodeAt(i) === CR))
      i++;
    if (i >= n) break;
    const first = text.charCodeAt(i);
    if (first === NEWLINE) {
      i++;
      line++;
      continue;
    }
    if (first === HASH) {
      while (i < n && text.charCodeAt(i) !== NEWLINE) i++;
      continue;
    }
    try {
      const measurement = readToken(false, 'measurement');
      if (measurement === '') fail('missing_measurement', 'line has no measurement');
      const tagKeys: string[] = [];
      const tagValues: string[] = [];
      while (i < n && text.charCodeAt(i) === COMMA) {
        i++;
        const key = readToken(true, 'tag key');
        if (text.charCodeAt(i) !== EQUALS) fail('bad_tag', `tag ${key.slice(0, 64)} has no value`);
        i++;
        const value = readToken(true, 'tag value');
        if (key === '' || value === '') fail('bad_tag', 'empty tag key or value');
        if (text.charCodeAt(i) === EQUALS) fail('bad_escape', `unescaped = in tag ${key.slice(0, 64)}`);
        if (tagKeys.length >= limits.maxTags) fail('too_many_tags', `more than ${limits.maxTags} tags`);
        tagKeys.push(key);
        tagValues.push(value);
      }
      if (i >= n || text.charCodeAt(i) !== SPACE) fail('missing_fields', 'line has no fields');
      while (i < n && text.charCodeAt(i) === SPACE) i++;
      const fieldKeys: string[] = [];
      const fieldValues: FieldValue[] = [];
      for (;;) {
        const key = readToken(true, 'field key');
        if (key === '') fail('bad_field', 'empty field key');
        if (text.charCodeAt(i) !== EQUALS) fail('bad_field', `field ${key.slice(0, 64)} has no value`);
        i++;
        let value: FieldValue;
        if (text.charCodeAt(i) === QUOTE) {
          i++;
          let s = '';
          let start = i;
          let closed = false;
          for (; i < n; i++) {
            const c = text.charCodeAt(i);
            if (c === BACKSLASH && i + 1 < n) {
              const d = text.charCodeAt(i + 1);
              if (d === QUOTE || d === BACKSLASH) {
                s += text.slice(start, i);
                start = i + 1;
                i++;
              }
              continue;
            }
            if (c === NEWLINE) line++;
            if (c === QUOTE) {
              closed = true;
              break;
            }
          }
          if (!closed) fail('unterminated_string', `string field ${key.slice(0, 64)} has no closing quote`);
          s += text.slice(start, i);
          i++; // the closing quote
          if (s.length > limits.maxTokenLength)
            fail('token_too_long', `string field longer than ${limits.maxTokenLength}`);
          value = { type: 'string', value: s };
        } else {
          const start = i;
          while (i < n) {
            const c = text.charCodeAt(i);
            if (c === COMMA || c === SPACE || c === NEWLINE) break;
            i++;
          }
          let token = text.slice(start, i);
          if (token.endsWith('\r') && (i >= n || text.charCodeAt(i) === NEWLINE)) token = token.slice(0, -1);
          if (token === '') fail('bad_field_value', `field ${key.slice(0, 64)} has an empty value`);
          const parsed = parseScalar(token);
          if (parsed instanceof LineFailure) throw parsed;
          value = parsed;
        }
        if (fieldKeys.length >= limits.maxFields)
          fail('too_many_fields', `more than ${limits.maxFields} fields`);
        fieldKeys.push(key);
        fieldValues.push(value);
        if (i < n && text.charCodeAt(i) === COMMA) {
          i++;
          continue;
        }
        break;
      }
      let tsUs: number | undefined;
      if (i < n && text.charCodeAt(i) === SPACE) {
        while (i < n && text.charCodeAt(i) === SPACE) i++;
        const start = i;
        while (
          i < n &&
          text.charCodeAt(i) !== NEWLINE &&
          text.charCodeAt(i) !== SPACE &&
          text.charCodeAt(i) !== CR
        )
          i++;
        const digits = text.slice(start, i);
        if (digits !== '') {
          const us = timestampToMicros(digits, precision);
          if (us === undefined) {
            fail(
              INT_RE.test(digits) ? 'timestamp_out_of_range' : 'bad_timestamp',
              `invalid timestamp ${digits.slice(0, 32)} (precision ${precision})`,
            );
          }
          tsUs = us;
        }
        while (
          i < n &&
          (text.charCodeAt(i) === SPACE || text.charCodeAt(i) === CR || text.charCodeAt(i) === TAB)
        )
          i++;
      } else if (i < n && text.charCodeAt(i) === CR) i++;
      if (i < n && text.charCodeAt(i) !== NEWLINE)
        fail('trailing_garbage', 'unexpected characters after the timestamp');
      onPoint({ line: startLine, measurement, tagKeys, tagValues, fieldKeys, fieldValues, tsUs });
    } catch (e) {
      if (!(e instanceof LineFailure)) throw e;
      // Resume at the next line: what follows the error on this line is unreadable.
      while (i < n && text.charCodeAt(i) !== NEWLINE) i++;
      onError({
        line: startLine,
        code: e.code,
        message: e.message,
        text: text.slice(lineStart, Math.min(i, lineStart + 200)),
      });
    }
    if (i < n && text.charCodeAt(i) === NEWLINE) {
      i++;
      line++;
    }
  }
}
