/**
 * The flood scenario's two abusive agents on a thread of their own: building and sending ~750 KB
 * bodies as fast as they are answered would otherwise hold the event loop the steady agents' acks
 * are timed on, and their latency would measure the load generator instead of the service.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { FloodBatches, floodHttp, floodWebSocket } from './flood.ts';
import { sleep } from './process.ts';

/** What the test hands the worker. */
export interface FloodWorkerInput {
  url: string;
  token: string;
  floodMs: number;
  t0: number;
}

const { url, token, floodMs, t0 } = workerData as FloodWorkerInput;
const until = sleep(floodMs);
const [http, ws] = await Promise.all([
  floodHttp({
    url,
    token,
    concurrency: 16,
    batches: new FloodBatches('flood-http', 2_000, 5_000, t0),
    until,
  }),
  floodWebSocket({
    url,
    token,
    batches: new FloodBatches('flood-ws', 1_000, 2_000, t0),
    until,
    maxBufferedBytes: 16 * 1024 * 1024,
  }),
]);
// Sets and Maps are structured-cloned whole.
parentPort!.postMessage({ http, ws });
