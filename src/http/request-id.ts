import { randomUUID } from 'node:crypto';

/** Longest request id honoured from a client; longer ones are replaced, never echoed or logged. */
export const MAX_REQUEST_ID_LENGTH = 128;

// Ids go into response headers, log lines and error bodies: a bounded, header-safe alphabet keeps
// a client from injecting kilobytes or control characters into any of them.
const REQUEST_ID = new RegExp(`^[A-Za-z0-9._:-]{1,${MAX_REQUEST_ID_LENGTH}}$`);

/** The client's `X-Request-Id` when it is a safe id, else a fresh UUID. */
export function acceptRequestId(header: string | undefined): string {
  return header !== undefined && REQUEST_ID.test(header) ? header : randomUUID();
}
