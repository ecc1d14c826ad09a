import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import { adminRequest, createSite } from '../support/service.ts';
import { expectNoCrash } from './support/checks.ts';
import { HashwattProcess, waitFor } from './support/process.ts';

const WRITERS = 16;
const READINGS_PER_BATCH = 50;
/** Each writer adds a new device every few batches, so registration races the purge too. */
const NEW_DEVICE_EVERY = 3;
/** Acknowledged batches before the purge starts: the site then holds data and its writers are busy. */
const BATCHES_BEFORE_PURGE = 200;
/** Answers each writer must have had after the purge returned before it stops. */
const ANSWERS_AFTER_PURGE = 5;

/**
 * Purging a site while its agents write, through two replicas that each cache device ids and
 * tokens: after the 204 nothing of the site may remain, and every request gets a 2xx (its readings
 * then removed by the purge, or the purge waits for it) or a 401/404, never a 5xx. readings has no
 * foreign key, so this holds only because each write transaction locks the rows of its sites.
 */
describe('reliability: purging a site under concurrent writers', () => {
  let db: TestDatabase | undefined;
  const replicas: HashwattProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    replicas.push(await HashwattProcess.start(db.url!));
    replicas.push(await HashwattProcess.start(db.url!));
  });

  afterAll(async () => {
    for (const replica of replicas) await replica.stop();
    await db?.dispose();
  });

  it('leaves no reading or device of the site behind, and answers no request with a 5xx', async () => {
    const [a, b] = replicas as [HashwattProcess, HashwattProcess];
    const { site, token } = await createSite(a.url, 'purged', 'mining', 100_000);
    const bystander = await createSite(a.url, 'bystander', 'mining', 100_000);
    const answers = new Map<string, number>();
    const count = (key: string) => answers.set(key, (answers.get(key) ?? 0) + 1);
    let acknowledged = 0;
    let purgedAt: number | undefined;
    // Set on any way out of the test, so a failed precondition ends the writers instead of leaving
    // them looping (and the suite hanging) until the timeout.
    let abandoned = false;
    const answersAfterPurge = new Array<number>(WRITERS).fill(0);
    const t0 = Date.now() - 3_600_000;

    const writer = async (w: number) => {
      const replica = replicas[w % replicas.length]!;
      for (let batch = 0; !abandoned && answersAfterPurge[w]! < ANSWERS_AFTER_PURGE; batch++) {
        const started = Date.now();
        const device = `w${w}-d${Math.floor(batch / NEW_DEVICE_EVERY)}`;
        const readings = Array.from({ length: READINGS_PER_BATCH }, (_, i) => ({
          device,
          kind: 'asic',
          ts: t0 + batch * READINGS_PER_BATCH + i,
          power_w: 3_500,
          hashrate_ths: 200,
        }));
        let status: number;
        try {
          const response = await fetch(`${replica.url}/api/v1/ingest`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ readings }),
          });
          status = response.status;
          await response.arrayBuffer();
        } catch (error) {
          count(`network error: ${(error as Error).message}`);
          status = 0;
        }
        count(`HTTP ${status}`);
        if (status === 200) acknowledged++;
        // Only requests sent after the purge returned count towards stopping.
        if (purgedAt !== undefined && started >= purgedAt) answersAfterPurge[w]!++;
      }
    };

    const running = Array.from({ length: WRITERS }, (_, w) => writer(w));
    // The bystander writes through the other replica meanwhile; its readings must all stay.
    const bystanderReadings = Array.from({ length: 20 }, (_, i) => ({
      device: 'other',
      kind: 'asic',
      ts: t0 + i,
      power_w: 1,
    }));
    const bystanderAnswer = fetch(`${b.url}/api/v1/ingest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bystander.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ readings: bystanderReadings }),
    });

    try {
      expect(await waitFor(() => acknowledged >= BATCHES_BEFORE_PURGE, 60_000, 20)).toBe(true);
      const purge = await adminRequest(a.url, 'DELETE', `/api/v1/sites/${site.id}?purge=true`);
      purgedAt = Date.now();
      expect(purge.status, await purge.clone().text()).toBe(204);
    } catch (error) {
      abandoned = true;
      await Promise.allSettled(running);
      throw error;
    }

    const client = new pg.Client({ connectionString: db!.url });
    await client.connect();
    const left = async () => {
      const { rows } = await client.query<{ readings: number; devices: number; latest: number }>(
        `SELECT (SELECT count(*)::int FROM readings WHERE site_id = $1) AS readings,
                (SELECT count(*)::int FROM devices WHERE site_id = $1) AS devices,
                (SELECT count(*)::int FROM device_latest WHERE site_id = $1) AS latest`,
        [site.id],
      );
      return rows[0]!;
    };
    try {
      const rightAfter = await left();
      await Promise.all(running);
      expect((await bystanderAnswer).status).toBe(200);
      const atEnd = await left();
      const { rows } = await client.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM readings WHERE site_id = $1',
        [bystander.site.id],
      );

      const summary = Object.fromEntries(answers);
      console.log(
        `reliability purge-under-writers: acknowledged ${acknowledged} batches | answers ${JSON.stringify(summary)} | ` +
          `left right after the purge ${JSON.stringify(rightAfter)}, at the end ${JSON.stringify(atEnd)} | ` +
          `service errors ${a.errors.length + b.errors.length}`,
      );
      expect(rightAfter).toEqual({ readings: 0, devices: 0, latest: 0 });
      expect(atEnd).toEqual({ readings: 0, devices: 0, latest: 0 });
      expect(rows[0]!.n).toBe(bystanderReadings.length);
      // Only these answers: stored (then purged), the site gone (unknown token, or deleted under the
      // request), or a request refused to shed load; never a 5xx or a dropped connection.
      for (const key of answers.keys())
        expect(['HTTP 200', 'HTTP 401', 'HTTP 404', 'HTTP 429']).toContain(key);
      expect(answers.get('HTTP 200')).toBeGreaterThanOrEqual(BATCHES_BEFORE_PURGE);
      expect((answers.get('HTTP 401') ?? 0) + (answers.get('HTTP 404') ?? 0)).toBeGreaterThanOrEqual(
        WRITERS * ANSWERS_AFTER_PURGE,
      );
      expect([...a.errors, ...b.errors]).toEqual([]);
      for (const replica of replicas) expectNoCrash(replica);
    } finally {
      await client.end();
    }
  });
});
