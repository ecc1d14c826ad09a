import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import { rejectionCodes, retryReasons, startMixedLoad, totals } from './support/agents.ts';
import { ChaosProxy, seededRandom } from './support/chaos-proxy.ts';
import { diagnose, expectNoCrash, expectNothingLost } from './support/checks.ts';
import { stopAndReconcile, summaryLine } from './support/ledger.ts';
import { HashwattProcess, sleep } from './support/process.ts';

const CHAOS_MS = 20_000;
// A fixed seed by default so a failure replays; HASHWATT_CHAOS_SEED explores others.
const SEED = Number(process.env.HASHWATT_CHAOS_SEED ?? 20_261_124);

describe('reliability: WebSocket connections cut at random', () => {
  let db: TestDatabase | undefined;
  let service: HashwattProcess | undefined;
  let proxy: ChaosProxy | undefined;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await HashwattProcess.start(db.url!);
    proxy = new ChaosProxy(service.port);
  });

  afterAll(async () => {
    await proxy?.close();
    await service?.stop();
    await db?.dispose();
  });

  it('stores every acknowledged frame exactly once while connections die mid-stream', async () => {
    const chaos = proxy!;
    const url = `http://127.0.0.1:${await chaos.listen()}`;
    // Every site streams over WebSocket through the proxy; sites are created on the service directly.
    const runs = await startMixedLoad({ url, adminUrl: service!.url, transport: 'ws' });

    const random = seededRandom(SEED);
    await sleep(2_000);
    chaos.startCutting({
      random,
      intervalMs: [500, 2_500],
      fraction: 0.3,
      upBytes: [8 * 1024, 1024 * 1024],
      downBytes: [100, 2_000],
    });
    await sleep(CHAOS_MS);
    chaos.stopCutting();
    const during = totals(runs);

    const r = await stopAndReconcile('websocket-cuts', runs, db!.url!);
    console.log(
      summaryLine(
        r,
        `seed ${SEED}, ${chaos.connectionsCut} of ${chaos.accepted} connections cut ${JSON.stringify(chaos.cuts)}, ` +
          `retries ${JSON.stringify(retryReasons(runs))}, rejections ${JSON.stringify(rejectionCodes(runs))}`,
      ),
    );

    expect(chaos.connectionsCut).toBeGreaterThanOrEqual(10);
    expect(chaos.cuts['mid-upload']).toBeGreaterThan(0); // the service saw half frames
    expect(chaos.cuts['mid-acks']).toBeGreaterThan(0);
    expect(r.duplicates).toBeGreaterThan(0); // committed frames whose ack was lost were resent, and de-duplicated
    expect(during.acknowledged).toBeGreaterThan(20_000); // delivery went on between the cuts
    expect(service!.running).toBe(true);
    expectNoCrash(service!);
    expectNothingLost(r, diagnose(runs, service!));
  });
});
