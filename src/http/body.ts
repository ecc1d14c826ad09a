import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { HashwattError } from '../errors.ts';

const gunzipAsync = promisify(gunzip);

export interface BodyLimits {
  /** Bytes on the wire (compressed, when it is). */
  maxWireBytes: number;
  /** Bytes after decompression; a gzip bomb is cut off here while inflating, not after. */
  maxDecodedBytes: number;
}

const MIB = 1024 * 1024;
export const INGEST_BODY_LIMITS: BodyLimits = { maxWireBytes: 4 * MIB, maxDecodedBytes: 32 * MIB };

/** Reads a request body within the wire limit, counting as it streams (Content-Length may lie or be absent). */
async function readWire(request: Request, maxBytes: number): Promise<Buffer> {
  const declared = Number(request.headers.get('content-length') ?? Number.NaN);
  if (declared > maxBytes) {
    // Answering before the body is read closes the connection under a sender still writing, which
    // then sees a broken pipe instead of the 413. A body up to a few times the limit is read and
    // dropped so the answer arrives; anything bigger is cut off at once.
    if (declared <= DRAIN_FACTOR * maxBytes) await drain(request, DRAIN_FACTOR * maxBytes);
    throw tooLarge(`the body exceeds ${maxBytes} bytes`);
  }
  if (!request.body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body) {
    size += chunk.byteLength;
    // Past the limit, keep reading (and dropping) for the same reason as above, within the same bound.
    if (size > DRAIN_FACTOR * maxBytes) break;
    if (size <= maxBytes) chunks.push(chunk);
  }
  if (size > maxBytes) throw tooLarge(`the body exceeds ${maxBytes} bytes`);
  return Buffer.concat(chunks, size);
}

const DRAIN_FACTOR = 4;

/** Reads and discards up to `budget` more bytes of a body. */
async function drain(request: Request, budget: number): Promise<void> {
  if (!request.body) return;
  let left = budget;
  try {
    for await (const chunk of request.body) {
      left -= chunk.byteLength;
      if (left <= 0) return;
    }
  } catch {
    // The sender went away: nothing left to answer.
  }
}

function tooLarge(message: string): HashwattError {
  return new HashwattError('payload_too_large', message);
}

/** The decoded JSON body of an ingest request, with content type and encoding checked. */
export async function readJsonBody(
  request: Request,
  limits: BodyLimits,
): Promise<{ value: unknown; wireBytes: number }> {
  const type = request.headers.get('content-type') ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new HashwattError('unsupported_media_type', 'Content-Type must be application/json', {
      field: 'content-type',
    });
  }
  const encoding = (request.headers.get('content-encoding') ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity' && encoding !== 'gzip') {
    throw new HashwattError('unsupported_media_type', 'Content-Encoding must be gzip or absent', {
      field: 'content-encoding',
    });
  }
  const wire = await readWire(request, limits.maxWireBytes);
  let text: Buffer = wire;
  if (encoding === 'gzip') {
    try {
      text = await gunzipAsync(wire, { maxOutputLength: limits.maxDecodedBytes });
    } catch (error) {
      if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw tooLarge(`the decompressed body exceeds ${limits.maxDecodedBytes} bytes`);
      }
      throw new HashwattError('invalid_encoding', 'the body is not valid gzip', {
        field: 'content-encoding',
      });
    }
  }
  return { value: parseJson(text.toString('utf8')), wireBytes: wire.length };
}

/** JSON.parse with the contract's error. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HashwattError('invalid_json', `malformed JSON: ${(error as Error).message}`);
  }
}
