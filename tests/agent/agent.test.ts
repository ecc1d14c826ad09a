import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { SimulatedGpuHost } from '../../simulators/protocols/gpu-host.ts';
import type { SimulatedMiner } from '../../simulators/protocols/miner.ts';
import { ProtocolSite } from '../../simulators/protocols/site.ts';
import { loadScenario } from '../../simulators/scenario.ts';
import { Agent } from '../../src/agent/agent.ts';
import { parseAgentConfig } from '../../src/agent/config.ts';
import type { RunningService } from '../../src/service.ts';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import { createSite, startTestService } from '../support/service.ts';
import { startMiner, waitFor } from './support.ts';

// This file's loopback block: 127.0.12.0/24.
let db: TestDatabase;
let service: RunningService;
let site: ProtocolSite;
let agent: Agent;
let spoolDir: string;
const broken: SimulatedMiner[] = [];
let smiHost: SimulatedGpuHost;

beforeAll(async () => {
  db = await createTestDatabase('postgres');
  service = await startTestService(db);
  const { token } = await createSite(service.url, 'agent-site', 'mixed', 2000);
  const spec = loadScenario('demo', { scale: 0.05, sites: ['demo-mixed-nordics'] }).sites[0]!;
  site = await ProtocolSite.start({
    site: spec,
    intervalS: 1,
    minerBase: '127.0.12.1',
    gpuSource: 'dcgm',
    gpuBase: '127.0.12.150',
  });
  broken.push(
    await startMiner({ api: 'antminer', fault: { kind: 'hang' } }, { host: '127.0.12.201', port: 4028 }),
    await startMiner({ api: 'antminer', fault: { kind: 'reset' } }, { host: '127.0.12.202', port: 4028 }),
  );
  spoolDir = mkdtempSync(path.join(tmpdir(), 'hashwatt-agent-test-'));
  // A GPU server read through (the fake) nvidia-smi, as on a node without an exporter.
  smiHost = new SimulatedGpuHost({
    name: 'node-smi',
    index: 9,
    model: 'H100 SXM',
    source: 'nvidia-smi',
    stateDir: spoolDir,
  });
  smiHost.update({
    name: 'node-smi',
    model: 'H100 SXM',
    itPowerW: 8000,
    gpus: Array.from({ length: 8 }, (_, g) => ({
      utilPct: 80 + g,
      powerW: 640 + g,
      memUsedBytes: 5e10,
      tempC: 61,
      status: 'ok' as const,
    })),
  });
  await smiHost.listen();
  const sections = site.agentSections();
  const text = stringify({
    hashwatt: { url: service.url, token },
    spool: { dir: spoolDir },
    health: { listen: '127.0.0.1:0' },
    poll: {
      miners: { interval_s: 0.5, timeout_s: 0.4 },
      meters: { interval_s: 0.5 },
      gpus: { interval_s: 0.5 },
    },
    miners: [
      ...sections.miners,
      { address: '127.0.12.200', name: 'dead-miner' }, // nothing listens: refused on 4028 and 4433
      { address: '127.0.12.201', name: 'hung-miner', api: 'cgminer', port: 4028 },
      { address: '127.0.12.202', name: 'resetting-miner', api: 'cgminer', port: 4028 },
    ],
    meters: sections.meters,
    gpus: [...sections.gpus, { name: 'node-smi', nvidia_smi: smiHost.nvidiaSmiCommand(), interval_s: 1 }],
    log_level: 'silent',
  });
  agent = await Agent.start(
    parseAgentConfig(text, { source: path.join(spoolDir, 'site.yaml'), env: {}, readFile: () => '' }),
  );
});

afterAll(async () => {
  await agent?.stop({ flushMs: 0 });
  await site?.stop();
  await Promise.all(broken.map((m) => m.close()));
  await service?.stop();
  await db?.dispose();
  if (spoolDir) rmSync(spoolDir, { recursive: true, force: true });
});

const polls = (target: string) => agent.status().targets.find((t) => t.target === target)!;

async function stored(
  device: string,
): Promise<{ status: string | null; hashrate: number | null; shares: number | null }[]> {
  const { rows } = await sql<{ status: string | null; hashrate: number | null; shares: number | null }>`
    SELECT r.status, r.hashrate_ths AS hashrate, x.shares_accepted_total AS shares
    FROM readings r JOIN devices d ON d.id = r.device_id
    LEFT JOIN readings_extra x ON x.device_id = r.device_id AND x.ts = r.ts
    WHERE d.external_id = ${device} ORDER BY r.ts`.execute(service.storage.db);
  return rows;
}

describe('the agent against a real hashwatt and protocol-faithful devices', () => {
  it('reports dead, hung and resetting miners offline (not skipped), a lost GPU offline, and its own health', async () => {
    expect(await waitFor(() => agent.status().targets.every((t) => t.polls >= 3), 30_000)).toBe(true);
    // A GPU falls off the bus: dcgm-exporter stops listing it.
    const gpuHost = site.gpuHosts[0]!;
    gpuHost.fallOffBus(5);
    const gpuPolls = polls(gpuHost.name).polls;
    expect(await waitFor(() => polls(gpuHost.name).polls >= gpuPolls + 2, 10_000)).toBe(true);

    const metrics = await (await fetch(agent.healthUrl!)).text();
    const status = agent.status();
    const { drained } = await agent.stop({ flushMs: 10_000 });
    expect(drained).toBe(true);

    for (const [name, reason] of [
      ['dead-miner', 'refused'],
      ['hung-miner', 'timeout'],
      ['resetting-miner', 'reset'],
    ] as const) {
      const t = status.targets.find((x) => x.target === name)!;
      expect(t).toMatchObject({ up: false, lastError: expect.stringMatching(new RegExp(`^${reason}`)) });
      const rows = await stored(name);
      // Every poll left an offline reading: the service counts the miner down, it does not vanish.
      expect(rows.length).toBeGreaterThanOrEqual(t.polls);
      expect(new Set(rows.map((r) => r.status))).toEqual(new Set(['offline']));
      expect(metrics).toContain(
        `hashwatt_agent_target_up{collector="${name === 'dead-miner' ? 'auto' : 'cgminer'}",target="${name}"} 0`,
      );
      expect(metrics).toMatch(
        new RegExp(
          `hashwatt_agent_poll_failures_total\\{collector="(auto|cgminer)",reason="${reason}"\\} [1-9]`,
        ),
      );
    }

    // Each healthy miner: one stored reading per summary it served, with the shares it served.
    for (const m of site.miners) {
      const rows = await stored(m.device);
      expect({ device: m.device, stored: rows.map((r) => Number(r.shares)) }).toEqual({
        device: m.device,
        stored: m.served.map((s) => s.sharesAccepted),
      });
      expect(rows.every((r) => r.status === 'ok')).toBe(true);
    }

    const gpu5 = await sql<{ status: string | null }>`
      SELECT r.status FROM readings r JOIN devices d ON d.id = r.device_id
      WHERE d.external_id = ${`${gpuHost.name}/gpu5`} ORDER BY r.ts DESC LIMIT 1`.execute(service.storage.db);
    expect(gpu5.rows[0]?.status).toBe('offline');

    // nvidia-smi's GPUs: every poll, eight readings with the power it printed.
    const smi = await sql<{ device: string; n: string; power: number }>`
      SELECT d.external_id AS device, count(*)::text AS n, max(r.power_w) AS power FROM readings r
      JOIN devices d ON d.id = r.device_id WHERE d.external_id LIKE 'node-smi/%' GROUP BY 1 ORDER BY 1`.execute(
      service.storage.db,
    );
    expect(smi.rows.map((r) => [r.device, r.power])).toEqual(
      Array.from({ length: 8 }, (_, g) => [`node-smi/gpu${g}`, 640 + g]),
    );
    const smiPolls = status.targets.find((t) => t.target === 'node-smi')!.polls;
    for (const r of smi.rows) expect(Number(r.n)).toBeGreaterThanOrEqual(smiPolls);
    expect(metrics).toMatch(/hashwatt_agent_polls_total\{collector="nvidia-smi",outcome="ok"\} [1-9]/);

    expect(metrics).toMatch(/hashwatt_agent_last_ack_timestamp_seconds [1-9]/);
    expect(metrics).toMatch(/hashwatt_agent_spool_readings \d/);
    expect(metrics).toMatch(/hashwatt_agent_readings_total\{stage="acknowledged"\} [1-9]/);
    expect(metrics).toMatch(/hashwatt_agent_polls_total\{collector="modbus",outcome="ok"\} [1-9]/);
    expect(metrics).toContain('hashwatt_agent_transport{transport="ws"} 1');
    const final = agent.status().delivery;
    expect(final.acknowledged).toBe(final.generated);
    expect(final.rejected).toBe(0);
  }, 60_000);
});
