/** The CGMiner-family firmware the agent knows, in the order `version` replies are matched. */
import type { Json } from '../../values.ts';
import { ANTMINER } from './antminer.ts';
import { BRAIINS } from './braiins.ts';
import { CGMINER } from './cgminer.ts';
import { LUXOS } from './luxos.ts';
import type { FirmwareProfile } from './profile.ts';
import { WHATSMINER } from './whatsminer.ts';

export type { FirmwareProfile } from './profile.ts';

/** Specific firmware first; the generic cgminer profile last, matching anything. */
export const FIRMWARE_PROFILES: readonly FirmwareProfile[] = [BRAIINS, LUXOS, WHATSMINER, ANTMINER, CGMINER];

/** The profile whose `version` reply this is; the generic one when none claims it. */
export function identifyFirmware(version: Json | undefined): FirmwareProfile {
  if (!version) return CGMINER;
  return FIRMWARE_PROFILES.find((p) => p.identify(version)) ?? CGMINER;
}

export { ANTMINER, BRAIINS, CGMINER, LUXOS, WHATSMINER };
