/**
 * Counter-based randomness: every draw is a pure hash of (seed, device, tick, channel).
 * Nothing depends on the order in which devices are stepped, so the same seed and start time
 * always give the same readings, and adding a device does not shift any other device's noise.
 */

/** murmur3's 32-bit finaliser: cheap and avalanches well enough for simulation noise. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 32-bit hash of four 32-bit integers. */
export function hash32(a: number, b: number, c: number, d: number): number {
  let h = mix32(a ^ 0x9e3779b9);
  h = mix32(h ^ Math.imul(b | 0, 0xcc9e2d51));
  h = mix32(h ^ Math.imul(c | 0, 0x1b873593));
  return mix32(h ^ Math.imul(d | 0, 0xe6546b64));
}

/** A 32-bit hash of a string (FNV-1a, then mixed), used to derive per-site seeds from names. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h);
}

/** Deterministic noise source for one site. */
export class Noise {
  readonly seed: number;

  constructor(seed: number) {
    this.seed = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  uniform(device: number, tick: number, channel: number): number {
    return hash32(this.seed, device, tick, channel) / 4294967296;
  }

  /** Uniform in [min, max). */
  between(device: number, tick: number, channel: number, min: number, max: number): number {
    return min + (max - min) * this.uniform(device, tick, channel);
  }

  /** Standard normal (Box–Muller over two independent uniforms). */
  normal(device: number, tick: number, channel: number): number {
    const u1 = 1 - this.uniform(device, tick, channel); // (0, 1]: log never sees 0
    const u2 = this.uniform(device, tick, channel + 0x10000);
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** True with probability p. */
  chance(device: number, tick: number, channel: number, p: number): boolean {
    return this.uniform(device, tick, channel) < p;
  }
}

/** Clamps value into [min, max]. */
export function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
