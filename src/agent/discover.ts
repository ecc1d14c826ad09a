/**
 * `hashwatt agent discover`: finds miners in address ranges by asking each address the CGMiner
 * API's `version` on 4028 and the Whatsminer V3 `get.device.info` on 4433, with bounded
 * concurrency and a bounded total time, and names the firmware from the answer.
 */
import { sendCgminerCommand } from './collectors/cgminer/collector.ts';
import { identifyFirmware } from './collectors/cgminer/firmware/index.ts';
import { isErrorReply } from './collectors/cgminer/reply.ts';
import { PollError } from './collectors/collector.ts';
import { describeV3Device, sendV3Command } from './collectors/whatsminer-v3.ts';

export interface DiscoverOptions {
  hosts: readonly string[];
  cgminerPort?: number;
  whatsminerV3Port?: number;
  /** Probes (address and port) at once. */
  concurrency?: number;
  connectTimeoutMs?: number;
  /** Per probe, connection and answer. */
  timeoutMs?: number;
  /** The whole scan; probes not started by then are not made (and counted). */
  deadlineMs?: number;
}

export interface FoundMiner {
  host: string;
  port: number;
  api: 'cgminer' | 'whatsminer-v3';
  firmware: string;
  model?: string;
  version?: string;
  /** Something listens but its answer could not be read. */
  problem?: string;
}

export interface DiscoverResult {
  found: FoundMiner[];
  probes: number;
  /** Probes not made because the deadline passed. */
  skipped: number;
  maxConcurrent: number;
  elapsedMs: number;
}

type Probe = { host: string; port: number; api: FoundMiner['api'] };

async function probe(p: Probe, timeoutMs: number, connectTimeoutMs: number): Promise<FoundMiner | null> {
  try {
    if (p.api === 'cgminer') {
      const { value } = await sendCgminerCommand(p.host, p.port, 'version', { timeoutMs, connectTimeoutMs });
      if (isErrorReply(value)) return { ...p, firmware: 'cgminer', problem: 'version refused' };
      const profile = identifyFirmware(value);
      return { ...p, firmware: profile.name, ...profile.describe(value) };
    }
    const reply = await sendV3Command(
      p.host,
      p.port,
      { cmd: 'get.device.info' },
      { timeoutMs, connectTimeoutMs },
    );
    return { ...p, firmware: 'whatsminer-v3', ...describeV3Device(reply) };
  } catch (error) {
    if (!(error instanceof PollError)) throw error;
    // Nothing there (or nothing that answers): not a miner.
    if (error.code === 'refused' || error.code === 'unreachable' || error.code === 'timeout') return null;
    return { ...p, firmware: 'unknown', problem: `${error.code}: ${error.message}` };
  }
}

export async function discoverMiners(options: DiscoverOptions): Promise<DiscoverResult> {
  const started = performance.now();
  const concurrency = options.concurrency ?? 256;
  const timeoutMs = options.timeoutMs ?? 3000;
  const connectTimeoutMs = Math.min(options.connectTimeoutMs ?? 1000, timeoutMs);
  const deadline = started + (options.deadlineMs ?? 120_000);
  const probes: Probe[] = [];
  for (const host of options.hosts) {
    probes.push({ host, port: options.cgminerPort ?? 4028, api: 'cgminer' });
    probes.push({ host, port: options.whatsminerV3Port ?? 4433, api: 'whatsminer-v3' });
  }
  const found: FoundMiner[] = [];
  let next = 0;
  let active = 0;
  let maxConcurrent = 0;
  let skipped = 0;
  const worker = async () => {
    while (next < probes.length) {
      if (performance.now() >= deadline) {
        skipped += probes.length - next;
        next = probes.length;
        return;
      }
      const p = probes[next++]!;
      active++;
      maxConcurrent = Math.max(maxConcurrent, active);
      try {
        const left = Math.max(50, Math.min(timeoutMs, deadline - performance.now()));
        const result = await probe(p, left, Math.min(connectTimeoutMs, left));
        if (result) found.push(result);
      } finally {
        active--;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, probes.length) }, worker));
  const order = (f: FoundMiner) =>
    f.host
      .split('.')
      .map((o) => o.padStart(3, '0'))
      .join('.') + f.port;
  found.sort((a, b) => (order(a) < order(b) ? -1 : 1));
  return { found, probes: probes.length, skipped, maxConcurrent, elapsedMs: performance.now() - started };
}
