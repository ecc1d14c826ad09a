import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultBehaviour, ProtocolSite } from '../../simulators/protocols/site.ts';
import { parseScenario } from '../../simulators/scenario.ts';
import type { RunningService } from '../../src/service.ts';
import { AgentProcess, storedReadings } from '../agent/agent-process.ts';
import { waitFor } from '../agent/support.ts';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import { createSite, startTestService } from '../support/service.ts';

// The whole real path: 200 simulated ASICs answering their firmware's API on their own loopback
// addresses (127.0.20.1 …, ports 4028 and 4433), a Modbus TCP site meter with the grid's allowance
// on a second unit, the `hashwatt agent` program polling them and pushing over WebSocket to a real
// hashwatt on Postgres. Every device counts the replies it served; the readings stored must be
// exactly those, each once.

const SITE = 'agent-e2e';
const MINERS = { S21: 80, 'S19 XP': 60, M60S: 60 } as const;

let db: TestDatabase;
let service: RunningService;
let site: ProtocolSite;
let agent: AgentProcess;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase('postgres');
  service = await startTestService(db);
  const { token } = await createSite(service.url, SITE, 'mining', 2000);
  const scenario = parseScenario({
    name: 'agent-e2e',
    random_failures: false,
    sites: [{ name: SITE, kind: 'mining', capacity_kw: 2000, devices: { asic: MINERS }, meter: true }],
  });
  site = await ProtocolSite.start({
    site: scenario.sites[0]!,
    intervalS: 1,
    minerBase: '127.0.20.1',
    gridSignalUnitId: 2,
    // The firmware mix of a real site, and on every seventh miner the worst of what firmware writes.
    behaviour: (index, model) => ({
      ...defaultBehaviour(index, model),
      ...(index % 7 === 0 && { quirks: ['leading_comma', 'non_finite', 'control_char'], nonFinite: true }),
    }),
  });
  dir = mkdtempSync(path.join(tmpdir(), 'hashwatt-agent-e2e-'));
  const sections = site.agentSections();
  agent = await AgentProcess.start(dir, {
    hashwatt: { url: service.url, token },
    spool: { dir: path.join(dir, 'spool') },
    poll: {
      concurrency: 64,
      miners: { interval_s: 2, timeout_s: 2 },
      meters: { interval_s: 1, timeout_s: 1 },
    },
    ...sections,
    log_level: 'warn',
  });
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await site?.stop();
  await service?.stop();
  await db?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('hashwatt agent end to end: 200 miners and a meter on their real protocols', () => {
  it('stores exactly the replies the devices served, each once, with the values they served', async () => {
    expect(site.miners).toHaveLength(200);
    const apis = new Set(site.miners.map((m) => m.behaviour.api));
    expect(apis).toEqual(new Set(['antminer', 'braiins', 'luxos', 'whatsminer', 'whatsminer-v3']));

    // Run until every miner has answered a few polls.
    const enough = await waitFor(() => site.miners.every((m) => m.served.length >= 4), 90_000, 200);
    expect(enough).toBe(true);
    const page = await agent.metrics();
    // Stopped as an operator stops it: polls under way finish, the spool is delivered.
    const exit = await agent.signal('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(page).toMatch(/hashwatt_agent_targets\{collector="auto",state="up"\} 200/);

    const stored = await storedReadings(db.url!, SITE);
    let served = 0;
    let storedOk = 0;
    const mismatches: string[] = [];
    for (const m of site.miners) {
      const rows = stored.get(m.device) ?? [];
      served += m.served.length;
      storedOk += rows.filter((r) => r.status === 'ok').length;
      if (rows.some((r) => r.status !== 'ok')) mismatches.push(`${m.device}: a reading not ok`);
      const servedShares = m.served.map((s) => s.sharesAccepted);
      const storedShares = rows.map((r) => r.sharesAccepted);
      if (JSON.stringify(servedShares) !== JSON.stringify(storedShares))
        mismatches.push(
          `${m.device} (${m.behaviour.api}): served ${servedShares.join(',')} stored ${storedShares.join(',')}`,
        );
      rows.forEach((r, i) => {
        const s = m.served[i];
        if (s && Math.abs((r.hashrateThs ?? -1) - s.hashrateThs) > 1e-6)
          mismatches.push(`${m.device}: hashrate ${r.hashrateThs} stored for ${s.hashrateThs} served`);
        if (s?.powerW !== undefined && r.powerW !== s.powerW)
          mismatches.push(`${m.device}: power ${r.powerW} for ${s.powerW}`);
      });
    }
    expect(mismatches).toEqual([]);
    expect(storedOk).toBe(served);
    expect(served).toBeGreaterThanOrEqual(800);

    // The meter: one stored reading per read of its power register, with the power it held and
    // the allowance its grid-signal unit published.
    const meter = site.meter!;
    const meterRows = stored.get(site.meterDevice) ?? [];
    expect(meterRows.length).toBe(meter.served.length);
    expect(meterRows.length).toBeGreaterThan(5);
    for (const [i, r] of meterRows.entries()) expect(r.powerW).toBeCloseTo(meter.served[i]!.powerW, 2);

    // Nothing stored that nobody served: every device of the site is a simulated one.
    expect([...stored.keys()].sort()).toEqual([...site.miners.map((m) => m.device), site.meterDevice].sort());
  }, 180_000);
});
