/**
 * Miners by their API: CGMiner-family on 4028, Whatsminer V3 on 4433, or `auto`, which asks 4028
 * first and 4433 when nothing listens there, and remembers which answered. A miner that stops
 * answering is asked both again once it has failed a few times (it may have been reflashed).
 */
import { CgminerCollector } from './cgminer/collector.ts';
import type { Collector, DeviceIdentity, MinerTarget, PollContext, PollResult } from './collector.ts';
import { PollError } from './collector.ts';
import { WhatsminerV3Collector } from './whatsminer-v3.ts';

/** Failures in a row after which an auto miner's API is detected afresh. */
const REDETECT_AFTER_FAILURES = 3;

export class MinerCollector implements Collector<MinerTarget> {
  readonly cgminer = new CgminerCollector();
  readonly whatsminerV3 = new WhatsminerV3Collector();
  readonly #detected = new Map<string, 'cgminer' | 'whatsminer-v3'>();
  readonly #failures = new Map<string, number>();

  identity(target: MinerTarget): DeviceIdentity | undefined {
    const api = target.api === 'auto' ? this.#detected.get(target.id) : target.api;
    if (api === 'whatsminer-v3') return this.whatsminerV3.identity(target.id);
    return api === 'cgminer' ? this.cgminer.identity(target.id) : undefined;
  }

  async poll(target: MinerTarget, context: PollContext): Promise<PollResult> {
    try {
      const result = await this.#poll(target, context);
      this.#failures.delete(target.id);
      return result;
    } catch (error) {
      const failures = (this.#failures.get(target.id) ?? 0) + 1;
      this.#failures.set(target.id, failures);
      if (failures >= REDETECT_AFTER_FAILURES) {
        this.#detected.delete(target.id);
        this.cgminer.forget(target.id);
      }
      throw error;
    }
  }

  async #poll(target: MinerTarget, context: PollContext): Promise<PollResult> {
    if (target.api === 'cgminer') return this.cgminer.poll(target, context);
    if (target.api === 'whatsminer-v3') return this.whatsminerV3.poll(target, context);
    const known = this.#detected.get(target.id);
    if (known === 'cgminer') return this.cgminer.poll(target, context);
    if (known === 'whatsminer-v3') return this.whatsminerV3.poll(target, context);
    const started = performance.now();
    try {
      const result = await this.cgminer.poll({ ...target, port: undefined }, context);
      this.#detected.set(target.id, 'cgminer');
      return result;
    } catch (error) {
      // Only "nothing listens on 4028" sends us to 4433; a miner that answers badly is a 4028 miner.
      if (!(error instanceof PollError) || error.code !== 'refused') throw error;
      const left = context.timeoutMs - (performance.now() - started);
      const result = await this.whatsminerV3.poll(
        { ...target, port: undefined },
        { ...context, timeoutMs: Math.max(0, left) },
      );
      this.#detected.set(target.id, 'whatsminer-v3');
      return result;
    }
  }
}
