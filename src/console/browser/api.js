// @ts-check
/**
 * The console's one way to the API: the token from sessionStorage as `Authorization: Bearer`
 * (never in a URL, never in localStorage, gone when the tab closes), the error envelope read into
 * an `ApiError`, and any 401 sending the page back to sign-in.
 */

const TOKEN_KEY = 'hashwatt.console.token';

/** The token of this tab, or null. */
export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(/** @type {string} */ token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** An error answer of the API: its status and the envelope's code and message. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** @type {(error: ApiError) => void} */
let onUnauthorized = () => {};

/** What to do when the API answers 401 (the token was revoked, or never valid). */
export function whenUnauthorized(/** @type {(error: ApiError) => void} */ handler) {
  onUnauthorized = handler;
}

/**
 * @typedef {Record<string, string | number | null | undefined>} Query
 */

/** `path` with the query's set values. */
export function withQuery(/** @type {string} */ path, /** @type {Query} */ query = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(name, String(value));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/**
 * GETs a JSON route with the tab's token (or `token`, to try one before keeping it).
 * @template T
 * @param {string} path
 * @param {{ query?: Query, signal?: AbortSignal, token?: string }} [options]
 * @returns {Promise<T>}
 */
export async function apiGet(path, options = {}) {
  const token = options.token ?? storedToken();
  const response = await fetch(withQuery(path, options.query), {
    headers: { accept: 'application/json', ...(token && { authorization: `Bearer ${token}` }) },
    cache: 'no-store',
    credentials: 'omit',
    ...(options.signal && { signal: options.signal }),
  });
  return readAnswer(response, options.token === undefined);
}

/**
 * The JSON of an answer, or its error envelope thrown as an `ApiError`.
 * @template T
 * @param {Response} response
 * @param {boolean} withKeptToken  the request carried the tab's token: a 401 ends the session
 * @returns {Promise<T>}
 */
async function readAnswer(response, withKeptToken) {
  if (response.ok) return /** @type {Promise<T>} */ (response.json());
  /** @type {{ error?: { code?: string, message?: string } }} */
  let body = {};
  try {
    body = await response.json();
  } catch {
    // not the envelope (a proxy's page): the status says enough
  }
  const error = new ApiError(
    response.status,
    body.error?.code ?? 'http_error',
    body.error?.message ?? `HTTP ${response.status}`,
  );
  // A sign-in attempt reports its own 401; only the kept token's 401 ends the session.
  if (response.status === 401 && withKeptToken) onUnauthorized(error);
  throw error;
}

/**
 * Sends a JSON body (or none) with the tab's token: the actions on alerts and silences. Errors as
 * `apiGet`'s, a 401 included.
 * @template T
 * @param {'POST' | 'DELETE'} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<T>}
 */
export async function apiSend(method, path, body) {
  const token = storedToken();
  const response = await fetch(path, {
    method,
    headers: {
      accept: 'application/json',
      ...(token && { authorization: `Bearer ${token}` }),
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
    cache: 'no-store',
    credentials: 'omit',
  });
  return readAnswer(response, true);
}

/** True for the abort of a request the page no longer wants (it navigated away, or asked again). */
export function isAbort(/** @type {unknown} */ error) {
  return error instanceof DOMException && error.name === 'AbortError';
}
