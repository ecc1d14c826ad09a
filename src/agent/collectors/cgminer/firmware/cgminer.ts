/**
 * Generic cgminer and its forks (Avalon, Canaan, Innosilicon and unknown builds): summary for
 * hashrate and shares, devs for per-device temperatures (`Temperature`, which one firmware spells
 * `Tenperature`) and rates. The profile used when `version` names no firmware the agent knows.
 */
import { toNumber } from '../../values.ts';
import { type ChainSnapshot, emptySnapshot, payload, poolCounts, summaryHashrateThs } from '../reply.ts';
import { mapSummary } from './antminer.ts';
import { type FirmwareProfile, modelName } from './profile.ts';

export const CGMINER: FirmwareProfile = {
  name: 'cgminer',
  label: 'cgminer and forks (generic)',
  commands: ['summary', 'devs', 'pools'],
  joined: true,
  identify: () => true,
  describe(version) {
    const v = payload(version, 'version')[0];
    const fw = v?.CGMiner ?? v?.Miner;
    return {
      ...(modelName(v?.Type, []) !== undefined && { model: modelName(v?.Type, []) }),
      ...(typeof fw === 'string' && { version: fw }),
    };
  },
  map(replies) {
    const snapshot = emptySnapshot();
    mapSummary(snapshot, replies.get('summary'));
    const chains: ChainSnapshot[] = [];
    for (const dev of payload(replies.get('devs'), 'devs')) {
      const chain: ChainSnapshot = {};
      const rate = summaryHashrateThs(dev, ['1m', '5s', 'av']);
      if (rate !== undefined) chain.hashrateThs = rate;
      const temp = toNumber(dev.Temperature ?? dev.Tenperature);
      if (temp !== undefined && temp > 0) chain.chipTempC = temp;
      const hw = toNumber(dev['Hardware Errors']);
      if (hw !== undefined) chain.hardwareErrors = hw;
      chains.push(chain);
    }
    snapshot.chains = chains;
    Object.assign(snapshot, poolCounts(replies.get('pools')));
    return snapshot;
  },
};
