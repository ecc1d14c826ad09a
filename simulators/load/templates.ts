import { ASIC_MODELS, type AsicModelName } from '../physics/asic.ts';
import { Noise } from '../physics/random.ts';
import { siteSeed } from '../physics/site.ts';
import type { SiteSpec } from '../scenario.ts';

/** Value variants per model; device i in cycle c uses variant (i·7 + c) mod 16, so values move. */
const VARIANTS = 16;

/**
 * Open-loop reading generator for benchmarks. Physics is too slow for 200k readings/s on one core,
 * so each device's JSON is precomputed as a prefix (up to `"ts":`) and a handful of plausible value
 * suffixes per model; a reading is then two string concatenations around its timestamp.
 */
export class LoadGenerator {
  readonly devices: string[] = [];
  readonly #prefixes: string[] = [];
  readonly #suffixes: string[][] = [];
  /** Per device: its suffix list (by model). */
  readonly #suffixOf: number[] = [];
  /** Last ts given to each device, so a device never repeats a ts even when it reports twice in 1 ms. */
  readonly #lastTs: Float64Array;
  readonly #epochTs: boolean;
  #cursor = 0;
  #cycle = 0;
  #tsCacheMs = Number.NaN;
  #tsCache = '';

  constructor(site: SiteSpec, seed: number, tsFormat: 'rfc3339' | 'epoch_ms' = 'epoch_ms') {
    this.#epochTs = tsFormat === 'epoch_ms';
    const noise = new Noise(siteSeed(seed, site.name));
    const models = Object.entries(site.devices.asic).filter(([, n]) => (n ?? 0) > 0) as [
      AsicModelName,
      number,
    ][];
    models.forEach(([model, count], m) => {
      const spec = ASIC_MODELS[model];
      const suffixes: string[] = [];
      for (let v = 0; v < VARIANTS; v++) {
        const r = (ch: number) => noise.normal(m, v, ch);
        const power = (spec.powerW * (1 + 0.01 * r(1))).toFixed(1);
        const hashrate = (spec.hashrateThs * (1 + 0.015 * r(2))).toFixed(2);
        const temp = (64 + 2.5 * r(3)).toFixed(1);
        const fan = Math.round((4300 + 150 * r(4)) / 10) * 10;
        suffixes.push(
          `,"power_w":${power},"hashrate_ths":${hashrate},"expected_hashrate_ths":${spec.hashrateThs},"temp_c":${temp},"fan_rpm":${fan},"status":"ok"}`,
        );
      }
      this.#suffixes.push(suffixes);
      for (let i = 0; i < count; i++) {
        const n = this.devices.length;
        // Load sites are big: halls of 10,000 units, racks of 100, so names stay unique at 1M devices.
        const name = `hall-${Math.floor(n / 10_000) + 1}/r${String(Math.floor((n % 10_000) / 100) + 1).padStart(3, '0')}/${spec.slug}-${String((n % 100) + 1).padStart(3, '0')}`;
        this.devices.push(name);
        this.#prefixes.push(`{"device":"${name}","kind":"asic","model":"${model}","ts":`);
        this.#suffixOf.push(m);
      }
    });
    this.#lastTs = new Float64Array(this.devices.length).fill(-1);
  }

  #formatTs(ms: number): string {
    if (this.#epochTs) return String(ms);
    if (ms !== this.#tsCacheMs) {
      this.#tsCacheMs = ms;
      this.#tsCache = `"${new Date(ms).toISOString()}"`;
    }
    return this.#tsCache;
  }

  /**
   * Emits `count` readings, devices in round-robin, timestamps spread evenly over
   * [fromMs, fromMs + spanMs). `sink` gets the JSON, the device index and the ts in ms.
   */
  emit(
    count: number,
    fromMs: number,
    spanMs: number,
    sink: (json: string, device: number, tsMs: number) => void,
  ): void {
    const n = this.devices.length;
    if (n === 0) return;
    const step = spanMs / count;
    for (let j = 0; j < count; j++) {
      const d = this.#cursor;
      let ts = Math.floor(fromMs + j * step);
      if (ts <= this.#lastTs[d]!) ts = this.#lastTs[d]! + 1;
      this.#lastTs[d] = ts;
      const suffix = this.#suffixes[this.#suffixOf[d]!]![(d * 7 + this.#cycle) & (VARIANTS - 1)]!;
      sink(this.#prefixes[d]! + this.#formatTs(ts) + suffix, d, ts);
      if (++this.#cursor === n) {
        this.#cursor = 0;
        this.#cycle++;
      }
    }
  }
}
