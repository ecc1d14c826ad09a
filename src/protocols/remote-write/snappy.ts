/**
 * Snappy block format (not the framed format: remote_write 1.0 sends one raw block). The body
 * starts with the uncompressed length as a varint, which is read first so an oversized body is
 * refused before any memory is allocated for it.
 */
import { uncompressSync } from 'snappy';

/** The uncompressed length a block declares, or undefined for a malformed header. */
export function snappyUncompressedLength(block: Uint8Array): number | undefined {
  let result = 0;
  for (let i = 0, shift = 0; i < 5; i++, shift += 7) {
    if (i >= block.length) return undefined;
    const b = block[i]!;
    if (shift === 28) {
      // A snappy length is a uint32: the fifth byte carries bits 28..31 and ends the varint.
      if ((b & 0xf0) !== 0) return undefined;
      return result + b * 2 ** 28;
    }
    result |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) return result;
  }
  return undefined;
}

/**
 * The most a block of `compressedLength` bytes can expand to: snappy's densest element, a 2-byte
 * offset copy, spends 3 bytes on 64 output bytes (21.3×). A header declaring more is forged, and
 * is refused before the output buffer is allocated (a 20-byte body must not cost 32 MiB).
 */
export function maxSnappyExpansion(compressedLength: number): number {
  return Math.ceil((compressedLength * 64) / 3) + 64;
}

/**
 * Decompresses one block with the native `snappy` package (Rust `snap`); undefined when the data
 * is corrupt. Not the pure-JS `snappyjs`, although that measured faster on remote_write-sized
 * bodies (bench/protocols-decode.ts): snappyjs does not bound a literal's length, so a 6-byte body
 * (6efc09f2ddfa) sends its cursor backwards and spins for half a second, and it never checks that
 * the output fills the declared length. Hostile bodies reach this function.
 */
export function snappyUncompress(block: Uint8Array): Uint8Array | undefined {
  // uncompressSync allocates what the header declares: callers check that against their limit
  // and against maxSnappyExpansion first.
  try {
    const out = uncompressSync(block, { asBuffer: true });
    return typeof out === 'string' ? undefined : out;
  } catch {
    return undefined;
  }
}
