/**
 * The CGMiner-family API collector (TCP 4028): Antminer stock, Braiins OS, LuxOS, Whatsminer V2
 * and generic cgminer forks. One JSON command per connection (the miner answers and closes); the
 * firmware is identified from `version` once and again every so often (a miner may be reflashed),
 * then each poll asks its profile's commands, joined with `+` where the firmware takes it.
 */
import type { Collector, DeviceIdentity, MinerTarget, PollContext, PollResult } from '../collector.ts';
import { PollError } from '../collector.ts';
import { minerReading } from '../miner-reading.ts';
import { exchange } from '../tcp.ts';
import { asObject, type Json } from '../values.ts';
import { CGMINER, type FirmwareProfile, identifyFirmware, WHATSMINER } from './firmware/index.ts';
import { parseCgminerReply, type Repair, ReplyCompletion } from './repair.ts';
import { isErrorReply, payload, replyStatus, splitJoinedReply } from './reply.ts';

export const CGMINER_PORT = 4028;
/** The largest reply any firmware writes is a few tens of KiB (Antminer stats with per-chip strings). */
const MAX_REPLY_BYTES = 1024 * 1024;
/** Polls between two `version` calls: a reflashed miner is noticed within about this many polls. */
const REIDENTIFY_EVERY = 360;
/** Never start a command with less time than this left: it could not finish. */
const MIN_COMMAND_MS = 50;

export interface CgminerReply {
  value: Json;
  repairs: Repair[];
}

/**
 * Sends one command and reads its reply, repaired. Throws PollError: the connection's failures,
 * `truncated` for a reply cut short, `malformed` for one no repair could read.
 */
export async function sendCgminerCommand(
  host: string,
  port: number,
  command: string,
  options: { timeoutMs: number; connectTimeoutMs: number; parameter?: string },
): Promise<CgminerReply> {
  const completion = new ReplyCompletion();
  const { data } = await exchange({
    host,
    port,
    request: JSON.stringify(
      options.parameter === undefined ? { command } : { command, parameter: options.parameter },
    ),
    timeoutMs: options.timeoutMs,
    connectTimeoutMs: options.connectTimeoutMs,
    maxBytes: MAX_REPLY_BYTES,
    isComplete: (chunk) => completion.feed(chunk),
  });
  const parsed = parseCgminerReply(data.toString('utf8'));
  if (!parsed.ok) {
    const code = parsed.reason === 'malformed' ? 'malformed' : 'truncated';
    throw new PollError(code, `${command}: ${parsed.message}`);
  }
  const value = asObject(parsed.value);
  if (!value) throw new PollError('malformed', `${command}: the reply is not a JSON object`);
  return { value, repairs: parsed.repairs };
}

interface MinerState {
  profile: FirmwareProfile;
  identity: DeviceIdentity;
  /** Whether the firmware took joined commands; undefined until tried. */
  joined: boolean | undefined;
  polls: number;
}

export class CgminerCollector implements Collector<MinerTarget> {
  readonly #state = new Map<string, MinerState>();

  /** What was learned of a miner: its firmware and model (for discovery and health). */
  identity(targetId: string): DeviceIdentity | undefined {
    return this.#state.get(targetId)?.identity;
  }

  /** Forgets a miner's firmware (after it went offline: it may come back reflashed). */
  forget(targetId: string): void {
    this.#state.delete(targetId);
  }

  async poll(target: MinerTarget, context: PollContext): Promise<PollResult> {
    const deadline = performance.now() + context.timeoutMs;
    const port = target.port ?? CGMINER_PORT;
    const repairs: string[] = [];
    const problems: string[] = [];
    const send = async (command: string): Promise<Json> => {
      const left = deadline - performance.now();
      if (left < MIN_COMMAND_MS) throw new PollError('timeout', `no time left for ${command}`);
      let reply: CgminerReply;
      try {
        reply = await sendCgminerCommand(target.host, port, command, {
          timeoutMs: left,
          connectTimeoutMs: Math.min(context.connectTimeoutMs, left),
        });
      } catch (error) {
        // A reply cut short is often the API thread being busy: one more try, if there is time.
        if (!(error instanceof PollError) || (error.code !== 'truncated' && error.code !== 'malformed'))
          throw error;
        const again = deadline - performance.now();
        if (again < Math.max(MIN_COMMAND_MS, context.timeoutMs / 3)) throw error;
        problems.push(`${command}: ${error.code}, asked again`);
        reply = await sendCgminerCommand(target.host, port, command, {
          timeoutMs: again,
          connectTimeoutMs: Math.min(context.connectTimeoutMs, again),
        });
      }
      repairs.push(...reply.repairs);
      return reply.value;
    };

    let state = this.#state.get(target.id);
    if (!state || state.polls % REIDENTIFY_EVERY === REIDENTIFY_EVERY - 1) {
      const version = await send('version');
      // Firmware without `version` answers an error; it is then read as generic cgminer.
      const profile = identifyFirmware(isErrorReply(version) ? undefined : version);
      const described = isErrorReply(version) ? {} : profile.describe(version);
      state = {
        profile,
        identity: { firmware: profile.name, ...described },
        joined: state?.profile === profile ? state.joined : undefined,
        polls: state?.polls ?? 0,
      };
      this.#state.set(target.id, state);
    }
    state.polls++;
    const { profile } = state;
    const [required] = profile.commands;

    let replies = new Map<string, Json>();
    if (profile.joined && state.joined !== false && profile.commands.length > 1) {
      let joined: Json | null = null;
      try {
        joined = await send(profile.commands.join('+'));
      } catch (error) {
        // Some builds answer a join with garbage: that is a refusal, not a dead miner.
        if (!(error instanceof PollError) || (error.code !== 'malformed' && error.code !== 'truncated'))
          throw error;
        problems.push(`joined commands: ${error.code}; asked one by one from now on`);
      }
      const split =
        joined === null || isErrorReply(joined) ? null : splitJoinedReply(joined, profile.commands);
      if (split?.has(required!)) {
        replies = split;
        state.joined = true;
      } else state.joined = false;
    }
    if (replies.size === 0) {
      for (const command of profile.commands) {
        try {
          replies.set(command, await send(command));
        } catch (error) {
          // The required command failing fails the poll; the others only thin the reading.
          if (command === required) throw error;
          problems.push(`${command}: ${(error as Error).message}`);
        }
      }
    }
    for (const [command, reply] of replies) {
      if (!isErrorReply(reply)) continue;
      replies.delete(command);
      const status = replyStatus(reply);
      if (command === required)
        throw new PollError('command_error', `${command}: ${status.message ?? `STATUS ${status.status}`}`);
      problems.push(`${command}: ${status.message ?? 'error'}`);
    }

    // Whatsminer V2 builds that refuse `version` are read as generic cgminer until their summary
    // shows what they are (`Factory GHS`, `Power Limit`): from the next poll on, their own profile.
    const summary = payload(replies.get(required!), required!)[0];
    if (profile === CGMINER && summary && ('Factory GHS' in summary || 'Power Limit' in summary)) {
      state.profile = WHATSMINER;
      state.identity = { ...state.identity, firmware: WHATSMINER.name };
      state.joined = false;
    }
    const snapshot = profile.map(replies);
    if (snapshot.model === undefined && state.identity.model !== undefined)
      snapshot.model = state.identity.model;
    if (snapshot.model !== undefined) state.identity.model = snapshot.model;
    const reading = minerReading(target.device, context.ts, snapshot, {
      ...(target.expectedHashrateThs !== undefined && { expectedHashrateThs: target.expectedHashrateThs }),
    });
    return { readings: [reading], problems, repairs, identity: state.identity };
  }
}
