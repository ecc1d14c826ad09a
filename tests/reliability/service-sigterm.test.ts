import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import { retryReasons, startMixedLoad, totals } from './support/agents.ts';
import { diagnose, expectNoCrash, expectNothingLost } from './support/checks.ts';
import { stopAndReconcile, summaryLine } from './support/ledger.ts';
import { HashwattProcess, sleep } from './support/process.ts';

const SHUTDOWN_TIMEOUT_S = 10;

describe('reliability: SIGTERM mid-load', () => {
  let db: TestDatabase | undefined;
  let service: HashwattProcess | undefined;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await HashwattProcess.start(db.url!, {
      HASHWATT_SHUTDOWN_TIMEOUT_S: String(SHUTDOWN_TIMEOUT_S),
    });
  });

  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it('drains, exits 0 within the shutdown timeout, and loses nothing it acknowledged', async () => {
    const hashwatt = service!;
    const runs = await startMixedLoad({ url: hashwatt.url });

    await sleep(6_000);
    const acknowledgedAtStop = totals(runs).acknowledged;
    const started = performance.now();
    const exit = await hashwatt.signal('SIGTERM');
    const drainMs = Math.round(performance.now() - started);
    expect(exit, hashwatt.logTail()).toEqual({ code: 0, signal: null });
    expect(drainMs).toBeLessThan(SHUTDOWN_TIMEOUT_S * 1000);

    // A rolling restart: the next process comes up on the same port and the agents deliver the rest.
    await sleep(2_000);
    await hashwatt.start();
    await sleep(5_000);

    const r = await stopAndReconcile('sigterm', runs, db!.url!);
    console.log(
      summaryLine(
        r,
        `acked at SIGTERM ${acknowledgedAtStop}, drain ${drainMs} ms, retries ${JSON.stringify(retryReasons(runs))}`,
      ),
    );

    expect(acknowledgedAtStop).toBeGreaterThan(10_000);
    expect(Object.keys(retryReasons(runs)).length).toBeGreaterThan(0);
    expectNoCrash(hashwatt);
    expectNothingLost(r, diagnose(runs, hashwatt));
  });
});
