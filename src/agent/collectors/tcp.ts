import net from 'node:net';
import { PollError, type PollFailureCode } from './collector.ts';

export interface ExchangeOptions {
  host: string;
  port: number;
  request: Uint8Array | string;
  /** Until the whole answer is in. */
  timeoutMs: number;
  /** Until the connection is open; never more than timeoutMs. */
  connectTimeoutMs: number;
  /** Answers larger than this are refused (`too_large`): no real reply is near it. */
  maxBytes: number;
  /** Called with each chunk as it arrives; true when the answer is complete. */
  isComplete: (chunk: Buffer, received: Buffer[]) => boolean;
}

export interface ExchangeResult {
  data: Buffer;
  /** The device closed the connection (rather than the answer being recognised as complete). */
  closedByPeer: boolean;
}

function failureCode(error: NodeJS.ErrnoException): PollFailureCode {
  switch (error.code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
    case 'ETIMEDOUT':
      return 'timeout';
    default:
      return 'unreachable'; // EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, ENOTFOUND, EADDRNOTAVAIL…
  }
}

/**
 * One request and its answer over a fresh TCP connection, as the miner APIs work: connect, write,
 * read until the answer is complete or the device closes, all within a deadline. The socket is
 * destroyed on every path, so a hung device costs one file descriptor for at most `timeoutMs`.
 */
export function exchange(options: ExchangeOptions): Promise<ExchangeResult> {
  return new Promise<ExchangeResult>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let connected = false;
    let settled = false;
    const socket = net.connect({ host: options.host, port: options.port });
    socket.setNoDelay(true);
    const finish = (error: PollError | null, closedByPeer = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(connectTimer);
      clearTimeout(replyTimer);
      socket.destroy();
      if (error) reject(error);
      else resolve({ data: Buffer.concat(chunks, size), closedByPeer });
    };
    const connectTimer = setTimeout(
      () => {
        if (!connected)
          finish(new PollError('timeout', `no connection within ${options.connectTimeoutMs} ms`));
      },
      Math.min(options.connectTimeoutMs, options.timeoutMs),
    );
    const replyTimer = setTimeout(() => {
      finish(
        new PollError(
          'timeout',
          size > 0
            ? `answer incomplete after ${options.timeoutMs} ms (${size} bytes)`
            : `no answer within ${options.timeoutMs} ms`,
        ),
      );
    }, options.timeoutMs);
    socket.on('connect', () => {
      connected = true;
      socket.write(options.request);
    });
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > options.maxBytes) {
        finish(new PollError('too_large', `answer larger than ${options.maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
      if (options.isComplete(chunk, chunks)) finish(null);
    });
    socket.on('end', () => finish(null, true));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // An error before the answer was recognised complete loses the answer: it is reported, not guessed.
      finish(new PollError(failureCode(error), `${error.code ?? 'error'}: ${error.message}`));
    });
    socket.on('close', () => finish(null, true));
  });
}
