import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServedSummary } from '../../simulators/protocols/miner.ts';
import { ProtocolSite } from '../../simulators/protocols/site.ts';
import { parseScenario } from '../../simulators/scenario.ts';
import { AgentProcess, type StoredReading, storedReadings } from '../agent/agent-process.ts';
import { waitFor } from '../agent/support.ts';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import { createSite } from '../support/service.ts';
import { HashwattProcess } from './support/process.ts';

// The agent killed with SIGKILL while hashwatt is down (killed too), then both started again:
// everything the agent had read must reach the database, each reading once. Only a poll under way
// at the instant of the kill (its reply served, its reading not yet spooled) may be missing, and
// then only the last reply of that device before the kill.

const SITE = 'agent-kill';
const POLL_TIMEOUT_MS = 1000;

let db: TestDatabase;
let hashwatt: HashwattProcess;
let devices: ProtocolSite;
let agent: AgentProcess;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase('postgres');
  hashwatt = await HashwattProcess.start(db.url!);
  const { token } = await createSite(hashwatt.url, SITE, 'mining', 1000);
  const scenario = parseScenario({
    name: SITE,
    random_failures: false,
    sites: [
      {
        name: SITE,
        kind: 'mining',
        capacity_kw: 1000,
        devices: { asic: { S21: 30, 'S19 XP': 10, M60S: 20 } },
      },
    ],
  });
  devices = await ProtocolSite.start({ site: scenario.sites[0]!, intervalS: 1, minerBase: '127.0.30.1' });
  dir = mkdtempSync(path.join(tmpdir(), 'hashwatt-agent-kill-'));
  agent = await AgentProcess.start(dir, {
    hashwatt: { url: hashwatt.url, token },
    spool: { dir: path.join(dir, 'spool'), sync_interval_ms: 100 },
    poll: {
      miners: { interval_s: 1, timeout_s: POLL_TIMEOUT_MS / 1000 },
      meters: { interval_s: 1, timeout_s: 1 },
    },
    // hashwatt's return noticed within a second, not the default half minute.
    delivery: { retry_max_s: 1 },
    ...devices.agentSections(),
    log_level: 'warn',
  });
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await devices?.stop();
  await hashwatt?.stop();
  await db?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const acknowledged = () => agent.metric('hashwatt_agent_readings_total{stage="acknowledged"}');
const spooled = async () => (await agent.metric('hashwatt_agent_spool_readings')) ?? 0;

/** Served replies of a device, as (shares, when) pairs; stored readings' shares. */
function compare(
  served: readonly { sharesAccepted: number; atMs: number }[],
  stored: readonly StoredReading[],
) {
  const remaining = new Map<number, number>();
  for (const r of stored) remaining.set(r.sharesAccepted!, (remaining.get(r.sharesAccepted!) ?? 0) + 1);
  const missing: { sharesAccepted: number; atMs: number; last: boolean }[] = [];
  served.forEach((s, i) => {
    const n = remaining.get(s.sharesAccepted) ?? 0;
    if (n > 0) remaining.set(s.sharesAccepted, n - 1);
    else missing.push({ ...s, last: i === served.length - 1 });
  });
  const extra = [...remaining.values()].reduce((a, b) => a + b, 0);
  return { missing, extra };
}

describe('reliability: the agent killed with SIGKILL while hashwatt is down', () => {
  it('loses nothing it had read: the spool survives the kill, is resent on start, and each reading is stored once', async () => {
    expect(await waitFor(async () => ((await acknowledged()) ?? 0) > 150, 30_000, 200)).toBe(true);

    // hashwatt dies mid-stream: frames in flight are lost with it; the agent spools on.
    expect((await hashwatt.signal('SIGKILL')).signal).toBe('SIGKILL');
    expect(await waitFor(async () => (await spooled()) >= 300, 30_000, 200)).toBe(true);
    const depthBeforeKill = await spooled();

    // The agent dies too, with a spool full of unacknowledged readings and polls under way.
    const servedBefore = new Map(devices.miners.map((m) => [m.device, m.served.length]));
    const meterBefore = devices.meter!.served.length;
    const killedAt = Date.now();
    expect((await agent.signal('SIGKILL')).signal).toBe('SIGKILL');
    const servedAtKill = new Map(devices.miners.map((m) => [m.device, m.served.length]));

    // It starts again on the same spool (hashwatt still down), then hashwatt comes back.
    await agent.start();
    const recovered = (await agent.metric('hashwatt_agent_spool_recovered_readings')) ?? 0;
    expect(recovered).toBeGreaterThanOrEqual(depthBeforeKill);
    await hashwatt.start();
    expect(
      await waitFor(
        async () => (await spooled()) === 0 && ((await acknowledged()) ?? 0) > recovered,
        60_000,
        250,
      ),
    ).toBe(true);

    // Stopped for good the way an operator does; then nothing is served any more.
    expect(await agent.signal('SIGTERM')).toEqual({ code: 0, signal: null });
    await devices.stop();

    const stored = await storedReadings(db.url!, SITE);
    let served = 0;
    let storedCount = 0;
    const lost: string[] = [];
    const problems: string[] = [];
    for (const m of devices.miners) {
      const rows = stored.get(m.device) ?? [];
      served += m.served.length;
      storedCount += rows.length;
      if (rows.some((r) => r.status !== 'ok')) problems.push(`${m.device}: a reading not ok`);
      const { missing, extra } = compare(m.served, rows);
      if (extra > 0) problems.push(`${m.device}: ${extra} stored reading(s) no reply served`);
      for (const x of missing) {
        const index = m.served.findIndex(
          (s: ServedSummary) => s.sharesAccepted === x.sharesAccepted && s.atMs === x.atMs,
        );
        // Only a reply served in the last poll before the kill, and the last one before it, may be gone.
        const inFlight =
          index === servedAtKill.get(m.device)! - 1 && x.atMs >= killedAt - POLL_TIMEOUT_MS - 250;
        if (inFlight) lost.push(`${m.device}@${x.atMs - killedAt}ms`);
        else
          problems.push(`${m.device}: reply #${index} (${x.atMs - killedAt} ms from the kill) never stored`);
      }
    }
    expect(problems).toEqual([]);
    expect(storedCount).toBe(served - lost.length);
    // Polls run one at a time per miner: at most one reading per miner can be under way at the kill.
    expect(lost.length).toBeLessThanOrEqual(devices.miners.length);
    const meterRows = stored.get(devices.meterDevice) ?? [];
    expect(devices.meter!.served.length - meterRows.length).toBeGreaterThanOrEqual(0);
    expect(devices.meter!.served.length - meterRows.length).toBeLessThanOrEqual(1);

    // The faults really hit: readings served while hashwatt was down, before the kill, are stored.
    const downWindow = devices.miners.reduce((n, m) => n + servedBefore.get(m.device)!, 0);
    expect(downWindow).toBeGreaterThan(300);
    expect(meterBefore).toBeGreaterThan(0);
    console.log(
      `agent-kill: served ${served}, stored ${storedCount}, under way at the kill ${lost.length} (${lost.slice(0, 5).join(', ')}), spool at kill ≥ ${depthBeforeKill}, recovered ${recovered}`,
    );
  }, 150_000);
});
