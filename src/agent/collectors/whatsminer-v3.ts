/**
 * MicroBT Whatsminer API V3 (TCP 4433, firmware from late 2024). Every message, both ways, is a
 * 4-byte little-endian length and that many bytes of JSON: `{"cmd":"get.miner.status","param":"summary"}`
 * → `{"code":0,"when":…,"msg":{"summary":{…}},"desc":"get.miner.status"}`; `code` ≠ 0 is an error.
 * Reading needs no token (`set.*` commands carry one derived from the password, never sent here).
 *
 * Fields read (the V3 document's names, hashrates in TH/s): summary `hash-realtime`,
 * `factory-hash`, `power-realtime`, `power-limit`, `environment-temperature`, `chip-temp-max`,
 * `fan-speed-in`, `fan-speed-out`, `elapsed`; edevs (per hashboard) `hash-average`,
 * `chip-temp-max`, `pcb-temperature`, `effective-chips`; pools `status`, `accepted`, `rejected`;
 * get.device.info `miner.type` (model) and `system.fwversion`.
 */

import type { ChainSnapshot, MinerSnapshot } from './cgminer/reply.ts';
import type { Collector, DeviceIdentity, MinerTarget, PollContext, PollResult } from './collector.ts';
import { PollError } from './collector.ts';
import { minerReading } from './miner-reading.ts';
import { exchange } from './tcp.ts';
import { asObject, asObjects, type Json, toNumber } from './values.ts';

export const WHATSMINER_V3_PORT = 4433;
/** A frame longer than this is no V3 reply (they are a few KiB): the length prefix is garbage. */
const MAX_FRAME_BYTES = 1024 * 1024;
const MIN_COMMAND_MS = 50;

/** One framed message: the 4-byte little-endian length, then the JSON bytes. */
export function encodeV3Frame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32LE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

/** The length a frame announces, once its 4 bytes are in; null before. */
function announcedLength(chunks: readonly Buffer[]): number | null {
  let have = 0;
  for (const c of chunks) have += c.length;
  if (have < 4) return null;
  return Buffer.concat(chunks).readUInt32LE(0);
}

/** Sends one V3 command and returns the reply's JSON object (whatever its `code`). */
export async function sendV3Command(
  host: string,
  port: number,
  message: { cmd: string; param?: unknown },
  options: { timeoutMs: number; connectTimeoutMs: number },
): Promise<Json> {
  let expected: number | null = null;
  let received = 0;
  const { data } = await exchange({
    host,
    port,
    request: encodeV3Frame(message),
    timeoutMs: options.timeoutMs,
    connectTimeoutMs: options.connectTimeoutMs,
    maxBytes: MAX_FRAME_BYTES + 4,
    isComplete: (chunk, chunks) => {
      received += chunk.length;
      if (expected === null) {
        expected = announcedLength(chunks);
        if (expected !== null && expected > MAX_FRAME_BYTES) return true; // refused below
      }
      return expected !== null && received >= 4 + expected;
    },
  });
  if (data.length < 4) throw new PollError('truncated', `${message.cmd}: no complete length prefix`);
  const length = data.readUInt32LE(0);
  if (length > MAX_FRAME_BYTES)
    throw new PollError('malformed', `${message.cmd}: frame announces ${length} bytes`);
  if (data.length < 4 + length)
    throw new PollError('truncated', `${message.cmd}: ${data.length - 4} of ${length} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(data.subarray(4, 4 + length).toString('utf8'));
  } catch (error) {
    throw new PollError('malformed', `${message.cmd}: ${(error as Error).message.slice(0, 200)}`);
  }
  const reply = asObject(json);
  if (!reply) throw new PollError('malformed', `${message.cmd}: the reply is not a JSON object`);
  return reply;
}

function isOk(reply: Json): boolean {
  return toNumber(reply.code) === 0;
}

/** The part of `msg` a status command answers: msg.summary, msg.edevs… */
function section(reply: Json | undefined, name: string): unknown {
  return reply ? asObject(reply.msg)?.[name] : undefined;
}

/** The snapshot from V3 replies (pure). */
export function mapV3Replies(summaryReply: Json, edevsReply?: Json, poolsReply?: Json): MinerSnapshot {
  const s = asObject(section(summaryReply, 'summary')) ?? {};
  const snapshot: MinerSnapshot = { chains: [], fansRpm: [] };
  const hashrate = toNumber(s['hash-realtime'] ?? s['hash-average']);
  if (hashrate !== undefined) snapshot.hashrateThs = hashrate;
  const factory = toNumber(s['factory-hash']);
  if (factory !== undefined && factory > 0) snapshot.expectedHashrateThs = factory;
  const power = toNumber(s['power-realtime']);
  if (power !== undefined && power > 0) snapshot.powerW = power;
  const limit = toNumber(s['power-limit']);
  if (limit !== undefined && limit > 0) snapshot.powerLimitW = limit;
  const inlet = toNumber(s['environment-temperature']);
  if (inlet !== undefined) snapshot.inletTempC = inlet;
  const elapsed = toNumber(s.elapsed);
  if (elapsed !== undefined) snapshot.uptimeS = elapsed;
  snapshot.fansRpm = [toNumber(s['fan-speed-in']), toNumber(s['fan-speed-out'])].filter(
    (v): v is number => v !== undefined,
  );
  const chains: ChainSnapshot[] = [];
  for (const dev of asObjects(section(edevsReply, 'edevs'))) {
    const chain: ChainSnapshot = {};
    const rate = toNumber(dev['hash-average']);
    if (rate !== undefined) chain.hashrateThs = rate;
    const chip = toNumber(dev['chip-temp-max'] ?? dev['chip-temp-avg']);
    if (chip !== undefined && chip > 0) chain.chipTempC = chip;
    const pcb = toNumber(dev['pcb-temperature']);
    if (pcb !== undefined && pcb > 0) chain.boardTempC = pcb;
    const chips = toNumber(dev['effective-chips']);
    if (chips !== undefined) chain.chips = chips;
    chains.push(chain);
  }
  if (chains.length === 0) {
    const chip = toNumber(s['chip-temp-max']);
    if (chip !== undefined) chains.push({ chipTempC: chip });
  }
  snapshot.chains = chains;
  const pools = asObjects(section(poolsReply, 'pools'));
  if (poolsReply && pools.length > 0) {
    snapshot.pools = pools.length;
    snapshot.poolsAlive = pools.filter((p) => String(p.status ?? '').toLowerCase() === 'alive').length;
    let accepted = 0;
    let rejected = 0;
    let any = false;
    for (const p of pools) {
      const a = toNumber(p.accepted);
      const r = toNumber(p.rejected);
      if (a !== undefined) {
        accepted += a;
        any = true;
      }
      if (r !== undefined) rejected += r;
    }
    if (any) {
      snapshot.sharesAccepted = accepted;
      snapshot.sharesRejected = rejected;
    }
  }
  return snapshot;
}

/** Model and firmware from get.device.info (pure). */
export function describeV3Device(reply: Json): { model?: string; version?: string } {
  const msg = asObject(reply.msg);
  const type = asObject(msg?.miner)?.type;
  const fw = asObject(msg?.system)?.fwversion;
  return {
    ...(typeof type === 'string' && type !== '' && { model: type.split('.')[0]!.slice(0, 64) }),
    ...(typeof fw === 'string' && { version: fw }),
  };
}

export class WhatsminerV3Collector implements Collector<MinerTarget> {
  readonly #identity = new Map<string, DeviceIdentity>();

  identity(targetId: string): DeviceIdentity | undefined {
    return this.#identity.get(targetId);
  }

  async poll(target: MinerTarget, context: PollContext): Promise<PollResult> {
    const deadline = performance.now() + context.timeoutMs;
    const port = target.port ?? WHATSMINER_V3_PORT;
    const problems: string[] = [];
    const send = (message: { cmd: string; param?: unknown }) => {
      const left = deadline - performance.now();
      if (left < MIN_COMMAND_MS) throw new PollError('timeout', `no time left for ${message.cmd}`);
      return sendV3Command(target.host, port, message, {
        timeoutMs: left,
        connectTimeoutMs: Math.min(context.connectTimeoutMs, left),
      });
    };
    let identity = this.#identity.get(target.id);
    if (!identity) {
      const info = await send({ cmd: 'get.device.info' });
      identity = { firmware: 'whatsminer-v3', ...(isOk(info) ? describeV3Device(info) : {}) };
      this.#identity.set(target.id, identity);
    }
    const summary = await send({ cmd: 'get.miner.status', param: 'summary' });
    if (!isOk(summary))
      throw new PollError('command_error', `get.miner.status summary: code ${String(summary.code)}`);
    const optional = async (param: string): Promise<Json | undefined> => {
      try {
        const reply = await send({ cmd: 'get.miner.status', param });
        if (isOk(reply)) return reply;
        problems.push(`${param}: code ${String(reply.code)}`);
      } catch (error) {
        problems.push(`${param}: ${(error as Error).message}`);
      }
      return undefined;
    };
    const edevs = await optional('edevs');
    const pools = await optional('pools');
    const snapshot = mapV3Replies(summary, edevs, pools);
    if (identity.model !== undefined) snapshot.model = identity.model;
    const reading = minerReading(target.device, context.ts, snapshot, {
      ...(target.expectedHashrateThs !== undefined && { expectedHashrateThs: target.expectedHashrateThs }),
    });
    return { readings: [reading], problems, repairs: [], identity };
  }
}
