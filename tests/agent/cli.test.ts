import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../src/agent/config.ts';
import { runAgentCli } from '../../src/agent/main.ts';

const EXAMPLE = path.join(import.meta.dirname, '../../deploy/agent/site.example.yaml');
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'hashwatt-agent-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(argv: string[], env: Record<string, string> = {}) {
  let stdout = '';
  let stderr = '';
  const code = await runAgentCli(argv, {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    env,
    stopSignal: () => Promise.resolve('SIGTERM'),
  });
  return { code, stdout, stderr };
}

describe('hashwatt agent', () => {
  it('prints its usage', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('hashwatt agent --config site.yaml');
    expect(r.stdout).toContain('hashwatt agent discover');
  });

  it('checks the shipped example and lists what it would poll', async () => {
    const r = await run(['--config', EXAMPLE, '--check'], { HASHWATT_SITE_TOKEN: 'x'.repeat(40) });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/hashwatt\s+https:\/\/hashwatt\.example\.com \(WebSocket, HTTP fallback\)/);
    // 10.10.1.0/24 without its network and broadcast addresses, and 10.10.2.10-80.
    expect(r.stdout).toMatch(/\s325\s+miners \(auto\)/);
    expect(r.stdout).toMatch(/\s1\s+miners \(cgminer\)/);
    expect(r.stdout).toMatch(/\s1\s+gpu hosts \(dcgm\)/);
    expect(r.stdout).toMatch(/\s1\s+meters \(modbus schneider-pm5560\)/);
    expect(r.stdout).toMatch(/\s1\s+pdus \(modbus custom\)/);
    const c = parseAgentConfig(readFileSync(EXAMPLE, 'utf8'), {
      source: EXAMPLE,
      env: { HASHWATT_SITE_TOKEN: 't' },
      readFile: () => '',
    });
    expect(c.targets.filter((t) => t.type === 'miner')).toHaveLength(254 + 71 + 1);
    expect(c.targets.filter((t) => t.type === 'gpu').map((t) => t.id)).toEqual([
      'gpu:node-001',
      'gpu:node-002',
    ]);
  });

  it('stops with one line per problem and exit status 2', async () => {
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, 'hashwatt: { url: "http://h", token: t }\nminers: [{ range: 10.0.0.0/8 }]\n');
    const r = await run(['--config', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      'hashwatt agent: bad.yaml: miners[0].range: "10.0.0.0/8" has 16777214 addresses, more than 65536',
    );
    expect((await run(['--config', path.join(dir, 'none.yaml')])).stderr).toContain('cannot read');
    expect((await run([])).code).toBe(2);
    expect((await run(['frobnicate'])).stderr).toContain('unknown command "frobnicate"');
    expect((await run(['--bogus'])).code).toBe(2);
    expect((await run(['discover'])).stderr).toContain('give --range');
  });
});
