import type { Condition } from './rules.ts';

/**
 * The life of one alert of one site: inactive → pending (for `for`) → firing → resolved. Inactive
 * and resolved have no record here: an open episode is `pending` or `firing`, and a resolved one
 * is history (its row in the alerts table).
 */
export type OpenState = 'pending' | 'firing';

export interface AlertEpisode {
  state: OpenState;
  /** When the condition was first met (Prometheus' activeAt; Alertmanager's startsAt). */
  pendingSinceMs: number;
  firedAtMs: number | null;
  /** While firing: since when the condition has been continuously clear; null when it is not. */
  clearSinceMs: number | null;
  value: number | null;
}

/** What changed in one step; `pending` and `firing` together when there is no `for`. */
export type AlertEvent = 'pending' | 'firing' | 'resolved' | 'cancelled';

export interface AlertTiming {
  forMs: number;
  resolveHoldMs: number;
}

export interface AlertStep {
  next: AlertEpisode | null;
  events: AlertEvent[];
}

/**
 * One evaluation of one alert: the previous episode (null when inactive), what the rule concluded,
 * the measured value, now, and the rule's timing → the next episode and what happened.
 *
 * - pending fires only once the condition has held for `forMs`, and is cancelled by any
 *   evaluation that does not find it met (as in Prometheus);
 * - firing resolves only once the condition has been clear for `resolveHoldMs` without
 *   interruption, so a value hovering at the threshold keeps one alert open;
 * - `unknown` (a dark site) cancels a pending episode and holds a firing one without counting
 *   towards its resolution.
 */
export function stepAlert(
  prev: AlertEpisode | null,
  condition: Condition,
  value: number | null,
  nowMs: number,
  timing: AlertTiming,
): AlertStep {
  if (prev === null) {
    if (condition !== 'met') return { next: null, events: [] };
    if (timing.forMs <= 0) {
      return {
        next: { state: 'firing', pendingSinceMs: nowMs, firedAtMs: nowMs, clearSinceMs: null, value },
        events: ['pending', 'firing'],
      };
    }
    return {
      next: { state: 'pending', pendingSinceMs: nowMs, firedAtMs: null, clearSinceMs: null, value },
      events: ['pending'],
    };
  }

  if (prev.state === 'pending') {
    if (condition !== 'met') return { next: null, events: ['cancelled'] };
    if (nowMs - prev.pendingSinceMs >= timing.forMs) {
      return { next: { ...prev, state: 'firing', firedAtMs: nowMs, value }, events: ['firing'] };
    }
    return { next: { ...prev, value }, events: [] };
  }

  // firing
  if (condition === 'clear') {
    const clearSinceMs = prev.clearSinceMs ?? nowMs;
    if (nowMs - clearSinceMs >= timing.resolveHoldMs) return { next: null, events: ['resolved'] };
    return { next: { ...prev, clearSinceMs, value }, events: [] };
  }
  return {
    next: { ...prev, clearSinceMs: null, value: condition === 'met' ? value : prev.value },
    events: [],
  };
}
