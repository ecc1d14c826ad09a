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

/** Turns a raw database outage into its domain error; anything else is returned as it is. */
export function domainError(error: unknown): unknown {
  return !(error instanceof HashwattError) && isDatabaseUnavailable(error) ? unavailableError(error) : error;
}
