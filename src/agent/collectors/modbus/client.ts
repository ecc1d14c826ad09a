/**
 * A Modbus TCP client for reading registers: one connection per poll, requests one after another
 * (meters serve one at a time), each framed with the MBAP header — transaction id, protocol 0,
 * length, unit id — and matched to its answer by transaction id.
 */
import net from 'node:net';
import { PollError } from '../collector.ts';

export const MODBUS_PORT = 502;

/** Modbus exception codes, for messages. */
const EXCEPTIONS: Record<number, string> = {
  1: 'illegal function',
  2: 'illegal data address',
  3: 'illegal data value',
  4: 'server device failure',
  5: 'acknowledge',
  6: 'server device busy',
  10: 'gateway path unavailable',
  11: 'gateway target device failed to respond',
};

/** The MBAP header and PDU of a read request (function 3 or 4). */
export function encodeReadRequest(
  transactionId: number,
  unitId: number,
  fn: 3 | 4,
  address: number,
  count: number,
): Buffer {
  const frame = Buffer.alloc(12);
  frame.writeUInt16BE(transactionId & 0xffff, 0);
  frame.writeUInt16BE(0, 2); // protocol: Modbus
  frame.writeUInt16BE(6, 4); // unit id + 5 PDU bytes
  frame.writeUInt8(unitId, 6);
  frame.writeUInt8(fn, 7);
  frame.writeUInt16BE(address, 8);
  frame.writeUInt16BE(count, 10);
  return frame;
}

interface Waiting {
  transactionId: number;
  resolve: (frame: Buffer) => void;
  reject: (error: PollError) => void;
}

export class ModbusConnection {
  readonly #socket: net.Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #waiting: Waiting | null = null;
  #nextTransaction = 1;
  #failed: PollError | null = null;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) =>
      this.#fail(
        new PollError(
          error.code === 'ECONNRESET' || error.code === 'EPIPE' ? 'reset' : 'unreachable',
          error.message,
        ),
      ),
    );
    socket.on('close', () => this.#fail(new PollError('reset', 'the meter closed the connection')));
  }

  /** Opens a connection within `timeoutMs`. */
  static open(host: string, port: number, timeoutMs: number): Promise<ModbusConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new PollError('timeout', `no connection within ${Math.round(timeoutMs)} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new ModbusConnection(socket));
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        socket.destroy();
        reject(
          new PollError(
            error.code === 'ECONNREFUSED' ? 'refused' : error.code === 'ECONNRESET' ? 'reset' : 'unreachable',
            `${error.code ?? 'error'}: ${error.message}`,
          ),
        );
      });
    });
  }

  #fail(error: PollError): void {
    this.#failed ??= error;
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.reject(error);
  }

  #onData(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    while (this.#buffer.length >= 7) {
      const length = this.#buffer.readUInt16BE(4);
      if (length < 2 || length > 254) {
        this.#fail(new PollError('malformed', `MBAP length ${length}`));
        this.#socket.destroy();
        return;
      }
      if (this.#buffer.length < 6 + length) return; // the rest of the frame is on its way
      const frame = this.#buffer.subarray(0, 6 + length);
      this.#buffer = this.#buffer.subarray(6 + length);
      const transactionId = frame.readUInt16BE(0);
      const waiting = this.#waiting;
      // An answer to an earlier request that timed out: not this one's.
      if (!waiting || waiting.transactionId !== transactionId) continue;
      this.#waiting = null;
      waiting.resolve(Buffer.from(frame));
    }
  }

  /** Reads `count` registers from `address` of `unitId`; the words as numbers 0…65535. */
  readRegisters(
    unitId: number,
    fn: 3 | 4,
    address: number,
    count: number,
    timeoutMs: number,
  ): Promise<number[]> {
    if (this.#failed) return Promise.reject(this.#failed);
    const transactionId = this.#nextTransaction++ & 0xffff;
    return new Promise<number[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting = null;
        reject(
          new PollError(
            'timeout',
            `no answer to a read of ${count} registers at ${address} within ${Math.round(timeoutMs)} ms`,
          ),
        );
      }, timeoutMs);
      this.#waiting = {
        transactionId,
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
        resolve: (frame) => {
          clearTimeout(timer);
          const function_ = frame.readUInt8(7);
          if (function_ === (fn | 0x80)) {
            const code = frame.readUInt8(8);
            reject(
              new PollError(
                'command_error',
                `exception ${code} (${EXCEPTIONS[code] ?? 'unknown'}) reading ${count} registers at ${address}`,
              ),
            );
            return;
          }
          const bytes = frame.length > 8 ? frame.readUInt8(8) : -1;
          if (function_ !== fn || bytes !== count * 2 || frame.length < 9 + bytes) {
            reject(
              new PollError(
                'malformed',
                `answer of function ${function_} with ${bytes} bytes for ${count} registers`,
              ),
            );
            return;
          }
          const words: number[] = [];
          for (let i = 0; i < count; i++) words.push(frame.readUInt16BE(9 + i * 2));
          resolve(words);
        },
      };
      this.#socket.write(encodeReadRequest(transactionId, unitId, fn, address, count));
    });
  }

  close(): void {
    this.#socket.removeAllListeners('close');
    this.#socket.destroy();
  }
}
