import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import { retryReasons, startMixedLoad, totals } from './support/agents.ts';
import { diagnose, expectNoCrash, expectNothingLost } from './support/checks.ts';
import { stopAndReconcile, summaryLine } from './support/ledger.ts';
import { HashwattProcess, sleep } from './support/process.ts';

describe('reliability: hashwatt killed with SIGKILL mid-load', () => {
  let db: TestDatabase | undefined;
  let service: HashwattProcess | undefined;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await HashwattProcess.start(db.url!);
  });

  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it('loses nothing it acknowledged across two kills; agents reconnect to the restarted process and resend', async () => {
    const hashwatt = service!;
    const runs = await startMixedLoad({ url: hashwatt.url });
    const acknowledgedAtKill: number[] = [];

    for (let kill = 0; kill < 2; kill++) {
      await sleep(6_000);
      acknowledgedAtKill.push(totals(runs).acknowledged);
      // No drain, no goodbye: whatever was admitted and not committed dies with the process.
      const exit = await hashwatt.signal('SIGKILL');
      expect(exit.signal).toBe('SIGKILL');
      await sleep(2_000);
      await hashwatt.start(); // same port: the agents' URL does not change
    }
    await sleep(6_000);

    const r = await stopAndReconcile('sigkill', runs, db!.url!);
    console.log(
      summaryLine(
        r,
        `acked at kills ${acknowledgedAtKill.join(', ')}, retries ${JSON.stringify(retryReasons(runs))}`,
      ),
    );

    expect(acknowledgedAtKill[0]).toBeGreaterThan(10_000);
    expect(Object.keys(retryReasons(runs)).length).toBeGreaterThan(0); // the kills really hit the agents
    expectNoCrash(hashwatt);
    expectNothingLost(r, diagnose(runs, hashwatt));
  });
});
