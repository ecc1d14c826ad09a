/**
 * Two replicas on one Postgres: one holds the job lease and computes the fleet aggregate, the
 * other reads it, so both report the same numbers; when the holder stops, the other takes over.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RunningService } from '../src/service.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { ADMIN_TOKEN, asicReading, createSite, postReadings, startTestService } from './support/service.ts';

const siteGauges = async (url: string) =>
  (await (await fetch(`${url}/metrics`)).text())
    .split('\n')
    .filter((l) => l.startsWith('hashwatt_site_'))
    .sort();
const fleet = async (url: string) =>
  (await fetch(`${url}/api/v1/fleet`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json();
const leaderOf = async (url: string) =>
  /^hashwatt_alerting_leader 1$/m.test(await (await fetch(`${url}/metrics`)).text());

describe('replicas on one Postgres', () => {
  let db: TestDatabase;
  let a: RunningService;
  let b: RunningService;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    const tuning = { fleetRefreshMs: 200 };
    a = await startTestService(db, { tuning });
    b = await startTestService(db, { tuning });
  }, 60_000);

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await db?.dispose();
  });

  it('report the same fleet, computed once, and keep reporting it when the holder stops', async () => {
    const site = await createSite(a.url, 'shared-fleet');
    const now = Date.now();
    expect(
      (
        await postReadings(b.url, site.token, [
          asicReading('a1', now),
          asicReading('a2', now, { power_w: 3100 }),
        ])
      ).status,
    ).toBe(200);
    // Both answer from the one stored aggregate: byte-equal gauges and fleet answers.
    await vi.waitFor(
      async () => {
        const [ga, gb] = await Promise.all([siteGauges(a.url), siteGauges(b.url)]);
        expect(ga.some((l) => l.includes('shared-fleet'))).toBe(true);
        expect(ga).toEqual(gb);
        const [fa, fb] = await Promise.all([fleet(a.url), fleet(b.url)]);
        expect(fa).toEqual(fb);
      },
      { timeout: 10_000, interval: 100 },
    );
    const [leaderA, leaderB] = await Promise.all([leaderOf(a.url), leaderOf(b.url)]);
    expect([leaderA, leaderB].filter(Boolean)).toHaveLength(1);
    const [holder, other] = leaderA ? [a, b] : [b, a];
    const before = (await fleet(other.url)) as { sites: { name: string; power: unknown }[] };
    await holder.stop();
    // The other takes the lease and computes the aggregate itself from then on.
    await vi.waitFor(async () => expect(await leaderOf(other.url)).toBe(true), {
      timeout: 20_000,
      interval: 200,
    });
    const after = (await fleet(other.url)) as { sites: { name: string }[] };
    expect(after.sites.map((s) => s.name)).toEqual(before.sites.map((s) => s.name));
  }, 60_000);
});
