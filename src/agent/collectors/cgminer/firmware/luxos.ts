/**
 * LuxOS (Luxor's firmware for Antminers). Its API is bmminer's (summary, stats with the same
 * fields) plus `power`, which reports the draw the firmware estimates: `POWER[0].Watts`. The
 * `version` reply names it: `VERSION[0].LUXminer`. (Privileged commands need a `logon` session;
 * the agent only reads.)
 */
import { toNumber } from '../../values.ts';
import { emptySnapshot, payload, poolCounts } from '../reply.ts';
import { mapAntminerStats, mapSummary } from './antminer.ts';
import { type FirmwareProfile, modelName } from './profile.ts';

export const LUXOS: FirmwareProfile = {
  name: 'luxos',
  label: 'LuxOS (Luxor)',
  commands: ['summary', 'stats', 'pools', 'power'],
  joined: true,
  identify(version) {
    const v = payload(version, 'version')[0];
    return v !== undefined && 'LUXminer' in v;
  },
  describe(version) {
    const v = payload(version, 'version')[0];
    return {
      ...(modelName(v?.Type) !== undefined && { model: modelName(v?.Type) }),
      ...(typeof v?.LUXminer === 'string' && { version: v.LUXminer }),
    };
  },
  map(replies) {
    const snapshot = emptySnapshot();
    mapSummary(snapshot, replies.get('summary'));
    mapAntminerStats(snapshot, replies.get('stats'));
    const watts = toNumber(payload(replies.get('power'), 'power')[0]?.Watts);
    if (watts !== undefined && watts > 0) snapshot.powerW = watts;
    Object.assign(snapshot, poolCounts(replies.get('pools')));
    return snapshot;
  },
};
