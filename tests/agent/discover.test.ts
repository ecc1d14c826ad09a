import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { SimulatedMiner } from '../../simulators/protocols/miner.ts';
import { discoverMiners } from '../../src/agent/discover.ts';
import { runAgentCli } from '../../src/agent/main.ts';
import { startMiner } from './support.ts';

// Miners at their real ports on addresses of their own in 127.0.10.0/24 (this file's block).
const FLEET = [
  { host: '127.0.10.2', api: 'antminer', model: 'S21', firmware: 'antminer' },
  { host: '127.0.10.3', api: 'braiins', model: 'S19j Pro', firmware: 'braiins' },
  { host: '127.0.10.5', api: 'luxos', model: 'S19 XP', firmware: 'luxos' },
  { host: '127.0.10.7', api: 'whatsminer', model: 'M60S', firmware: 'whatsminer' },
  { host: '127.0.10.8', api: 'whatsminer-v3', model: 'M60S', firmware: 'whatsminer-v3' },
] as const;

const miners: SimulatedMiner[] = [];

beforeAll(async () => {
  for (const m of FLEET)
    miners.push(
      await startMiner(
        { api: m.api },
        { host: m.host, port: m.api === 'whatsminer-v3' ? 4433 : 4028, model: m.model },
      ),
    );
  // An API thread that is wedged: it takes the connection and never answers.
  miners.push(
    await startMiner({ api: 'antminer', fault: { kind: 'hang' } }, { host: '127.0.10.9', port: 4028 }),
  );
});

afterAll(async () => {
  await Promise.all(miners.map((m) => m.close()));
});

describe('discovery on loopback', () => {
  it('finds every miner in the range with its firmware, at bounded concurrency', async () => {
    const hosts = Array.from({ length: 30 }, (_, i) => `127.0.10.${i + 1}`);
    const result = await discoverMiners({ hosts, concurrency: 4, timeoutMs: 400, connectTimeoutMs: 200 });
    expect(result.found.map((f) => [f.host, f.port, f.firmware, f.model])).toEqual([
      ['127.0.10.2', 4028, 'antminer', 'S21'],
      ['127.0.10.3', 4028, 'braiins', undefined], // bosminer's version names no model
      ['127.0.10.5', 4028, 'luxos', 'S19 XP'],
      ['127.0.10.7', 4028, 'whatsminer', undefined],
      ['127.0.10.8', 4433, 'whatsminer-v3', 'M60S'],
    ]);
    expect(result.found.find((f) => f.host === '127.0.10.2')?.version).toBe('1.0.0');
    expect(result.probes).toBe(60);
    expect(result.skipped).toBe(0);
    expect(result.maxConcurrent).toBeLessThanOrEqual(4);
    expect(result.maxConcurrent).toBeGreaterThan(1);
  });

  it('stops at its deadline and says how many probes it did not make', async () => {
    // The hung miner takes each probe's whole timeout: with one at a time, the deadline comes first.
    const hosts = Array.from({ length: 20 }, () => '127.0.10.9');
    const result = await discoverMiners({ hosts, concurrency: 1, timeoutMs: 200, deadlineMs: 500 });
    expect(result.skipped).toBeGreaterThan(0);
    expect(result.probes).toBe(40);
    expect(result.found).toEqual([]);
  });

  it('`hashwatt agent discover --yaml` prints a miners block site.yaml takes', async () => {
    let out = '';
    const code = await runAgentCli(['discover', '--range', '127.0.10.1-8', '--yaml', '--timeout-ms', '400'], {
      stdout: { write: (t: string) => (out += t) },
      stderr: { write: () => true },
      env: {},
    });
    expect(code).toBe(0);
    expect(parse(out)).toEqual({
      miners: [
        { address: '127.0.10.2', api: 'cgminer' },
        { address: '127.0.10.3', api: 'cgminer' },
        { address: '127.0.10.5', api: 'cgminer' },
        { address: '127.0.10.7', api: 'cgminer' },
        { address: '127.0.10.8', api: 'whatsminer-v3' },
      ],
    });
  });
});
