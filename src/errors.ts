/**
 * Domain errors: thrown below the HTTP layer, mapped to a status in one table (src/http/errors.ts).
 * The code is the stable, machine-readable part of every error response.
 */
export const ERROR_STATUS = {
  invalid_json: 400,
  invalid_body: 400,
  invalid_encoding: 400,
  invalid_query: 400,
  /** A value the database refused (caught behind edge validation): bad input, never a fault. */
  invalid_value: 400,
  unauthorized: 401,
  /** A known token whose role may not do this (a viewer acknowledging an alert). */
  forbidden: 403,
  not_found: 404,
  site_exists: 409,
  site_has_data: 409,
  token_exists: 409,
  /** Acknowledging an alert that is not firing (pending, or resolved: history is not rewritten). */
  alert_not_firing: 409,
  payload_too_large: 413,
  too_many_readings: 413,
  unsupported_media_type: 415,
  overloaded: 429,
  /**
   * The client aborted or half-closed its upload (nginx's 499): counted apart from server faults.
   * The answer never reaches the client; the metric and the log carry it.
   */
  client_closed_request: 499,
  database_unavailable: 503,
  shutting_down: 503,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ErrorDetails {
  /** The request field at fault, when there is one. */
  field?: string;
  /** For overload and unavailability: when the client should try again. */
  retryAfterMs?: number;
  [key: string]: unknown;
}

export class HashwattError extends Error {
  override name = 'HashwattError';
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.details = details;
  }
}

/** True for errors that mean "try again later" rather than "your request is wrong". */
export function isRetryable(error: unknown): boolean {
  return (
    error instanceof HashwattError && (ERROR_STATUS[error.code] === 429 || ERROR_STATUS[error.code] === 503)
  );
}
