/**
 * Delivery moved to src/agent/delivery/ (the site agent owns it; the simulators use it). This file
 * re-exports it for callers outside simulators/ until they import src/agent/delivery directly.
 */
export {
  type Batch,
  type BatchState,
  type BufferLimits,
  ReadingBuffer,
  type ReadingStore,
} from '../../src/agent/delivery/buffer.ts';
