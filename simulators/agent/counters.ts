/** Re-exports src/agent/delivery/counters.ts for callers outside simulators/ (see buffer.ts). */
export { createCounters, type DeliveryCounters, sumCounters } from '../../src/agent/delivery/counters.ts';
