/**
 * The one interface every collector implements. A collector knows one way of reading devices (a
 * miner API, Modbus TCP, nvidia-smi, a DCGM exporter); the poller owns the schedule, timeouts,
 * offline readings and delivery. A new protocol is one file implementing `Collector`; a new
 * CGMiner-family firmware is one file in cgminer/firmware/.
 */
import type { DeviceKind } from '../../catalog/index.ts';
import type { AgentReading } from '../reading.ts';
import type { RegisterMap, RegisterSpec } from './modbus/registers.ts';

/** Why a device could not be read: stable codes for metrics and logs. */
export type PollFailureCode =
  /** Nothing listens (TCP RST on connect): the miner's API is down or the miner is off. */
  | 'refused'
  /** No route, host down, name not found. */
  | 'unreachable'
  /** No connection or no complete answer within the target's timeout (a hung miner). */
  | 'timeout'
  /** The device reset the connection while answering. */
  | 'reset'
  /** The answer stopped part way (connection closed before the reply was complete). */
  | 'truncated'
  /** The answer could not be read even after the usual repairs. */
  | 'malformed'
  /** The answer was larger than any real one. */
  | 'too_large'
  /** The device answered with an error for the command (CGMiner STATUS E, Modbus exception). */
  | 'command_error'
  /** A local command (nvidia-smi) failed to run or exited with an error and no data. */
  | 'exit_status'
  /** An HTTP exporter answered with a non-2xx status. */
  | 'http_status';

/** A device that could not be read, and why. */
export class PollError extends Error {
  override name = 'PollError';
  readonly code: PollFailureCode;
  constructor(code: PollFailureCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** What a collector learned about the device besides its readings (firmware, model): for discovery and health. */
export interface DeviceIdentity {
  firmware: string;
  model?: string;
  version?: string;
}

export interface PollResult {
  readings: AgentReading[];
  /** Problems that did not stop the poll (one command's reply unreadable, a value repaired). */
  problems: string[];
  /** Repairs applied to malformed replies (`trailing_comma`, `missing_comma`…), for health metrics. */
  repairs: string[];
  identity?: DeviceIdentity;
}

export interface PollContext {
  /** Epoch ms: the instant readings are stamped with. */
  readonly ts: number;
  /** Time budget for the whole poll (all its commands). */
  readonly timeoutMs: number;
  /** Time to open one connection; shorter than the poll's, so dead hosts fail fast. */
  readonly connectTimeoutMs: number;
}

/** A miner on a CGMiner-family API (TCP 4028) or the Whatsminer API V3 (TCP 4433). */
export interface MinerTarget {
  readonly type: 'miner';
  readonly id: string;
  readonly api: 'cgminer' | 'whatsminer-v3' | 'auto';
  readonly host: string;
  /** Absent: the API's own port (4028, 4433). */
  readonly port?: number;
  readonly device: string;
  /** Nameplate hashrate from the config, for firmware that reports none. */
  readonly expectedHashrateThs?: number;
}

/** A meter or PDU on Modbus TCP. */
export interface MeterTarget {
  readonly type: 'meter';
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly unitId: number;
  readonly device: string;
  readonly kind: Extract<DeviceKind, 'meter' | 'pdu'>;
  readonly model: string;
  readonly map: RegisterMap;
  /** The site's contract or allowance, configured: carried as available_power_w. */
  readonly availablePowerW?: number;
  /** ...or read from a register (the grid operator's curtailment signal), on this or another unit. */
  readonly availablePowerRegister?: RegisterSpec & { readonly unitId?: number };
}

/** A GPU server read through nvidia-smi (a local command, or one run over ssh) or a DCGM exporter. */
export interface GpuTarget {
  readonly type: 'gpu';
  readonly id: string;
  readonly source: 'nvidia-smi' | 'dcgm';
  /** Device names: `{name}/gpu{index}`. */
  readonly name: string;
  /** dcgm: the exporter's metrics URL. */
  readonly url?: string;
  /** nvidia-smi: the command and its leading arguments (the query arguments are appended). */
  readonly command?: readonly string[];
}

export type Target = MinerTarget | MeterTarget | GpuTarget;

/** The devices a target reports before it has been read once: what an offline reading names. */
export function configuredDevices(target: Target): { device: string; kind: DeviceKind }[] {
  switch (target.type) {
    case 'miner':
      return [{ device: target.device, kind: 'asic' }];
    case 'meter':
      return [{ device: target.device, kind: target.kind }];
    case 'gpu':
      // GPUs are named by the host's own answer; before the first one there is nothing to name.
      return [];
  }
}

export interface Collector<T extends Target = Target> {
  /** Reads the target once. Throws PollError when nothing could be read. */
  poll(target: T, context: PollContext): Promise<PollResult>;
}
