/**
 * Bitmain Antminer stock firmware (bmminer, and the cgminer build newer releases ship). Fields as
 * the firmware prints them (S19-generation `stats`, checked against pyasic's bmminer backend and
 * block/proto-fleet's Antminer plugin):
 *
 * - summary: `GHS 5s`, `GHS av` (`GHS 30m` on newer builds), `Accepted`, `Rejected`,
 *   `Hardware Errors`, `Elapsed`. Values are sometimes strings ("104012.34").
 * - stats: STATS[0] is the version block, STATS[1] the miner (bmminer joins them with `}{`):
 *   `fan_num`, `fan1..n`; `temp1..n` (board), `temp2_1..n` (chip) on older builds,
 *   `temp_pcb1..n` / `temp_chip1..n` ("40-40-56-56": four sensors) on newer; `chain_rate1..n`,
 *   `chain_acn1..n` (chips), `chain_hw1..n`; `total_rateideal` and `rate_unit` (GH/s, MH/s);
 *   `chain_power` ("3250 W") on the few builds that estimate it. `stats` with `new_api` answers a
 *   `chain[]` array (`rate_real`, `asic_num`, `temp_pcb[]`, `temp_chip[]`, `hw`) and `fan[]`.
 * - Stock firmware reports no power draw: the site's meters measure it.
 */
import { type Json, maxOf, toNumber, toNumbers } from '../../values.ts';
import {
  type ChainSnapshot,
  emptySnapshot,
  type MinerSnapshot,
  payload,
  poolCounts,
  rateUnitDivisor,
  summaryHashrateThs,
} from '../reply.ts';
import { type FirmwareProfile, modelName } from './profile.ts';

/** The summary's windows, most useful first: the 1-minute average where firmware has it. */
export const SUMMARY_WINDOWS = ['1m', '5s', '30m', '15m', 'av'] as const;

/** Hashrate, shares, errors and uptime from a `summary` reply (every CGMiner-family firmware). */
export function mapSummary(snapshot: MinerSnapshot, reply: Json | undefined): void {
  const summary = payload(reply, 'summary')[0];
  if (!summary) return;
  const hashrate = summaryHashrateThs(summary, SUMMARY_WINDOWS);
  if (hashrate !== undefined) snapshot.hashrateThs = hashrate;
  const accepted = toNumber(summary.Accepted);
  if (accepted !== undefined) snapshot.sharesAccepted = accepted;
  const rejected = toNumber(summary.Rejected);
  if (rejected !== undefined) snapshot.sharesRejected = rejected;
  const hw = toNumber(summary['Hardware Errors']);
  if (hw !== undefined) snapshot.hardwareErrors = hw;
  const elapsed = toNumber(summary.Elapsed);
  if (elapsed !== undefined) snapshot.uptimeS = elapsed;
}

/** The STATS element that describes the miner (not the version block before it). */
function minerStats(reply: Json | undefined): Json | undefined {
  const all = payload(reply, 'stats');
  return (
    all.find(
      (s) => 'fan_num' in s || 'chain_rate1' in s || Array.isArray(s.chain) || 'total_rateideal' in s,
    ) ?? all[1]
  );
}

function numbered(stats: Json, pattern: RegExp): Map<number, unknown> {
  const out = new Map<number, unknown>();
  for (const [key, value] of Object.entries(stats)) {
    const m = pattern.exec(key);
    if (m) out.set(Number(m[1]), value);
  }
  return out;
}

/** Fans from `fan_num` and `fan1..n`; an S9 reports its two fans as fan3 and fan6 of eight. */
function fans(stats: Json): number[] {
  const all = [...numbered(stats, /^fan(\d+)$/).entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([, v]) => toNumber(v))
    .filter((v): v is number => v !== undefined);
  const count = toNumber(stats.fan_num);
  const spinning = all.filter((v) => v > 0);
  if (count === undefined) return spinning;
  // A fan at 0 rpm among the first fan_num is a stopped fan, worth reporting; slots past them are empty.
  return spinning.length <= count && all.length > count ? spinning : all.slice(0, count);
}

function chainsFromNumberedKeys(stats: Json, divisor: number): ChainSnapshot[] {
  const rates = numbered(stats, /^chain_rate(\d+)$/);
  const chips = numbered(stats, /^chain_acn(\d+)$/);
  const hws = numbered(stats, /^chain_hw(\d+)$/);
  const chipNew = numbered(stats, /^temp_chip(\d+)$/);
  const pcbNew = numbered(stats, /^temp_pcb(\d+)$/);
  const chipOld = numbered(stats, /^temp2_(\d+)$/);
  const pcbOld = numbered(stats, /^temp(\d+)$/);
  const ids = new Set<number>([...rates.keys(), ...chips.keys(), ...chipNew.keys(), ...chipOld.keys()]);
  const chains: ChainSnapshot[] = [];
  for (const id of [...ids].sort((a, b) => a - b)) {
    const rate = toNumber(rates.get(id));
    const acn = toNumber(chips.get(id));
    const chipTemp = maxOf([...toNumbers(chipNew.get(id)), toNumber(chipOld.get(id))]);
    // Slots without a board: no chips, no rate, no temperature.
    if (!((acn ?? 0) > 0 || (rate ?? 0) > 0 || (chipTemp ?? 0) > 0)) continue;
    const chain: ChainSnapshot = {};
    if (rate !== undefined) chain.hashrateThs = rate / divisor;
    if (acn !== undefined) chain.chips = acn;
    if (chipTemp !== undefined && chipTemp > 0) chain.chipTempC = chipTemp;
    const boardTemp = maxOf([...toNumbers(pcbNew.get(id)), toNumber(pcbOld.get(id))]);
    if (boardTemp !== undefined && boardTemp > 0) chain.boardTempC = boardTemp;
    const hw = toNumber(hws.get(id));
    if (hw !== undefined) chain.hardwareErrors = hw;
    chains.push(chain);
  }
  return chains;
}

function chainsFromArray(stats: Json, divisor: number): ChainSnapshot[] {
  const chains: ChainSnapshot[] = [];
  for (const c of Array.isArray(stats.chain) ? stats.chain : []) {
    if (c === null || typeof c !== 'object') continue;
    const chain: ChainSnapshot = {};
    const o = c as Json;
    const rate = toNumber(o.rate_real);
    if (rate !== undefined) chain.hashrateThs = rate / divisor;
    const chips = toNumber(o.asic_num);
    if (chips !== undefined) chain.chips = chips;
    const chip = maxOf(toNumbers(o.temp_chip));
    if (chip !== undefined) chain.chipTempC = chip;
    const pcb = maxOf(toNumbers(o.temp_pcb));
    if (pcb !== undefined) chain.boardTempC = pcb;
    const hw = toNumber(o.hw);
    if (hw !== undefined) chain.hardwareErrors = hw;
    chains.push(chain);
  }
  return chains;
}

/** Chains, fans, expected hashrate and power from a bmminer-style `stats` reply (Antminer, LuxOS). */
export function mapAntminerStats(snapshot: MinerSnapshot, reply: Json | undefined): void {
  const stats = minerStats(reply);
  if (!stats) return;
  const unit = rateUnitDivisor(stats.rate_unit);
  snapshot.chains = Array.isArray(stats.chain)
    ? chainsFromArray(stats, unit)
    : chainsFromNumberedKeys(stats, unit);
  snapshot.fansRpm = Array.isArray(stats.fan) ? toNumbers(stats.fan) : fans(stats);
  const ideal = toNumber(stats.total_rateideal ?? stats.rate_ideal);
  if (ideal !== undefined && ideal > 0) snapshot.expectedHashrateThs = ideal / unit;
  const power = toNumber(stats.chain_power ?? stats.power);
  if (power !== undefined && power > 0) snapshot.powerW = power;
  if (snapshot.hashrateThs === undefined) {
    const rate = toNumber(stats['GHS 5s'] ?? stats['GHS av']);
    if (rate !== undefined) snapshot.hashrateThs = rate / 1000;
  }
}

function versionBlock(version: Json): Json | undefined {
  return payload(version, 'version')[0];
}

export const ANTMINER: FirmwareProfile = {
  name: 'antminer',
  label: 'Bitmain Antminer stock firmware (bmminer / cgminer)',
  commands: ['summary', 'stats', 'pools'],
  // S19-generation stock firmware refuses joined commands; older ones accept them. Tried once per miner.
  joined: true,
  identify(version) {
    const v = versionBlock(version);
    if (!v || 'BOSminer' in v || 'BOSer' in v || 'LUXminer' in v) return false;
    return 'BMMiner' in v || (typeof v.Type === 'string' && v.Type.startsWith('Antminer'));
  },
  describe(version) {
    const v = versionBlock(version);
    const fw = v?.BMMiner ?? v?.CGMiner ?? v?.Miner;
    return {
      ...(modelName(v?.Type) !== undefined && { model: modelName(v?.Type) }),
      ...(typeof fw === 'string' && { version: fw }),
    };
  },
  map(replies) {
    const snapshot = emptySnapshot();
    mapSummary(snapshot, replies.get('summary'));
    mapAntminerStats(snapshot, replies.get('stats'));
    Object.assign(snapshot, poolCounts(replies.get('pools')));
    return snapshot;
  },
};
