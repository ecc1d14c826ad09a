/** Re-exports src/agent/delivery/transport.ts for callers outside simulators/ (see buffer.ts). */
export {
  apiUrl,
  IngestResult,
  RejectedReading,
  readErrorEnvelope,
  type SendOutcome,
  type Transport,
} from '../../src/agent/delivery/transport.ts';
