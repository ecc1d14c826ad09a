/** Delivery counters of one agent; all counts are readings, not requests. */
export interface DeliveryCounters {
  /** Put into the buffer. */
  generated: number;
  /** Transmitted, counting every resend. */
  sent: number;
  /** Confirmed stored by the service: accepted plus duplicates. */
  acknowledged: number;
  accepted: number;
  /** Already stored before (a resend after a lost acknowledgement), as the service reported. */
  duplicates: number;
  /** Refused: per-reading rejections and whole batches answered with a 4xx other than 429. */
  rejected: number;
  /** Transmissions after the first of the same reading. */
  retried: number;
  /** Held unacknowledged right now (queued and in flight). */
  buffered: number;
  /** Evicted from a full buffer before being acknowledged. */
  dropped: number;
  /** Failed attempts: network errors, 429/5xx, overload replies, lost connections. */
  failures: number;
}

export function createCounters(): DeliveryCounters {
  return {
    generated: 0,
    sent: 0,
    acknowledged: 0,
    accepted: 0,
    duplicates: 0,
    rejected: 0,
    retried: 0,
    buffered: 0,
    dropped: 0,
    failures: 0,
  };
}

/** Sums counters (for the fleet total). */
export function sumCounters(all: Iterable<DeliveryCounters>): DeliveryCounters {
  const total = createCounters();
  for (const c of all) {
    for (const key of Object.keys(total) as (keyof DeliveryCounters)[]) total[key] += c[key];
  }
  return total;
}
