import type { Json } from '../../values.ts';
import type { MinerSnapshot } from '../reply.ts';

/**
 * One CGMiner-family firmware: how to recognise it from its `version` reply, what to ask it, and
 * how its replies map to hashwatt's units. A new firmware is one file exporting one of these, listed
 * in ./index.ts before the generic `cgminer` profile.
 */
export interface FirmwareProfile {
  /** Stable name, used in metrics labels, discovery output and docs. */
  readonly name: string;
  /** For people: "Bitmain Antminer stock (bmminer)". */
  readonly label: string;
  /** The commands of one poll; the first (summary) is required, the others enrich the reading. */
  readonly commands: readonly string[];
  /**
   * Whether to ask all commands in one request joined with `+` (`summary+stats+pools`). Firmware
   * that refuses the join is asked one command per connection from then on.
   */
  readonly joined: boolean;
  /** Whether a `version` reply (the whole envelope) is this firmware's. */
  identify(version: Json): boolean;
  /** Model and firmware version from the `version` reply. */
  describe(version: Json): { model?: string; version?: string };
  /** The snapshot from the replies of the commands that answered (absent: failed or refused). */
  map(replies: ReadonlyMap<string, Json>): MinerSnapshot;
}

/** "Antminer S19 XP" → "S19 XP": models are named without the vendor, as hashwatt's simulators do. */
export function modelName(
  type: unknown,
  vendorPrefixes: readonly string[] = ['Antminer '],
): string | undefined {
  if (typeof type !== 'string' || type.trim() === '') return undefined;
  let model = type.trim();
  for (const prefix of vendorPrefixes) if (model.startsWith(prefix)) model = model.slice(prefix.length);
  return model.slice(0, 64);
}
