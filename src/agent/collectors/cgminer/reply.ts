/**
 * The CGMiner API's envelope and the units inside it, shared by every firmware profile (pure).
 *
 * A reply is `{"STATUS":[{"STATUS":"S","When":…,"Code":…,"Msg":…}],"<COMMAND>":[…],"id":1}`;
 * Whatsminer's btminer writes STATUS as a bare string on errors (`{"STATUS":"E","Msg":"invalid cmd"}`).
 * Joined commands (`summary+pools`) answer `{"summary":[<envelope>],"pools":[<envelope>],"id":1}`.
 */
import { asObject, asObjects, type Json, toNumber } from '../values.ts';

export interface ReplyStatus {
  /** S success, I info, W warning, E error, F fatal; undefined when the reply has no STATUS. */
  status: string | undefined;
  code: number | undefined;
  message: string | undefined;
  /** The miner's clock, epoch seconds. */
  when: number | undefined;
}

/** The STATUS of a reply, array or bare-string form. */
export function replyStatus(reply: Json): ReplyStatus {
  const raw = reply.STATUS;
  const first = Array.isArray(raw) ? asObject(raw[0]) : undefined;
  if (first) {
    return {
      status: typeof first.STATUS === 'string' ? first.STATUS : undefined,
      code: toNumber(first.Code),
      message: typeof first.Msg === 'string' ? first.Msg : undefined,
      when: toNumber(first.When),
    };
  }
  return {
    status: typeof raw === 'string' ? raw : undefined,
    code: toNumber(reply.Code),
    message: typeof reply.Msg === 'string' ? reply.Msg : undefined,
    when: toNumber(reply.When),
  };
}

/** Whether the reply says the command failed (STATUS E or F). */
export function isErrorReply(reply: Json): boolean {
  const s = replyStatus(reply).status;
  return s === 'E' || s === 'F';
}

/** The payload objects of a command's reply: `SUMMARY[…]` for summary, `STATS[…]` for stats. */
export function payload(reply: Json | undefined, command: string): Json[] {
  if (!reply) return [];
  return asObjects(reply[command.toUpperCase()]);
}

/**
 * The reply of each command of a joined request (`summary+stats+pools`), or null when the firmware
 * did not understand the join (an error reply, or none of the commands' keys).
 */
export function splitJoinedReply(reply: Json, commands: readonly string[]): Map<string, Json> | null {
  const out = new Map<string, Json>();
  for (const command of commands) {
    const inner = reply[command];
    const envelope = Array.isArray(inner) ? asObject(inner[0]) : asObject(inner);
    if (envelope) out.set(command, envelope);
  }
  return out.size > 0 ? out : null;
}

/**
 * Hashes per TH of a unit prefix. Values are divided by it: a division by a power of ten gives the
 * double nearest the decimal result (GH/s 104012.34 → 104.01234 TH/s); a multiplication by 1e-3 may not.
 */
const HASHRATE_DIVISOR: Record<string, number> = { K: 1e9, M: 1e6, G: 1e3, T: 1 };

/**
 * Hashrate in TH/s from the summary's fields, trying the averaging windows in order
 * ("MHS 1m", "GHS 5s"…): the unit is the key's prefix, KHS/MHS/GHS/THS.
 */
export function summaryHashrateThs(
  summary: Json | undefined,
  windows: readonly string[],
): number | undefined {
  if (!summary) return undefined;
  for (const window of windows) {
    for (const prefix of ['T', 'G', 'M', 'K']) {
      const value = toNumber(summary[`${prefix}HS ${window}`]);
      if (value !== undefined) return value / HASHRATE_DIVISOR[prefix]!;
    }
  }
  return undefined;
}

/** What a rate in a `rate_unit` ("GH/s", "MH/s", "TH/s") is divided by for TH/s; GH/s when absent or unknown. */
export function rateUnitDivisor(unit: unknown): number {
  if (typeof unit !== 'string') return 1e3;
  const prefix = unit.trim().charAt(0).toUpperCase();
  return HASHRATE_DIVISOR[prefix] ?? 1e3;
}

/** One hashboard (chain) as the firmware reports it, numbered 0… in the order it lists them. */
export interface ChainSnapshot {
  hashrateThs?: number;
  chipTempC?: number;
  boardTempC?: number;
  hardwareErrors?: number;
  chips?: number;
}

/**
 * What a miner reported, in hashwatt's units: the common model every firmware profile maps to,
 * richer than a reading (per-chain hashrate has no catalog metric yet, pools are not metrics).
 */
export interface MinerSnapshot {
  model?: string;
  hashrateThs?: number;
  expectedHashrateThs?: number;
  powerW?: number;
  powerLimitW?: number;
  chains: ChainSnapshot[];
  fansRpm: number[];
  inletTempC?: number;
  sharesAccepted?: number;
  sharesRejected?: number;
  hardwareErrors?: number;
  pools?: number;
  poolsAlive?: number;
  uptimeS?: number;
}

export function emptySnapshot(): MinerSnapshot {
  return { chains: [], fansRpm: [] };
}

/** Pools configured and alive, from a `pools` reply. */
export function poolCounts(reply: Json | undefined): { pools?: number; poolsAlive?: number } {
  const pools = payload(reply, 'pools');
  if (!reply || pools.length === 0) return {};
  const alive = pools.filter((p) => String(p.Status ?? p.status ?? '').toLowerCase() === 'alive').length;
  return { pools: pools.length, poolsAlive: alive };
}
