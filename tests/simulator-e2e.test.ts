import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadScenario, provisionSites, readingKey, startFleet } from '../simulators/index.ts';
import type { RunningService } from '../src/service.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { ADMIN_TOKEN, startTestService } from './support/service.ts';
import { TcpProxy } from './support/tcp-proxy.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the demo scenario against a real service on real Postgres', () => {
  let db: TestDatabase;
  let service: RunningService;
  let proxy: TcpProxy;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await startTestService(db);
    // Agents reach hashwatt through a proxy, so the test can cut their connections and move the
    // server (a restart on a new port) while their URL stays the same.
    proxy = new TcpProxy('127.0.0.1', Number(new URL(service.url).port));
  });

  afterAll(async () => {
    await service?.stop();
    await proxy?.close();
    await db?.dispose();
  });

  it('stores exactly what was acknowledged, over HTTP and WebSocket, across a connection drop and a restart', async () => {
    const url = `http://127.0.0.1:${await proxy.listen()}`;
    const scenario = loadScenario('demo', { scale: 0.05, interval_s: 1, random_failures: false });
    expect(new Set(scenario.sites.map((s) => s.transport))).toEqual(new Set(['http', 'ws']));
    const tokens = await provisionSites({ url, adminToken: ADMIN_TOKEN, scenario });
    const fleet = startFleet({ scenario, url, tokens, seed: 7, trackAcks: true });

    await sleep(3_000);
    proxy.cut(); // every agent connection drops mid-stream
    await sleep(1_500);
    proxy.restore();
    await sleep(2_000);
    await service.stop(); // graceful restart on a new port; agents retry and resend
    await sleep(500);
    service = await startTestService(db);
    proxy.retarget(Number(new URL(service.url).port));
    await sleep(3_000);
    const counters = await fleet.stop({ flushMs: 10_000 });

    expect(counters.total.generated).toBeGreaterThan(200);
    expect(counters.total.retried).toBeGreaterThan(0); // the faults really hit the agents
    expect(counters.total.dropped).toBe(0);
    expect(counters.total.buffered).toBe(0);
    expect(counters.total.acknowledged).toBe(counters.total.generated);

    const { rows } = await sql<{ site: string; device: string; ts_ms: string }>`
      SELECT s.name AS site, d.external_id AS device, (extract(epoch FROM r.ts) * 1000)::bigint::text AS ts_ms
      FROM readings r JOIN devices d ON d.id = r.device_id JOIN sites s ON s.id = r.site_id`.execute(
      service.storage.db,
    );
    const stored = new Map<string, Set<string>>();
    for (const r of rows) {
      const keys = stored.get(r.site) ?? new Set<string>();
      stored.set(r.site, keys);
      keys.add(readingKey(r.device, Number(r.ts_ms)));
    }
    expect(rows.length).toBe([...stored.values()].reduce((n, s) => n + s.size, 0)); // nothing twice
    for (const [site, acked] of fleet.acknowledged()) {
      const keys = stored.get(site) ?? new Set<string>();
      expect({ site, missing: [...acked].filter((k) => !keys.has(k)).length }).toEqual({ site, missing: 0 });
      expect({ site, extra: [...keys].filter((k) => !acked.has(k)).length }).toEqual({ site, extra: 0 });
    }
    expect(rows.length).toBe(counters.total.acknowledged);
  }, 60_000);
});
