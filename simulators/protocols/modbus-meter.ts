/**
 * A simulated site meter answering Modbus TCP (function 3, read holding registers, and 4, read
 * input registers) with the register layout of a real model, written from its manual: Eastron
 * SDM630 (input registers, float32) or Schneider PM5560 (holding registers, float32 kW, int64 Wh).
 * The same server can answer a second unit id as a grid-signal controller holding the site's
 * allowed power (u32 kW at holding register 100), as a PLC behind a gateway would. Power and
 * energy follow the site's physics. Each request is counted; each read that carried the power
 * register is logged, so a test can hold the readings stored against the replies served.
 */
import net from 'node:net';
import { listenTcp } from './listen.ts';

export const SIM_METER_MODELS = ['eastron-sdm630', 'schneider-pm5560'] as const;
export type SimMeterModel = (typeof SIM_METER_MODELS)[number];

export type MeterFault =
  /** Accepts and never answers. */
  | { kind: 'hang' }
  /** Resets the connection on the first request. */
  | { kind: 'reset' }
  /** Answers every request with this exception code (4: server device failure, 6: busy). */
  | { kind: 'exception'; code: number }
  /** Writes each answer in two TCP segments, split inside the MBAP header. */
  | { kind: 'split' };

export interface ServedMeterRead {
  atMs: number;
  /** The power the register held, in W, as the encoding rounds it. */
  powerW: number;
}

export interface SimulatedMeterOptions {
  host: string;
  port?: number;
  unitId?: number;
  model: SimMeterModel;
  /** Also answer this unit id as a grid-signal controller. */
  signalUnitId?: number;
  fault?: MeterFault;
  recordServed?: boolean;
  now?: () => number;
}

type Registers = Map<number, number>;

function putF32(regs: Registers, address: number, value: number): void {
  const b = Buffer.alloc(4);
  b.writeFloatBE(value, 0);
  regs.set(address, b.readUInt16BE(0));
  regs.set(address + 1, b.readUInt16BE(2));
}

function putI64(regs: Registers, address: number, value: number): void {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(Math.round(value)), 0);
  for (let i = 0; i < 4; i++) regs.set(address + i, b.readUInt16BE(i * 2));
}

function putU32(regs: Registers, address: number, value: number): void {
  const v = Math.max(0, Math.min(0xffffffff, Math.round(value)));
  regs.set(address, Math.floor(v / 65536));
  regs.set(address + 1, v % 65536);
}

export class SimulatedMeter {
  readonly host: string;
  readonly model: SimMeterModel;
  readonly unitId: number;
  readonly signalUnitId: number | undefined;
  readonly fault: MeterFault | undefined;
  port: number;
  readonly stats = { connections: 0, requests: 0, exceptions: 0 };
  readonly served: ServedMeterRead[] = [];
  readonly #record: boolean;
  readonly #now: () => number;
  readonly #sockets = new Set<net.Socket>();
  #server: net.Server | null = null;
  #powerW = 0;
  #availableW = 0;
  #energyJ = 0;
  #lastMs: number;

  constructor(options: SimulatedMeterOptions) {
    this.host = options.host;
    this.model = options.model;
    this.unitId = options.unitId ?? 1;
    this.signalUnitId = options.signalUnitId;
    this.fault = options.fault;
    this.port = options.port ?? 502;
    this.#record = options.recordServed ?? true;
    this.#now = options.now ?? Date.now;
    this.#lastMs = this.#now();
    // A meter that has been in service: some years of a few MW.
    this.#energyJ = 4.2e13;
  }

  /** The site's facility power and allowance now (the physics' meter). */
  update(powerW: number, availableW: number): void {
    this.#accrue();
    this.#powerW = powerW;
    this.#availableW = availableW;
  }

  #accrue(): void {
    const now = this.#now();
    this.#energyJ += (this.#powerW * (now - this.#lastMs)) / 1000;
    this.#lastMs = now;
  }

  /** The power the meter reports, as its encoding holds it. */
  reportedPowerW(): number {
    return this.model === 'schneider-pm5560'
      ? Math.fround(this.#powerW / 1000) * 1000
      : Math.fround(this.#powerW);
  }

  #meterRegisters(fn: number): Registers | null {
    this.#accrue();
    const regs: Registers = new Map();
    if (this.model === 'eastron-sdm630') {
      if (fn !== 4) return null;
      putF32(regs, 0, 231.2); // phase 1 line to neutral volts
      putF32(regs, 2, 230.7);
      putF32(regs, 4, 232.0);
      putF32(regs, 52, this.#powerW); // total system power, W
      putF32(regs, 70, 50.0); // frequency
      putF32(regs, 72, this.#energyJ / 3.6e6); // total import kWh
      putF32(regs, 342, this.#energyJ / 3.6e6); // total kWh
      return regs;
    }
    if (fn !== 3) return null;
    putF32(regs, 3027, 398.4); // voltage L-L average
    putF32(regs, 3059, this.#powerW / 1000); // active power total, kW
    putF32(regs, 3109, 50.0); // frequency
    putI64(regs, 3203, this.#energyJ / 3600); // active energy delivered, Wh
    return regs;
  }

  /** The registers of a unit and function, and the address range it answers (others: exception 2). */
  #image(unit: number, fn: number): { regs: Registers; from: number; to: number } | null {
    if (unit === this.signalUnitId) {
      if (fn !== 3) return null;
      const regs: Registers = new Map();
      putU32(regs, 100, this.#availableW / 1000);
      return { regs, from: 100, to: 102 };
    }
    if (unit !== this.unitId) return null;
    const regs = this.#meterRegisters(fn);
    if (!regs) return null;
    return this.model === 'eastron-sdm630' ? { regs, from: 0, to: 400 } : { regs, from: 3000, to: 3300 };
  }

  async listen(): Promise<void> {
    const server = net.createServer((socket) => this.#serve(socket));
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
    let buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.length >= 7) {
        const length = buffer.readUInt16BE(4);
        if (buffer.length < 6 + length) return;
        const frame = buffer.subarray(0, 6 + length);
        buffer = buffer.subarray(6 + length);
        this.#request(socket, frame);
      }
    });
  }

  #request(socket: net.Socket, frame: Buffer): void {
    this.stats.requests++;
    if (this.fault?.kind === 'hang') return;
    if (this.fault?.kind === 'reset') {
      socket.resetAndDestroy();
      return;
    }
    const tid = frame.readUInt16BE(0);
    const unit = frame.readUInt8(6);
    const fn = frame.readUInt8(7);
    const answer = (pdu: Buffer) => {
      const out = Buffer.alloc(7 + pdu.length);
      out.writeUInt16BE(tid, 0);
      out.writeUInt16BE(0, 2);
      out.writeUInt16BE(1 + pdu.length, 4);
      out.writeUInt8(unit, 6);
      pdu.copy(out, 7);
      if (this.fault?.kind === 'split') {
        socket.write(out.subarray(0, 5));
        setImmediate(() => socket.write(out.subarray(5)));
      } else socket.write(out);
    };
    const exception = (code: number): void => {
      this.stats.exceptions++;
      answer(Buffer.from([fn | 0x80, code]));
    };
    const address = frame.readUInt16BE(8);
    const count = frame.readUInt16BE(10);
    const image = fn === 3 || fn === 4 ? this.#image(unit, fn) : null;
    let refusal: number | null = null;
    if (this.fault?.kind === 'exception') refusal = this.fault.code;
    else if (fn !== 3 && fn !== 4) refusal = 1;
    else if (count < 1 || count > 125) refusal = 3;
    // A gateway with nothing at that unit id answers 11 (target failed to respond).
    else if (!image) refusal = unit === this.unitId || unit === this.signalUnitId ? 1 : 11;
    else if (address < image.from || address + count > image.to) refusal = 2;
    if (refusal !== null || !image) {
      exception(refusal ?? 4);
      return;
    }
    const pdu = Buffer.alloc(2 + count * 2);
    pdu.writeUInt8(fn, 0);
    pdu.writeUInt8(count * 2, 1);
    for (let i = 0; i < count; i++) pdu.writeUInt16BE(image.regs.get(address + i) ?? 0, 2 + i * 2);
    const powerAt = this.model === 'eastron-sdm630' ? 52 : 3059;
    if (unit === this.unitId && this.#record && address <= powerAt && address + count >= powerAt + 2)
      this.served.push({ atMs: this.#now(), powerW: this.reportedPowerW() });
    answer(pdu);
  }
}
