import type { Fault } from '../scenario.ts';

/** Faults that apply to one site, in schedule order. */
export function faultsForSite(faults: readonly Fault[], site: string): Fault[] {
  return faults.filter((f) => f.site === undefined || f.site === site);
}

/** Whether a fault is in effect at an offset (seconds from scenario start). */
export function isFaultActive(fault: Fault, offsetS: number): boolean {
  return offsetS >= fault.at_s && offsetS < fault.at_s + (fault.duration_s ?? Number.POSITIVE_INFINITY);
}

/** The faults of a given type in effect at an offset. */
export function activeFaults<T extends Fault['type']>(
  faults: readonly Fault[],
  type: T,
  offsetS: number,
): Extract<Fault, { type: T }>[] {
  return faults.filter((f): f is Extract<Fault, { type: T }> => f.type === type && isFaultActive(f, offsetS));
}
