/**
 * A miner's snapshot as a reading (pure): the catalog's core metrics and extras. Hashboards and fans
 * are numbered from 0 in the order the firmware lists them, whatever its own ids (an S9's chains
 * are 6, 7, 8), and only the catalog's eight are sent.
 */
import type { ExtraMetricName } from '../../catalog/index.ts';
import type { AgentReading, ExtraValue } from '../reading.ts';
import type { MinerSnapshot } from './cgminer/reply.ts';
import { maxOf, meanOf, round } from './values.ts';

/** Hashboards and fans the catalog has columns for. */
const INDEXES = 8;

function indexed(values: readonly (number | undefined)[]): Record<string, number> | undefined {
  const out: Record<string, number> = {};
  let any = false;
  values.slice(0, INDEXES).forEach((v, i) => {
    if (v === undefined) return;
    out[String(i)] = v;
    any = true;
  });
  return any ? out : undefined;
}

/**
 * The reading for a miner that answered. Its status is `ok`, or `error` when it has pools
 * configured and none alive: it cannot submit work, whatever its hashrate says.
 */
export function minerReading(
  device: string,
  ts: number,
  snapshot: MinerSnapshot,
  options: { expectedHashrateThs?: number } = {},
): AgentReading {
  const reading: AgentReading = { device, kind: 'asic', ts, status: 'ok' };
  if (snapshot.model) reading.model = snapshot.model;
  if (snapshot.hashrateThs !== undefined) reading.hashrate_ths = round(snapshot.hashrateThs, 6);
  const expected = options.expectedHashrateThs ?? snapshot.expectedHashrateThs;
  if (expected !== undefined && expected > 0) reading.expected_hashrate_ths = round(expected, 6);
  if (snapshot.powerW !== undefined) reading.power_w = round(snapshot.powerW, 3);
  const chips = snapshot.chains.map((c) => c.chipTempC);
  const boards = snapshot.chains.map((c) => c.boardTempC);
  const hottest = maxOf([...chips, ...boards]);
  if (hottest !== undefined) reading.temp_c = round(hottest, 2);
  if (snapshot.fansRpm.length > 0) reading.fan_rpm = Math.round(meanOf(snapshot.fansRpm)!);
  if (snapshot.pools !== undefined && snapshot.pools > 0 && snapshot.poolsAlive === 0)
    reading.status = 'error';

  const extras: Partial<Record<ExtraMetricName, ExtraValue>> = {};
  const chipTemps = indexed(chips);
  if (chipTemps) extras.chip_temp_c = chipTemps;
  const boardTemps = indexed(boards);
  if (boardTemps) extras.board_temp_c = boardTemps;
  const fans = indexed(snapshot.fansRpm);
  if (fans) extras.fan_speed_rpm = fans;
  if (snapshot.sharesAccepted !== undefined) extras.shares_accepted_total = snapshot.sharesAccepted;
  if (snapshot.sharesRejected !== undefined) extras.shares_rejected_total = snapshot.sharesRejected;
  const chainErrors = indexed(snapshot.chains.map((c) => c.hardwareErrors));
  if (snapshot.hardwareErrors !== undefined || chainErrors) {
    // '' is the whole miner's count (stock firmware), the digits each hashboard's (catalog indexes).
    extras.hardware_errors_total = {
      ...(snapshot.hardwareErrors !== undefined && { '': snapshot.hardwareErrors }),
      ...chainErrors,
    };
  }
  if (snapshot.powerLimitW !== undefined) extras.power_limit_w = snapshot.powerLimitW;
  if (snapshot.inletTempC !== undefined) extras.inlet_temp_c = snapshot.inletTempC;
  if (Object.keys(extras).length > 0) reading.extras = extras;
  return reading;
}
