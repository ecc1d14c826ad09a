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
  if (response.status === 401 && options.token === undefined) onUnauthorized(error);
  throw error;
}

/** True for the abort of a request the page no longer wants (it navigated away, or asked again). */
export function isAbort(/** @type {unknown} */ error) {
  return error instanceof DOMException && error.name === 'AbortError';
}
