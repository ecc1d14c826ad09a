import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../src/alerting/testing.ts';
import { formatAlerts, formatSites, formatTable, parseSiteRef } from '../src/cli-format.ts';
import type { RunningService } from '../src/service.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { ADMIN_TOKEN, asicReading, postReadings, startTestService } from './support/service.ts';

// The `hashwatt` command as a user runs it (bin/hashwatt.js in a child process) against a real
// service on real Postgres.

const BIN = join(import.meta.dirname, '..', 'bin', 'hashwatt.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let db: TestDatabase;
let service: RunningService;

function hashwatt(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH ?? '', HASHWATT_URL: service.url, HASHWATT_ADMIN_TOKEN: ADMIN_TOKEN },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function ok(...args: string[]): Promise<string> {
  const run = await hashwatt(...args);
  expect(run.code, `hashwatt ${args.join(' ')}: ${run.stderr}`).toBe(0);
  return run.stdout;
}

beforeAll(async () => {
  db = await createTestDatabase('postgres');
  service = await startTestService(db, {
    env: { HASHWATT_ALERT_INTERVAL_S: '1', HASHWATT_ALERT_THRESHOLDS: '{"site_down_after_s":1}' },
  });
});
afterAll(async () => {
  await service?.stop();
  await db?.dispose();
});

describe('hashwatt sites', () => {
  it('create --token-only prints just the token, so $(...) can capture it, and it ingests', async () => {
    const out = await ok(
      'sites',
      'create',
      '--name',
      'alpha',
      '--kind',
      'mining',
      '--capacity-kw',
      '5000',
      '--token-only',
    );
    const token = out.trim();
    expect(out).toBe(`${token}\n`);
    expect(token).not.toMatch(/\s/);
    const ingest = await postReadings(service.url, token, [asicReading('hall-a/r03/s21-017', Date.now())]);
    expect(ingest.status).toBe(200);
  });

  it('list draws a table; --json gives the sites as JSON', async () => {
    await ok(
      'sites',
      'create',
      '--name',
      'beta-ai',
      '--kind',
      'ai',
      '--capacity-kw',
      '180',
      '--region',
      'us-or',
    );
    const table = (await ok('sites', 'list')).trimEnd().split('\n');
    expect(table[0]).toMatch(/^id\s+name\s+kind\s+capacity_kw\s+region\s+timezone$/);
    expect(table.some((l) => /^\s*\d+\s+alpha\s+mining\s+5,000\s+–/.test(l))).toBe(true);
    expect(table.some((l) => /^\s*\d+\s+beta-ai\s+ai\s+180\s+us-or/.test(l))).toBe(true);
    const json = JSON.parse(await ok('sites', 'list', '--json')) as { name: string; capacity_kw: number }[];
    expect(json.map((s) => s.name).sort()).toEqual(['alpha', 'beta-ai']);
  });

  it('takes a name wherever it takes an id', async () => {
    const shown = JSON.parse(await ok('sites', 'show', 'beta-ai')) as { site: { id: number; name: string } };
    expect(shown.site.name).toBe('beta-ai');
    const byId = JSON.parse(await ok('sites', 'show', String(shown.site.id))) as { site: { name: string } };
    expect(byId.site.name).toBe('beta-ai');
    const updated = JSON.parse(await ok('sites', 'update', 'beta-ai', '--capacity-kw', '200')) as {
      site: { capacity_kw: number };
    };
    expect(updated.site.capacity_kw).toBe(200);
    const rotated = (await ok('sites', 'rotate-token', 'beta-ai', '--token-only')).trim();
    expect(rotated.length).toBeGreaterThan(16);
    const missing = await hashwatt('sites', 'show', 'no-such-site');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('hashwatt: no site named "no-such-site" (hashwatt sites list shows them)\n');
  });

  it('a delete that needs a purge names the CLI flag --purge, not the API parameter', async () => {
    const refused = await hashwatt('sites', 'delete', 'alpha');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('hashwatt sites delete alpha --purge');
    expect(refused.stderr).not.toContain('?purge=true');
    expect(await ok('sites', 'delete', 'alpha', '--purge')).toBe('deleted\n');
    expect(await ok('sites', 'delete', 'beta-ai')).toBe('deleted\n'); // no data: no purge needed
    expect((await ok('sites', 'list')).trim()).toMatch(/^no sites yet/);
  });
});

describe('hashwatt alerts', () => {
  it('lists the firing alerts as a table, --state picks others, --json gives JSON', async () => {
    const token = (
      await ok(
        'sites',
        'create',
        '--name',
        'gamma',
        '--kind',
        'mining',
        '--capacity-kw',
        '100',
        '--token-only',
      )
    ).trim();
    expect((await postReadings(service.url, token, [asicReading('r1', Date.now())])).status).toBe(200);
    expect((await ok('alerts', '--state', 'resolved')).trim()).toBe('no resolved alerts');
    // One reading and then silence: SiteDown fires after site_down_after_s (1 s) and an evaluation.
    const table = await waitFor(
      'SiteDown firing in `hashwatt alerts`',
      async () => {
        const out = await ok('alerts');
        return /gamma\s+SiteDown\s+critical\s+firing/.test(out) ? out : undefined;
      },
      30_000,
      500,
    );
    expect(table.split('\n')[0]).toMatch(/^site\s+alert\s+severity\s+state\s+since/);
    const json = JSON.parse(await ok('alerts', '--site', 'gamma', '--json')) as {
      alertname: string;
      state: string;
    }[];
    expect(json).toContainEqual(expect.objectContaining({ alertname: 'SiteDown', state: 'firing' }));
    const bad = await hashwatt('alerts', '--state', 'loud');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--state must be one of firing, pending, resolved, all');
  });
});

describe('the CLI formatting rules', () => {
  it('reads a canonical decimal as an id and anything else as a name', () => {
    expect(parseSiteRef('44')).toEqual({ id: 44 });
    for (const name of ['44.0', '0x2c', '044', 'alpha', '1e3', '12345678901'])
      expect(parseSiteRef(name)).toEqual({ name });
  });

  it('pads columns and right-aligns numeric ones', () => {
    expect(
      formatTable(
        ['id', 'name'],
        [
          ['7', 'a'],
          ['12', 'bb'],
        ],
      ),
    ).toBe('id  name\n 7  a\n12  bb');
    expect(formatSites([])).toMatch(/^no sites yet/);
    expect(formatAlerts([], 'firing')).toBe('no firing alerts');
    expect(formatAlerts([], 'all')).toBe('no alerts');
  });
});
