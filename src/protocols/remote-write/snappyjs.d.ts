// snappyjs ships no types; the two functions hashwatt calls, as its index.js defines them
// (uncompress throws on corrupt data or when the declared length exceeds maxLength).
declare module 'snappyjs' {
  export function uncompress(compressed: Uint8Array, maxLength?: number): Uint8Array;
  export function compress(uncompressed: Uint8Array): Uint8Array;
}
