import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { provisionSites } from './agent/provision.ts';
import { loadScenario } from './scenario.ts';
import { type FakeService, startFakeService } from './testing/fake-service.ts';

const CLI = join(import.meta.dirname, 'cli.ts');
let fake: FakeService | null = null;

afterEach(async () => {
  await fake?.close();
  fake = null;
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(
  args: string[],
  env: Record<string, string> = {},
  onStart?: (child: ChildProcess, stderr: () => string) => void,
): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    onStart?.(child, () => stderr);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('cli', () => {
  it('explains itself with --help', async () => {
    const run = await cli(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/Usage: node simulators\/cli\.ts --scenario/);
    expect(run.stdout).toMatch(/--admin-token/);
    expect(run.stdout).toMatch(/demo, load, outage, surplus/);
  });

  it('fails with a message naming the bad field of a scenario file', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'hashwatt-cli-')), 'bad.json');
    writeFileSync(
      file,
      JSON.stringify({ name: 'bad', sites: [{ name: 'a', kind: 'farm', capacity_kw: 1, devices: {} }] }),
    );
    const run = await cli(['--scenario', file, '--tokens', 'a=t']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/sites\[0\]\.kind/);
    const usage = await cli(['--scenario', 'demo', '--bogus']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/bogus/);
  });

  it('provisions the sites with the admin token, runs and prints the final counters', async () => {
    fake = await startFakeService({ adminToken: 'admin' });
    const run = await cli(
      [
        '--scenario',
        'demo',
        '--scale',
        '0.02',
        '--interval',
        '0.25',
        '--duration',
        '1.5',
        '--seed',
        '9',
        '--json',
      ],
      { HASHWATT_URL: fake.url, HASHWATT_ADMIN_TOKEN: 'admin' },
    );
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as {
      total: { generated: number; acknowledged: number; rejected: number };
    };
    expect(out.total.generated).toBeGreaterThan(50);
    expect(out.total.acknowledged).toBe(out.total.generated);
    expect(out.total.rejected).toBe(0);
    expect(run.stderr).toMatch(/provisioned 3 site\(s\)/);
    expect(fake.stored('demo-ai-oregon').size).toBeGreaterThan(0);
  });

  it('on SIGINT stops, flushes and prints the summary', async () => {
    fake = await startFakeService({ adminToken: 'admin' });
    const scenario = loadScenario('outage');
    const tokens = await provisionSites({ url: fake.url, adminToken: 'admin', scenario });
    const run = await cli(
      [
        '--scenario',
        'outage',
        '--url',
        fake.url,
        '--scale',
        '0.05',
        '--interval',
        '0.2',
        '--duration',
        '0',
        '--quiet',
      ],
      {
        HASHWATT_SITE_TOKENS: Object.entries(tokens)
          .map(([s, t]) => `${s}=${t}`)
          .join(','),
      },
      (child, stderr) => {
        const timer = setInterval(() => {
          if (/simulating "outage"/.test(stderr())) {
            clearInterval(timer);
            setTimeout(() => child.kill('SIGINT'), 600);
          }
        }, 20);
      },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/SIGINT: stopping, flushing/);
    expect(run.stdout).toMatch(/^site\s+generated\s+sent\s+acknowledged/m);
    expect(run.stdout).toMatch(/^total\s/m);
    expect(fake.stored('outage-mining-wy').size).toBeGreaterThan(0);
  });

  it('runs the whole duration asked, not until the last reading is due', async () => {
    fake = await startFakeService({ adminToken: 'admin' });
    // At a 1.5 s interval the last reading of a 2 s run is stamped at 1.5 s; the run lasts 2 s.
    const run = await cli(
      [
        '--scenario',
        'demo',
        '--sites',
        'demo-mining-tx',
        '--scale',
        '0.02',
        '--interval',
        '1.5',
        '--duration',
        '2',
        '--json',
      ],
      { HASHWATT_URL: fake.url, HASHWATT_ADMIN_TOKEN: 'admin' },
    );
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { elapsed_ms: number; total: { generated: number } };
    expect(out.elapsed_ms).toBeGreaterThanOrEqual(2000);
    expect(out.total.generated).toBeGreaterThan(0);
  });

  it('says so and exits 1 when readings are left unacknowledged after the drain', async () => {
    // The first request is acknowledged, every later one refused with 503: the run delivered
    // something, so only the unacknowledged rest can make it fail.
    fake = await startFakeService({
      adminToken: 'admin',
      onIngest: (n) => (n <= 1 ? { kind: 'ok' } : { kind: 'status', status: 503 }),
    });
    const run = await cli(
      [
        '--scenario',
        'demo',
        '--sites',
        'demo-mining-tx',
        '--scale',
        '0.02',
        '--interval',
        '0.25',
        '--duration',
        '1',
        '--flush-ms',
        '300',
        '--json',
      ],
      { HASHWATT_URL: fake.url, HASHWATT_ADMIN_TOKEN: 'admin' },
    );
    expect(run.code, run.stderr).toBe(1);
    const out = JSON.parse(run.stdout) as { total: { acknowledged: number; buffered: number } };
    expect(out.total.acknowledged).toBeGreaterThan(0);
    expect(out.total.buffered).toBeGreaterThan(0);
    expect(run.stderr).toMatch(
      /simulate: [\d,]+ of [\d,]+ readings were never acknowledged \([\d,]+ still buffered after the 300 ms drain/,
    );
  });
});
