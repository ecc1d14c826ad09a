/**
 * Braiins OS / Braiins OS+ (bosminer). Its CGMiner API on 4028 answers:
 * - summary: `MHS 1m`, `MHS 5s`, `MHS av` (MH/s), `Accepted`, `Rejected`, `Hardware Errors`, `Elapsed`;
 * - devs: one entry per hashboard, `MHS 1m`/`MHS 5s`, `Hardware Errors`;
 * - temps: `TEMPS[i]` with `Board` and `Chip` (°C) per hashboard;
 * - fans: `FANS[i]` with `RPM` and `Speed` (%);
 * - tunerstatus: `ApproximateMinerPowerConsumption` (W, the autotuner's estimate) and `PowerLimit`;
 * - devdetails: `Model` ("Antminer S19j Pro"), `Chips` per hashboard.
 * `version` names it with `BOSminer` (or `BOSer` on the newer stack). Braiins also serves gRPC on
 * 50051 and Prometheus `/metrics` on 8081 (remote_write from a local Prometheus maps those).
 */
import { toNumber } from '../../values.ts';
import { type ChainSnapshot, emptySnapshot, payload, poolCounts, summaryHashrateThs } from '../reply.ts';
import { mapSummary } from './antminer.ts';
import { type FirmwareProfile, modelName } from './profile.ts';

export const BRAIINS: FirmwareProfile = {
  name: 'braiins',
  label: 'Braiins OS (bosminer)',
  commands: ['summary', 'devs', 'temps', 'fans', 'tunerstatus', 'pools', 'devdetails'],
  joined: true,
  identify(version) {
    const v = payload(version, 'version')[0];
    if (!v) return false;
    return 'BOSminer' in v || 'BOSer' in v || /bosminer/i.test(String(v.Miner ?? ''));
  },
  describe(version) {
    const v = payload(version, 'version')[0];
    const fw = v?.BOSminer ?? v?.BOSer;
    return {
      ...(modelName(v?.Type) !== undefined && { model: modelName(v?.Type) }),
      ...(typeof fw === 'string' && { version: fw }),
    };
  },
  map(replies) {
    const snapshot = emptySnapshot();
    mapSummary(snapshot, replies.get('summary'));
    const devs = payload(replies.get('devs'), 'devs');
    const temps = payload(replies.get('temps'), 'temps');
    const details = payload(replies.get('devdetails'), 'devdetails');
    const boards = Math.max(devs.length, temps.length, details.length);
    const chains: ChainSnapshot[] = [];
    for (let i = 0; i < boards; i++) {
      const chain: ChainSnapshot = {};
      const dev = devs[i];
      const rate = summaryHashrateThs(dev, ['1m', '5s', 'av']);
      if (rate !== undefined) chain.hashrateThs = rate;
      const hw = toNumber(dev?.['Hardware Errors']);
      if (hw !== undefined) chain.hardwareErrors = hw;
      const chip = toNumber(temps[i]?.Chip);
      if (chip !== undefined && chip > 0) chain.chipTempC = chip;
      const board = toNumber(temps[i]?.Board);
      if (board !== undefined && board > 0) chain.boardTempC = board;
      const chips = toNumber(details[i]?.Chips);
      if (chips !== undefined) chain.chips = chips;
      chains.push(chain);
    }
    snapshot.chains = chains;
    snapshot.fansRpm = payload(replies.get('fans'), 'fans')
      .map((f) => toNumber(f.RPM))
      .filter((v): v is number => v !== undefined);
    const tuner = payload(replies.get('tunerstatus'), 'tunerstatus')[0];
    const power = toNumber(tuner?.ApproximateMinerPowerConsumption);
    if (power !== undefined && power > 0) snapshot.powerW = power;
    const limit = toNumber(tuner?.PowerLimit);
    if (limit !== undefined && limit > 0) snapshot.powerLimitW = limit;
    const model = modelName(details[0]?.Model);
    if (model !== undefined) snapshot.model = model;
    Object.assign(snapshot, poolCounts(replies.get('pools')));
    // Chains listed with nothing known are slots, not boards.
    snapshot.chains = snapshot.chains.filter((c) => Object.keys(c).length > 0);
    return snapshot;
  },
};
