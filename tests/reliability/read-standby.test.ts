/**
 * History from a streaming standby: a private primary and a `pg_basebackup` standby, hashwatt with
 * HASHWATT_READ_DATABASE_URL. Series and energy are read on the standby, equal the primary's once
 * it has caught up, the lag is exported, and what must be fresh (status, auth) stays on the primary.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivatePostgres } from './support/private-postgres.ts';
import { ADMIN_TOKEN, HashwattProcess, waitFor } from './support/process.ts';

const MIN = 60_000;

async function json(url: string, token: string, init: RequestInit = {}) {
  const response = await fetch(url, {
    ...init,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('reliability: history read from a streaming standby', () => {
  let primary: PrivatePostgres | undefined;
  let standby: PrivatePostgres | undefined;
  let service: HashwattProcess | undefined;

  beforeAll(async () => {
    primary = await PrivatePostgres.create();
    standby = await primary.createStandby();
    service = await HashwattProcess.start(primary.url(), { HASHWATT_READ_DATABASE_URL: standby.url() });
  }, 120_000);

  afterAll(async () => {
    await service?.stop();
    await standby?.remove();
    await primary?.remove();
  });

  it('serves series and energy from the standby, equal to the primary once caught up', async () => {
    const url = service!.url;
    const created = await json(`${url}/api/v1/sites`, ADMIN_TOKEN, {
      method: 'POST',
      body: JSON.stringify({ name: 'standby-site', kind: 'mining', capacity_kw: 1000 }),
    });
    expect(created.status).toBe(201);
    const { site: siteView, token } = created.body as { site: { id: number }; token: string };
    const site = { id: siteView.id, token };
    const t0 = Math.floor(Date.now() / MIN) * MIN - 30 * MIN;
    const readings = Array.from({ length: 20 }, (_, m) => ({
      device: 'a1',
      kind: 'asic',
      ts: new Date(t0 + m * MIN + 5_000).toISOString(),
      power_w: 3000 + m,
    }));
    const pushed = await json(`${url}/api/v1/ingest`, site.token, {
      method: 'POST',
      body: JSON.stringify({ readings }),
    });
    expect(pushed.status).toBe(200);

    const query = `from=${t0}&to=${t0 + 20 * MIN}&step=60&metric=power_w`;
    const series = async () => json(`${url}/api/v1/sites/${site.id}/series?${query}`, ADMIN_TOKEN);
    // Replication is asynchronous: the standby's answer converges on what was committed.
    const want = readings.map((r, m) => [t0 + m * MIN, r.power_w]);
    const caughtUp = await waitFor(
      async () => JSON.stringify((await series()).body.points) === JSON.stringify(want),
      20_000,
    );
    expect(caughtUp, JSON.stringify((await series()).body)).toBe(true);

    const energy = await json(
      `${url}/api/v1/sites/${site.id}/energy?from=${t0}&to=${t0 + 20 * MIN}&bucket=hour`,
      ADMIN_TOKEN,
    );
    const kwh = (energy.body.buckets as { kwh: number }[]).reduce((a, b) => a + b.kwh, 0);
    expect(kwh).toBeCloseTo(
      readings.reduce((a, r) => a + (r.power_w * 60) / 3.6e6, 0),
      9,
    );

    // The same question asked of the primary directly gives the same rows.
    const direct = new pg.Client({ connectionString: primary!.url() });
    await direct.connect();
    try {
      const { rows } = await direct.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM readings WHERE site_id = $1',
        [site.id],
      );
      expect(rows[0]!.n).toBe(20);
    } finally {
      await direct.end();
    }
    // The reads really went to the standby: stopped, history fails while status still answers.
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const lag = Number(/^hashwatt_read_replica_lag_seconds (\S+)$/m.exec(metrics)?.[1]);
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(5);
    await standby!.stop('immediate');
    expect((await series()).status).toBe(503);
    expect((await json(`${url}/api/v1/sites/${site.id}/status`, ADMIN_TOKEN)).status).toBe(200);
    expect(/^hashwatt_read_replica_lag_seconds -1$/m.test(await (await fetch(`${url}/metrics`)).text())).toBe(
      true,
    );
    await standby!.start();
    expect(await waitFor(async () => (await series()).status === 200, 20_000)).toBe(true);
  }, 120_000);
});
