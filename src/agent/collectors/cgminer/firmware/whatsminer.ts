/**
 * MicroBT Whatsminer, API V2 (btminer on TCP 4028). Reading needs no token; privileged commands
 * are AES-encrypted with one from `get_token`, which the agent never sends. Firmware from late
 * 2024 dropped V2 for V3 (TCP 4433, ../../whatsminer-v3.ts).
 * - summary: `MHS 1m`, `MHS av` (MH/s), `Factory GHS` (nameplate, GH/s), `Power` (W, measured by
 *   the PSU), `Power Limit`, `Env Temp` (inlet), `Temperature`, `Chip Temp Max`, `Fan Speed In`,
 *   `Fan Speed Out`, `Accepted`, `Rejected`, `Elapsed`;
 * - devs: per hashboard `Slot`, `Temperature` (board), `Chip Temp Max`, `MHS 1m`, `Effective Chips`;
 * - devdetails: `Model` ("M60S.VK30");
 * - errors come back as `{"STATUS":"E","Code":14,"Msg":"invalid cmd"}`, STATUS a bare string.
 * `version` answers `Msg: { api_ver, fw_ver, platform, chip }`.
 */
import { asObject, type Json, maxOf, toNumber } from '../../values.ts';
import { type ChainSnapshot, emptySnapshot, payload, poolCounts, summaryHashrateThs } from '../reply.ts';
import { mapSummary } from './antminer.ts';
import type { FirmwareProfile } from './profile.ts';

function versionMessage(version: Json): Json | undefined {
  return asObject(version.Msg);
}

/** "M60S.VK30" → "M60S": the suffix is the hashboard variant. */
function whatsminerModel(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  return value.trim().split('.')[0]!.slice(0, 64);
}

export const WHATSMINER: FirmwareProfile = {
  name: 'whatsminer',
  label: 'MicroBT Whatsminer (btminer, API V2)',
  commands: ['summary', 'devs', 'pools', 'devdetails'],
  joined: false,
  identify(version) {
    const msg = versionMessage(version);
    if (msg && ('api_ver' in msg || 'fw_ver' in msg)) return true;
    const v = payload(version, 'version')[0];
    return v !== undefined && ('btminer' in v || 'BTMiner' in v);
  },
  describe(version) {
    const msg = versionMessage(version);
    const fw = msg?.fw_ver ?? payload(version, 'version')[0]?.btminer;
    return typeof fw === 'string' ? { version: fw } : {};
  },
  map(replies) {
    const snapshot = emptySnapshot();
    mapSummary(snapshot, replies.get('summary'));
    const summary = payload(replies.get('summary'), 'summary')[0];
    const factory = toNumber(summary?.['Factory GHS']);
    if (factory !== undefined && factory > 0) snapshot.expectedHashrateThs = factory / 1000;
    const power = toNumber(summary?.Power);
    if (power !== undefined && power > 0) snapshot.powerW = power;
    const limit = toNumber(summary?.['Power Limit']);
    if (limit !== undefined && limit > 0) snapshot.powerLimitW = limit;
    const inlet = toNumber(summary?.['Env Temp']);
    if (inlet !== undefined) snapshot.inletTempC = inlet;
    snapshot.fansRpm = [toNumber(summary?.['Fan Speed In']), toNumber(summary?.['Fan Speed Out'])].filter(
      (v): v is number => v !== undefined,
    );
    const chains: ChainSnapshot[] = [];
    for (const dev of payload(replies.get('devs'), 'devs')) {
      const chain: ChainSnapshot = {};
      const rate = summaryHashrateThs(dev, ['1m', '5s', 'av']);
      if (rate !== undefined) chain.hashrateThs = rate;
      const chip = toNumber(dev['Chip Temp Max'] ?? dev['Chip Temp Avg']);
      if (chip !== undefined && chip > 0) chain.chipTempC = chip;
      const board = toNumber(dev.Temperature);
      if (board !== undefined && board > 0) chain.boardTempC = board;
      const chips = toNumber(dev['Effective Chips']);
      if (chips !== undefined) chain.chips = chips;
      chains.push(chain);
    }
    snapshot.chains = chains;
    if (chains.length === 0) {
      // Without devs, the summary's hottest chip stands for the miner.
      const hottest = maxOf([toNumber(summary?.['Chip Temp Max']), toNumber(summary?.Temperature)]);
      if (hottest !== undefined) snapshot.chains = [{ chipTempC: hottest }];
    }
    const model = whatsminerModel(payload(replies.get('devdetails'), 'devdetails')[0]?.Model);
    if (model !== undefined) snapshot.model = model;
    Object.assign(snapshot, poolCounts(replies.get('pools')));
    return snapshot;
  },
};
