/** Reading loosely typed device answers: numbers sent as strings, objects that may be anything. */

export type Json = Record<string, unknown>;

/** The value when it is a plain object, else undefined. */
export function asObject(value: unknown): Json | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : undefined;
}

/** The value when it is an array of objects (other elements skipped), else []. */
export function asObjects(value: unknown): Json[] {
  if (!Array.isArray(value)) return [];
  const out: Json[] = [];
  for (const v of value) {
    const o = asObject(v);
    if (o) out.push(o);
  }
  return out;
}

/**
 * A number from a device field: a JSON number, or a string firmware printed it as ("104012.34",
 * "13,950.92", "3250 W", " 71 "). Undefined for anything else, NaN and infinities included.
 */
export function toNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*([+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]!.replaceAll(',', ''));
  return Number.isFinite(n) ? n : undefined;
}

/** All numbers in a string of readings joined by dashes or spaces ("40-40-56-56"), or the number itself. */
export function toNumbers(value: unknown): number[] {
  if (typeof value === 'number') return Number.isFinite(value) ? [value] : [];
  if (Array.isArray(value)) return value.flatMap(toNumbers);
  if (typeof value !== 'string') return [];
  const out: number[] = [];
  for (const part of value.split(/[\s-]+/)) {
    const n = toNumber(part);
    if (n !== undefined) out.push(n);
  }
  return out;
}

/** The largest of some numbers; undefined for none. */
export function maxOf(values: readonly (number | undefined)[]): number | undefined {
  let max: number | undefined;
  for (const v of values) if (v !== undefined && (max === undefined || v > max)) max = v;
  return max;
}

/** The mean of some numbers; undefined for none. */
export function meanOf(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** The first key of `object` that exists, matched exactly. */
export function firstOf(object: Json | undefined, keys: readonly string[]): unknown {
  if (!object) return undefined;
  for (const k of keys) if (k in object) return object[k];
  return undefined;
}

/** Rounds to a number of decimals: readings stay short on the wire and compare exactly in tests. */
export function round(value: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}
