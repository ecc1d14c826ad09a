/** Exponential backoff with jitter, and the server's Retry-After hints. */
export interface BackoffPolicy {
  /** Delay bound after the first failure. */
  baseMs: number;
  /** Ceiling, so an agent that was down for long still retries often enough to notice recovery. */
  maxMs: number;
  factor: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, maxMs: 30_000, factor: 2 };

/**
 * Delay before retry number `attempt` (1 = first retry): "equal jitter" — half the exponential bound
 * plus a random half — so sites that failed together do not come back in lockstep, yet the delay
 * still grows with every failure.
 */
export function computeBackoffMs(
  attempt: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random = Math.random,
): number {
  const bound = Math.min(policy.maxMs, policy.baseMs * policy.factor ** Math.max(0, attempt - 1));
  return bound / 2 + random() * (bound / 2);
}

/**
 * Delay before the next try. A server hint (Retry-After, retry_after_ms) wins over our own backoff:
 * the server knows when it will have room. Up to 10 % jitter is added on top, never taken off.
 */
export function computeRetryDelayMs(
  attempt: number,
  retryAfterMs: number | undefined,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random = Math.random,
): number {
  if (retryAfterMs !== undefined && retryAfterMs >= 0) return retryAfterMs * (1 + 0.1 * random());
  return computeBackoffMs(attempt, policy, random);
}

/** Parses a Retry-After header: delay-seconds or an HTTP date. Undefined when absent or unreadable. */
export function parseRetryAfterMs(header: string | undefined | null, nowMs = Date.now()): number | undefined {
  if (header === undefined || header === null) return undefined;
  const value = header.trim();
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
