/**
 * Thirty days of a simulated site's history, pushed through the real ingest route with past
 * timestamps, for tests that read history the way an operator does (tests/e2e/console.test.ts).
 * The simulator's physics give each tick its readings (grid schedule, curtailment, meter), so the
 * charts have real shapes: every 30 minutes for days 30 to 1, every minute for the last day.
 */
import { type Reading, SiteSimulation, type SiteSpec } from '../../../simulators/index.ts';
import { postReadings } from '../../support/service.ts';

const DAY_MS = 86_400_000;

/** The readings of `spec` from `days` ago until `nowMs`, oldest first. */
export function siteHistory(
  spec: SiteSpec,
  nowMs: number,
  options: { days: number; seed: number },
): Reading[] {
  const segments = [
    { fromMs: nowMs - options.days * DAY_MS, toMs: nowMs - DAY_MS, intervalS: 1800 },
    { fromMs: nowMs - DAY_MS, toMs: nowMs, intervalS: 60 },
  ];
  const readings: Reading[] = [];
  for (const segment of segments) {
    const simulation = new SiteSimulation(spec, {
      seed: options.seed,
      startMs: segment.fromMs,
      intervalS: segment.intervalS,
      randomFailures: false,
    });
    for (;;) {
      const tick = simulation.step();
      if (tick.trueTsMs >= segment.toMs) break;
      readings.push(...tick.readings);
    }
  }
  return readings;
}

/** Posts readings in batches as an agent catching up would; throws on any rejection. */
export async function pushHistory(
  url: string,
  token: string,
  readings: Reading[],
  batch = 5000,
): Promise<number> {
  let accepted = 0;
  for (let i = 0; i < readings.length; i += batch) {
    const answer = await postReadings(url, token, readings.slice(i, i + batch));
    if (answer.status !== 200 || (answer.body.rejected?.length ?? 0) > 0)
      throw new Error(`ingest: ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`);
    accepted += answer.body.accepted ?? 0;
  }
  return accepted;
}
