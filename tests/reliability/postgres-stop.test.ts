import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retryReasons, startMixedLoad, totals } from './support/agents.ts';
import { diagnose, expectNoCrash, expectNothingLost } from './support/checks.ts';
import { stopAndReconcile, summaryLine } from './support/ledger.ts';
import { PrivatePostgres } from './support/private-postgres.ts';
import { HashwattProcess, sleep, waitFor } from './support/process.ts';

const OUTAGE_MS = 20_000;

async function readyStatus(url: string): Promise<number> {
  try {
    return (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5_000) })).status;
  } catch {
    return 0;
  }
}

describe('reliability: Postgres stopped for 20 s mid-load', () => {
  let postgres: PrivatePostgres | undefined;
  let service: HashwattProcess | undefined;

  beforeAll(async () => {
    postgres = await PrivatePostgres.create();
    service = await HashwattProcess.start(postgres.url());
  });

  afterAll(async () => {
    await service?.stop();
    await postgres?.remove();
  });

  it('answers 503 with a retry hint while it is down, resumes without a restart, loses nothing acknowledged', async () => {
    const db = postgres!;
    const hashwatt = service!;
    const pid = hashwatt.pid;
    const runs = await startMixedLoad({ url: hashwatt.url });

    await sleep(8_000);
    expect(totals(runs).acknowledged).toBeGreaterThan(10_000);
    // Immediate: a crash, not a polite shutdown; committed (acknowledged) work must survive it.
    await db.stop('immediate');
    const stoppedAt = Date.now();

    // Batches in flight at the stop fail within a moment; after that nothing can be acknowledged.
    await sleep(2_000);
    expect(await readyStatus(hashwatt.url)).toBe(503);
    const ackedEarlyInOutage = totals(runs).acknowledged;
    await sleep(OUTAGE_MS - (Date.now() - stoppedAt));
    const ackedLateInOutage = totals(runs).acknowledged;
    const bufferedAtRestart = totals(runs).buffered;
    await db.start();

    // The same process picks the database up again: ready, and acknowledging, with no restart.
    expect(await waitFor(async () => (await readyStatus(hashwatt.url)) === 200, 15_000)).toBe(true);
    await sleep(8_000);
    expect(hashwatt.pid).toBe(pid);
    expect(totals(runs).acknowledged).toBeGreaterThan(ackedLateInOutage);

    const r = await stopAndReconcile('postgres-stop', runs, db.url(), 40_000);
    console.log(
      summaryLine(
        r,
        `buffered at restart ${bufferedAtRestart}, acked during outage ${ackedLateInOutage - ackedEarlyInOutage}, ` +
          `retries ${JSON.stringify(retryReasons(runs))}`,
      ),
    );

    expect(ackedLateInOutage - ackedEarlyInOutage).toBe(0);
    expect(bufferedAtRestart).toBeGreaterThan(10_000);
    // Both transports were told to come back later, with the server's hint.
    const reasons = Object.keys(retryReasons(runs));
    expect(reasons).toContain('demo-mining-tx: HTTP 503 database_unavailable +hint');
    expect(reasons).toContain('demo-ai-oregon: service: database_unavailable +hint');
    expect(hashwatt.running).toBe(true);
    expectNoCrash(hashwatt);
    expectNothingLost(r, diagnose(runs, hashwatt));
  });
});
