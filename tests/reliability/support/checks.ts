import { expect } from 'vitest';
import { type AgentRun, rejectionCodes } from './agents.ts';
import type { Reconciliation } from './ledger.ts';
import type { HashwattProcess } from './process.ts';

/**
 * The promise: every acknowledged reading is stored exactly once, and every generated reading was
 * eventually acknowledged unless the agent reports it dropped (nothing is rejected in these runs).
 */
export function expectNothingLost(r: Reconciliation, diagnostics: () => string = () => ''): void {
  const why = () => `${r.scenario}: ${diagnostics()}`;
  expect({ missing: r.missing, examples: r.missingExamples }, why()).toEqual({ missing: 0, examples: [] });
  expect(r.storedTwice, why()).toBe(0);
  expect(r.rejected, why()).toBe(0);
  expect(r.buffered, why()).toBe(0);
  expect(r.acknowledged + r.dropped, why()).toBe(r.generated);
  // A stored reading nobody acknowledged can only be one the agent dropped after its ack was lost.
  expect(r.unacknowledged, why()).toBeLessThanOrEqual(r.dropped);
  expect(r.stored, why()).toBe(r.acknowledged + r.unacknowledged);
}

/** hashwatt never exited on its own: every exit was one the scenario caused. */
export function expectNoCrash(service: HashwattProcess): void {
  expect(service.crashes.map((c) => `exited with code ${c.code}, signal ${c.signal}:\n${c.log}`)).toEqual([]);
}

/** What to print when a scenario fails: what agents were refused, and what the service logged as errors. */
export function diagnose(runs: readonly AgentRun[], service: HashwattProcess): () => string {
  return () => {
    const errors = service.errors.slice(0, 3).map((line) => {
      try {
        const e = JSON.parse(line) as {
          msg?: string;
          err?: { message?: string; code?: string; where?: string };
        };
        return `${e.msg}: ${e.err?.code ?? ''} ${e.err?.message ?? ''} ${e.err?.where ?? ''}`.trim();
      } catch {
        return line.slice(0, 300);
      }
    });
    return `rejections ${JSON.stringify(rejectionCodes(runs))}; service errors (${service.errors.length}): ${errors.join(' | ')}`;
  };
}
