/**
 * One simulated ASIC answering on its firmware's real API: CGMiner-family JSON on TCP 4028 (with
 * the firmware's quirks) or Whatsminer API V3 framing on 4433. Its numbers come from the site's
 * physics (the latest tick's AsicDetail); shares accrue with its hashrate. It counts every reply it
 * serves, and logs each complete summary it served, so a test can hold what the agent stored
 * against what the miner said.
 */
import net from 'node:net';
import { ASIC_MODELS, type AsicModelName } from '../physics/asic.ts';
import type { AsicDetail } from '../physics/site.ts';
import { errorReply, FIRMWARE_RENDERERS, type MinerView, type SimFirmware } from './cgminer/firmware.ts';
import { type ReplyQuirk, writeReply } from './cgminer/quirky-json.ts';
import { listenTcp } from './listen.ts';

export type MinerApi = SimFirmware | 'whatsminer-v3';

/** How a miner misbehaves, beyond its firmware's quirks. */
export type MinerFault =
  /** Accepts connections and never answers: a wedged API thread (the agent's timeout must fire). */
  | { kind: 'hang' }
  /** Reads the command, then resets the connection (RST) instead of answering. */
  | { kind: 'reset' }
  /** Every `every`-th reply (default every one) is cut in half and the connection closed. */
  | { kind: 'truncate'; every?: number }
  /** Nothing listens: connections are refused (a miner that is off). */
  | { kind: 'dead' };

export interface MinerBehaviour {
  api: MinerApi;
  /** Quirks on top of the firmware's own. */
  quirks?: ReplyQuirk[];
  /** Leave out the firmware's own quirks (a clean reply, to test one quirk alone). */
  cleanFirmware?: boolean;
  fault?: MinerFault;
  /** The `Tenperature` spelling (generic cgminer). */
  typo?: boolean;
  /** NaN in the percentages (rendered `nan` with the non_finite quirk). */
  nonFinite?: boolean;
  /** Answers `version` with an error, as some Whatsminer V2 builds do. */
  refuseVersion?: boolean;
  /** Answers joined commands (`summary+stats`) with broken JSON instead of refusing them. */
  garbledJoin?: boolean;
}

/** One complete summary the miner served: what the agent should have read from it. */
export interface ServedSummary {
  atMs: number;
  sharesAccepted: number;
  hashrateThs: number;
  powerW?: number;
}

export interface MinerStats {
  connections: number;
  /** Complete replies served, by command (a joined request counts each command). */
  replies: Record<string, number>;
  hangs: number;
  resets: number;
  truncated: number;
}

/** Chips per hashboard by model (vendor specifications). */
const CHIPS_PER_BOARD: Record<AsicModelName, number> = {
  'S19j Pro': 126,
  'S19 XP': 110,
  S21: 108,
  'S21 Pro': 65,
  'S21 XP': 91,
  M60S: 111,
};
/** Difficulty of the simulated pool's shares: 200 TH/s finds about 5.7 a second. */
const SHARE_DIFFICULTY = 8192;
const HASHES_PER_SHARE = SHARE_DIFFICULTY * 2 ** 32;
const MAX_REQUEST_BYTES = 64 * 1024;

export interface SimulatedMinerOptions {
  device: string;
  /** Index of the ASIC in its site (noise and boot time derive from it). */
  index: number;
  model: AsicModelName;
  host: string;
  /** Default: the API's real port (4028, or 4433 for V3). */
  port?: number;
  behaviour: MinerBehaviour;
  /** Epoch ms the miner booted (its Elapsed counts from it). */
  bootMs: number;
  /** Keep the served summaries (tests); off for benchmarks of thousands of miners. */
  recordServed?: boolean;
  now?: () => number;
}

export class SimulatedMiner {
  readonly device: string;
  readonly index: number;
  readonly model: AsicModelName;
  readonly host: string;
  readonly behaviour: MinerBehaviour;
  port: number;
  readonly stats: MinerStats = { connections: 0, replies: {}, hangs: 0, resets: 0, truncated: 0 };
  readonly served: ServedSummary[] = [];
  readonly #bootMs: number;
  readonly #record: boolean;
  readonly #now: () => number;
  readonly #quirks: ReadonlySet<ReplyQuirk>;
  readonly #sockets = new Set<net.Socket>();
  #server: net.Server | null = null;
  #detail: AsicDetail | null = null;
  #inletC = 25;
  #accepted = 0;
  #rejected = 0;
  #hardwareErrors = 0;
  #shareCarry = 0;
  #lastAccrualMs: number;
  #replyCount = 0;

  constructor(options: SimulatedMinerOptions) {
    this.device = options.device;
    this.index = options.index;
    this.model = options.model;
    this.host = options.host;
    this.behaviour = options.behaviour;
    this.port = options.port ?? (options.behaviour.api === 'whatsminer-v3' ? 4433 : 4028);
    this.#bootMs = options.bootMs;
    this.#record = options.recordServed ?? true;
    this.#now = options.now ?? Date.now;
    this.#lastAccrualMs = this.#now();
    const inherent =
      options.behaviour.api === 'whatsminer-v3' || options.behaviour.cleanFirmware
        ? []
        : FIRMWARE_RENDERERS[options.behaviour.api].inherentQuirks;
    this.#quirks = new Set<ReplyQuirk>([...inherent, ...(options.behaviour.quirks ?? [])]);
    // A miner that has been running: shares found since boot.
    this.#accepted = Math.floor(((this.#now() - this.#bootMs) / 1000) * 3);
  }

  /** The physics' latest state of this ASIC. */
  update(detail: AsicDetail, inletC: number): void {
    this.#accrue();
    this.#detail = detail;
    this.#inletC = inletC;
  }

  /** Whether the physics has this ASIC silent (PSU tripped, controller lost): it answers nothing. */
  get silent(): boolean {
    return this.#detail !== null && this.#detail.sample === null;
  }

  #accrue(): void {
    const now = this.#now();
    const sample = this.#detail?.sample;
    if (sample && sample.hashrateThs > 0) {
      this.#shareCarry += (sample.hashrateThs * 1e12 * (now - this.#lastAccrualMs)) / 1000 / HASHES_PER_SHARE;
      const whole = Math.floor(this.#shareCarry);
      this.#shareCarry -= whole;
      this.#accepted += whole;
      this.#rejected += Math.floor((this.#accepted + whole) / 500) - Math.floor(this.#accepted / 500);
      this.#hardwareErrors += whole > 0 && (this.index + this.#accepted) % 97 === 0 ? 1 : 0;
    }
    this.#lastAccrualMs = now;
  }

  /** The miner now, in its firmware's terms. Each summary served advances shares by at least one while hashing. */
  view(forSummary: boolean): MinerView {
    this.#accrue();
    const now = this.#now();
    const model = ASIC_MODELS[this.model];
    const sample = this.#detail?.sample;
    const hashing = sample !== null && sample !== undefined && sample.hashrateThs > 0;
    if (forSummary && hashing) this.#accepted++;
    const hashrateThs = sample?.hashrateThs ?? 0;
    const boards = model.hashboards;
    const lost = this.#detail?.boardsLost ?? 0;
    const weights = Array.from({ length: boards }, (_, i) =>
      i >= boards - lost ? 0 : 1 + 0.01 * (((this.index * 7 + i * 3) % 5) - 2),
    );
    const weightSum = weights.reduce((a, b) => a + b, 0) || 1;
    const boardC = sample?.tempC ?? this.#inletC;
    const chains = weights.map((w, i) => ({
      rateThs: (hashrateThs * w) / weightSum,
      chipC: w === 0 ? 0 : boardC + 8 + 0.7 * i,
      boardC: w === 0 ? 0 : boardC + 0.5 * i,
      hw: Math.floor(this.#hardwareErrors / boards) + (i === 0 ? this.#hardwareErrors % boards : 0),
      chips: w === 0 ? 0 : CHIPS_PER_BOARD[this.model],
    }));
    const fanOffsets =
      this.behaviour.api === 'whatsminer' || this.behaviour.api === 'whatsminer-v3'
        ? [40, -40]
        : [30, -30, 60, -60];
    const fanRpm = sample?.fanRpm ?? 0;
    const mode = !sample
      ? 'error'
      : sample.status === 'curtailed'
        ? 'curtailed'
        : sample.status === 'ok'
          ? 'hashing'
          : 'error';
    return {
      nowS: Math.floor(now / 1000),
      elapsedS: Math.max(0, Math.floor((now - this.#bootMs) / 1000)),
      // A generic cgminer fork names the board it runs on, not a Bitmain model.
      type:
        model.vendor === 'MicroBT'
          ? `${this.model}.VK30`
          : this.behaviour.api === 'cgminer'
            ? `cgminer-${model.slug}`
            : `Antminer ${this.model}`,
      mode,
      hashrateThs,
      expectedThs: model.hashrateThs,
      powerW: sample?.powerW ?? 0,
      powerLimitW: Math.round(model.powerW * 1.05),
      chains,
      fansRpm: fanOffsets.map((o) => Math.max(0, fanRpm + (fanRpm > 0 ? o : 0))),
      inletC: this.#inletC,
      accepted: this.#accepted,
      rejected: this.#rejected,
      hardwareErrors: this.#hardwareErrors,
      poolAlive: true,
      typo: this.behaviour.typo ?? false,
      nonFinite: this.behaviour.nonFinite ?? false,
    };
  }

  /** Starts answering on host:port (a dead miner listens nowhere). */
  async listen(): Promise<void> {
    if (this.behaviour.fault?.kind === 'dead') return;
    const server = net.createServer((socket) => this.#serve(socket));
    server.maxConnections = 64;
    this.port = await listenTcp(server, this.host, this.port);
    this.#server = server;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    const server = this.#server;
    this.#server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #serve(socket: net.Socket): void {
    this.stats.connections++;
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    // A miner whose controller is gone, or whose API thread is wedged: the connection stays open, silent.
    if (this.silent || this.behaviour.fault?.kind === 'hang') {
      this.stats.hangs++;
      socket.setTimeout(120_000, () => socket.destroy());
      socket.resume();
      return;
    }
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length > MAX_REQUEST_BYTES) {
        socket.destroy();
        return;
      }
      const request =
        this.behaviour.api === 'whatsminer-v3' ? readV3Request(received) : readCgminerRequest(received);
      if (request === undefined) return; // more to come
      socket.off('data', onData);
      this.#answer(socket, request);
    };
    socket.on('data', onData);
  }

  #answer(socket: net.Socket, request: Request | null): void {
    if (this.behaviour.fault?.kind === 'reset') {
      this.stats.resets++;
      socket.resetAndDestroy();
      return;
    }
    const { bytes, commands, summary, poolsShares } =
      this.behaviour.api === 'whatsminer-v3' ? this.#renderV3(request) : this.#renderCgminer(request);
    this.#replyCount++;
    const truncate =
      this.behaviour.fault?.kind === 'truncate' && this.#replyCount % (this.behaviour.fault.every ?? 1) === 0;
    if (truncate) {
      this.stats.truncated++;
      socket.end(bytes.subarray(0, Math.floor(bytes.length / 2)));
      return;
    }
    socket.end(bytes, () => {
      // Counted once the whole reply is handed to the kernel: a reply cut off is not "served".
      for (const c of commands) this.stats.replies[c] = (this.stats.replies[c] ?? 0) + 1;
      if (summary && this.#record) this.served.push(summary);
      // V3 gives shares in `pools`, asked after `summary`: what the agent reads is the pools figure.
      const last = this.served.at(-1);
      if (poolsShares !== undefined && last) last.sharesAccepted = poolsShares;
    });
  }

  #renderCgminer(request: Request | null): Rendered {
    const api = this.behaviour.api as SimFirmware;
    const firmware = FIRMWARE_RENDERERS[api];
    const withoutNul = new Set([...this.#quirks].filter((q) => q !== 'nul'));
    const nul = this.#quirks.has('nul') ? '\0' : '';
    const names = request?.command.split('+').map((c) => c.trim()) ?? [];
    const wantsSummary = names.includes('summary');
    const view = this.view(wantsSummary);
    const known = names.length > 0 && names.every((c) => c in firmware.commands);
    let text: string;
    let served: string[] = [];
    if (names.length > 1 && this.behaviour.garbledJoin) {
      text = `{"summary":[{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"GHS 5s":1]]}]${nul}`;
    } else if (
      !known ||
      (names.length > 1 && !firmware.joined) ||
      (names[0] === 'version' && this.behaviour.refuseVersion)
    ) {
      text = writeReply(errorReply(view, firmware.description, firmware.errorStyle), withoutNul) + nul;
    } else if (names.length === 1) {
      text = writeReply(firmware.commands[names[0]!]!(view), withoutNul) + nul;
      served = names;
    } else {
      // Joined: each command's whole envelope in an array under its name.
      const parts = names.map(
        (c) => `${JSON.stringify(c)}:[${writeReply(firmware.commands[c]!(view), withoutNul)}]`,
      );
      text = `{${parts.join(',')},"id":1}${nul}`;
      served = names;
    }
    const reported = firmware.reported(view);
    const summary = served.includes('summary')
      ? {
          atMs: this.#now(),
          sharesAccepted: view.accepted,
          hashrateThs: reported.hashrateThs,
          ...(reported.powerW !== undefined && { powerW: reported.powerW }),
        }
      : null;
    return { bytes: Buffer.from(text, 'utf8'), commands: served, summary };
  }

  #renderV3(request: Request | null): Rendered {
    const cmd = request?.command ?? '';
    const param = typeof request?.parameter === 'string' ? request.parameter : '';
    const isSummary = cmd === 'get.miner.status' && param === 'summary';
    const view = this.view(isSummary);
    const when = view.nowS;
    let body: Record<string, unknown>;
    let name = '';
    const ths = (n: number) => Number(n.toFixed(2));
    if (cmd === 'get.device.info') {
      name = 'get.device.info';
      body = {
        code: 0,
        when,
        msg: {
          network: {
            ip: this.host,
            mac: `C4:10:${(this.index >> 8) & 255}:${this.index & 255}:AA:01`,
            hostname: `WhatsMiner-${this.index}`,
          },
          miner: { type: view.type, working: 'true', 'hash-board': 'HB-K88Z', pcbsn0: 'HEM3B1000' },
          system: {
            api: '3.0.1',
            platform: 'H616',
            fwversion: '20241107.22.REL',
            'control-board-version': 'CB6V10',
          },
          power: { type: 'P21', mode: 'normal', 'hw-version': 'V1.2' },
        },
        desc: 'get.device.info',
      };
    } else if (cmd === 'get.miner.status' && param === 'summary') {
      name = 'summary';
      body = {
        code: 0,
        when,
        msg: {
          summary: {
            elapsed: view.elapsedS,
            'bootup-time': view.nowS - view.elapsedS,
            'freq-avg': 611,
            'target-freq': 611,
            'factory-hash': ths(view.expectedThs),
            'hash-average': ths(view.hashrateThs),
            'hash-realtime': ths(view.hashrateThs),
            'hash-percent': ths((100 * view.hashrateThs) / view.expectedThs),
            'power-limit': view.powerLimitW,
            'power-realtime': Math.round(view.powerW),
            'power-rate': ths(view.powerW / Math.max(0.01, view.hashrateThs)),
            'environment-temperature': ths(view.inletC),
            'chip-temp-min': ths(Math.min(...view.chains.map((c) => c.chipC - 6))),
            'chip-temp-avg': ths(Math.max(...view.chains.map((c) => c.chipC - 3))),
            'chip-temp-max': ths(Math.max(...view.chains.map((c) => c.chipC))),
            'fan-speed-in': view.fansRpm[0] ?? 0,
            'fan-speed-out': view.fansRpm[1] ?? 0,
            'up-freq-finish': 1,
          },
        },
        desc: 'get.miner.status',
      };
    } else if (cmd === 'get.miner.status' && param === 'edevs') {
      name = 'edevs';
      body = {
        code: 0,
        when,
        msg: {
          edevs: view.chains.map((c, i) => ({
            id: i,
            slot: i,
            'hash-average': ths(c.rateThs),
            'factory-hash': ths(view.expectedThs / view.chains.length),
            'chip-temp-min': ths(c.chipC - 6),
            'chip-temp-avg': ths(c.chipC - 3),
            'chip-temp-max': ths(c.chipC),
            'pcb-temperature': ths(c.boardC),
            'effective-chips': c.chips,
            freq: 611,
          })),
        },
        desc: 'get.miner.status',
      };
    } else if (cmd === 'get.miner.status' && param === 'pools') {
      name = 'pools';
      body = {
        code: 0,
        when,
        msg: {
          pools: [
            {
              id: 1,
              url: 'stratum+tcp://btc.pool.example:3333',
              status: 'alive',
              account: 'hashwatt.worker1',
              accepted: view.accepted,
              rejected: view.rejected,
              stale: 0,
            },
            {
              id: 2,
              url: 'stratum+tcp://backup.pool.example:3333',
              status: 'alive',
              account: 'hashwatt.backup',
              accepted: 0,
              rejected: 0,
              stale: 0,
            },
          ],
        },
        desc: 'get.miner.status',
      };
    } else {
      body = { code: -4, when, msg: 'invalid command', desc: cmd };
    }
    const json = Buffer.from(JSON.stringify(body), 'utf8');
    const bytes = Buffer.allocUnsafe(4 + json.length);
    bytes.writeUInt32LE(json.length, 0);
    json.copy(bytes, 4);
    const summary = isSummary
      ? {
          atMs: this.#now(),
          sharesAccepted: view.accepted,
          hashrateThs: ths(view.hashrateThs),
          powerW: Math.round(view.powerW),
        }
      : null;
    return {
      bytes,
      commands: name ? [name] : [],
      summary,
      ...(name === 'pools' && { poolsShares: view.accepted }),
    };
  }
}

interface Rendered {
  bytes: Buffer;
  commands: string[];
  summary: ServedSummary | null;
  /** V3 pools: the shares it served. */
  poolsShares?: number;
}

interface Request {
  command: string;
  parameter?: unknown;
}

/**
 * A CGMiner API request: a JSON object `{"command":…,"parameter":…}` (undefined until it is
 * complete), or the old text form `summary|param`; null when it is neither.
 */
function readCgminerRequest(bytes: Buffer): Request | null | undefined {
  const text = bytes.toString('utf8').replace(/\0+$/, '').trim();
  if (text.startsWith('{')) {
    try {
      const json = JSON.parse(text) as { command?: unknown; parameter?: unknown };
      return typeof json.command === 'string' ? { command: json.command, parameter: json.parameter } : null;
    } catch {
      return undefined;
    }
  }
  if (text.includes('|') || /^[a-z+]+$/.test(text)) {
    const [command, parameter] = text.split('|');
    return { command: command!, ...(parameter !== undefined && { parameter }) };
  }
  return text.length > 0 ? null : undefined;
}

/** A V3 request: the 4-byte length and JSON `{"cmd":…,"param":…}`; undefined until complete. */
function readV3Request(bytes: Buffer): Request | null | undefined {
  if (bytes.length < 4) return undefined;
  const length = bytes.readUInt32LE(0);
  if (length > MAX_REQUEST_BYTES) return null;
  if (bytes.length < 4 + length) return undefined;
  try {
    const json = JSON.parse(bytes.subarray(4, 4 + length).toString('utf8')) as {
      cmd?: unknown;
      param?: unknown;
    };
    return typeof json.cmd === 'string' ? { command: json.cmd, parameter: json.param } : null;
  } catch {
    return null;
  }
}
