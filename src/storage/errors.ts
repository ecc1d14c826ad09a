import { HashwattError } from '../errors.ts';

// SQLSTATE classes and codes that mean "the database is not there right now" rather than "this
// statement is wrong": the client may retry the same request later and it will succeed.
const UNAVAILABLE_CODES = new Set([
  '57P01',
  '57P02',
  '57P03',
  '53300',
  '53400',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
]);
const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'connection timeout',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'the database system is',
];

function codeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** True when the error says the database is unreachable or restarting. */
export function isDatabaseUnavailable(error: unknown): boolean {
  const code = codeOf(error);
  if (code && (UNAVAILABLE_CODES.has(code) || code === 'ECONNREFUSED' || code === 'ECONNRESET')) return true;
  const message = error instanceof Error ? error.message : String(error);
  return UNAVAILABLE_MESSAGES.some((m) => message.includes(m));
}

/** True when a row's time has no partition to go to. */
export function isMissingPartition(error: unknown): boolean {
  return (
    codeOf(error) === '23514' && error instanceof Error && error.message.includes('no partition of relation')
  );
}

/** True when Postgres aborted the transaction to break a deadlock or a serialisation conflict: retry it. */
export function isTransientConflict(error: unknown): boolean {
  const code = codeOf(error);
  return code === '40P01' || code === '40001';
}

/** True when a referenced row is gone (a device deleted with its site while its rows were pending). */
export function isForeignKeyViolation(error: unknown): boolean {
  return codeOf(error) === '23503';
}

/** True for errors caused by the data of one statement (bad value, constraint): splitting the batch isolates it. */
export function isDataError(error: unknown): boolean {
  const code = codeOf(error);
  return code !== undefined && (code.startsWith('22') || code.startsWith('23'));
}

/** The domain error for a database outage, so every caller answers it the same way (503, retry later). */
export function unavailableError(cause?: unknown): HashwattError {
  return new HashwattError(
    'database_unavailable',
    'the database is unavailable; retry later',
    { retryAfterMs: 5_000 },
    { cause },
  );
}

// SQLSTATEs by which Postgres refuses a value of a statement: the request carried it, so it is the
// client's error (400). Edge validation should catch each first; this is the net behind it, so a
// value it misses is still a 4xx and never a 500. The messages are fixed: Postgres's own may quote data.
const REFUSED_VALUE: Record<string, string> = {
  '22P05': 'a value holds a character the database cannot store (such as U+0000)',
  '22021': 'a value is not valid UTF-8 or holds U+0000',
  '22003': 'a number is out of the range the database stores',
  '22P02': 'a value is not valid for its type (such as malformed JSON or an integer out of range)',
  '22001': 'a value is longer than the database stores',
  '22007': 'a date or time value is malformed',
  '22008': 'a date or time value is out of range',
  '22023': 'a value is invalid for its parameter',
  '22025': 'a value holds an invalid escape sequence',
  '2202E': 'an array subscript is out of range',
  '54000': 'a value exceeds a database limit (too large or too deeply nested)',
  '54001': 'a value is too complex or too deeply nested for the database',
};

/** The Postgres constraint behind a unique violation, when the driver reports it. */
function constraintOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const constraint = (error as { constraint?: unknown }).constraint;
  return typeof constraint === 'string' ? constraint : undefined;
}

/** True when a statement broke the unique site name (a create or a rename onto a taken name). */
export function isSiteNameTaken(error: unknown): boolean {
  return codeOf(error) === '23505' && constraintOf(error) === 'sites_name_key';
}

/**
 * The 4xx domain error for a database refusal of bad input, or undefined when the error is not one.
 * The one place such refusals are mapped: callers that know better (a field name) map before it.
 */
export function refusalError(error: unknown): HashwattError | undefined {
  if (error instanceof HashwattError) return undefined;
  if (isSiteNameTaken(error)) {
    return new HashwattError(
      'site_exists',
      'a site of that name exists',
      { field: 'name' },
      { cause: error },
    );
  }
  const code = codeOf(error);
  const message = code === undefined ? undefined : REFUSED_VALUE[code];
  return message === undefined
    ? undefined
    : new HashwattError('invalid_value', message, {}, { cause: error });
}

/**
 * Turns a raw database error into its domain error: an outage into a 503, a refused value into a
 * 4xx; anything else is returned as it is.
 */
export function domainError(error: unknown): unknown {
  if (error instanceof HashwattError) return error;
  if (isDatabaseUnavailable(error)) return unavailableError(error);
  return refusalError(error) ?? error;
}
