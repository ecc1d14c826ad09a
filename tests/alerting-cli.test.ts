import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../src/alerting/testing.ts';
import { formatSilences, parseUntil } from '../src/cli-format.ts';
import type { RunningService } from '../src/service.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { ADMIN_TOKEN, asicReading, postReadings, startTestService } from './support/service.ts';

// `hashwatt alerts ack|unack` and `hashwatt silences …` as a user runs them (bin/hashwatt.js in a
// child process) against a real service on real Postgres, as the admin and as an operator.

const BIN = join(import.meta.dirname, '..', 'bin', 'hashwatt.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let db: TestDatabase;
let service: RunningService;

function hashwatt(env: Record<string, string>, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: {
        PATH: process.env.PATH ?? '',
        HASHWATT_URL: service.url,
        HASHWATT_ADMIN_TOKEN: ADMIN_TOKEN,
        ...env,
      },
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

async function ok(env: Record<string, string>, ...args: string[]): Promise<string> {
  const run = await hashwatt(env, ...args);
  expect(run.code, `hashwatt ${args.join(' ')}: ${run.stderr}`).toBe(0);
  return run.stdout;
}
const asAdmin = (...args: string[]) => ok({}, ...args);

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

describe('hashwatt alerts ack and hashwatt silences', () => {
  it('acknowledges as the operator it is given, and silences, lists and expires', async () => {
    const siteToken = (
      await asAdmin(
        'sites',
        'create',
        '--name',
        'kappa',
        '--kind',
        'mining',
        '--capacity-kw',
        '100',
        '--token-only',
      )
    ).trim();
    const operator = (
      await asAdmin('tokens', 'create', '--name', 'ops-dan', '--role', 'operator', '--token-only')
    ).trim();
    const viewer = (
      await asAdmin('tokens', 'create', '--name', 'wall', '--role', 'viewer', '--token-only')
    ).trim();
    expect(await asAdmin('tokens', 'list')).toMatch(/ops-dan\s+operator\s+all sites/);

    expect((await postReadings(service.url, siteToken, [asicReading('r1', Date.now())])).status).toBe(200);
    const [alert] = await waitFor(
      'SiteDown firing at kappa',
      async () => {
        const list = JSON.parse(await asAdmin('alerts', '--site', 'kappa', '--json')) as {
          id: number;
          state: string;
        }[];
        return list.length > 0 && list;
      },
      30_000,
      500,
    );
    const id = String(alert!.id);

    const refused = await hashwatt({ HASHWATT_TOKEN: viewer }, 'alerts', 'ack', id);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('403 forbidden');

    const acked = await ok({}, 'alerts', 'ack', id, '--comment', 'swapping the uplink', '--token', operator);
    expect(acked).toBe(`acknowledged SiteDown of kappa (alert ${id}) as ops-dan\n`);
    const table = (await asAdmin('alerts')).split('\n');
    expect(table[0]).toMatch(/\bid\b.*\backed by\b.*\bsilenced\b/);
    expect(table.find((l) => l.startsWith('kappa'))).toMatch(new RegExp(`\\b${id}\\b.*ops-dan`));
    expect(await ok({ HASHWATT_TOKEN: operator }, 'alerts', 'unack', id)).toContain('taken back');
    expect(await asAdmin('alerts', 'ack', id)).toContain('as admin');

    const created = await ok(
      { HASHWATT_TOKEN: operator },
      'silences',
      'create',
      '--site',
      'kappa',
      '--alert',
      'SiteDown',
      '--until',
      '2h',
      '--comment',
      'uplink work',
    );
    const silenceId = /^silence (\d+): SiteDown of kappa until /.exec(created)?.[1];
    expect(silenceId, created).toBeDefined();
    const listed = await asAdmin('silences', 'list');
    expect(listed).toMatch(
      new RegExp(`^\\s*${silenceId}\\s+active\\s+kappa\\s+SiteDown\\s+\\S+\\s+ops-dan\\s+uplink work`, 'm'),
    );
    // The alert shows which silence holds it.
    expect((await asAdmin('alerts')).split('\n').find((l) => l.startsWith('kappa'))).toContain(
      `#${silenceId}`,
    );
    const json = JSON.parse(await asAdmin('silences', 'list', '--json')) as { id: number }[];
    expect(json.map((s) => s.id)).toEqual([Number(silenceId)]);

    expect(await ok({ HASHWATT_TOKEN: operator }, 'silences', 'expire', silenceId!)).toMatch(
      new RegExp(`^silence ${silenceId} expired`),
    );
    expect((await asAdmin('silences', 'list')).trim()).toBe('no active silences');
    expect(await asAdmin('silences', 'list', '--state', 'expired')).toMatch(/ops-dan \(expired by ops-dan\)/);

    const everySite = await asAdmin(
      'silences',
      'create',
      '--all-sites',
      '--until',
      '30m',
      '--comment',
      'freeze',
    );
    expect(everySite).toMatch(/every alert of every site/);
  });

  it('says what is missing or wrong before calling the service', async () => {
    const cases: [string[], string][] = [
      [['silences', 'create', '--until', '1h', '--comment', 'x'], '--site SITE, or --all-sites'],
      [
        ['silences', 'create', '--site', 'kappa', '--all-sites', '--until', '1h', '--comment', 'x'],
        '--all-sites',
      ],
      [['silences', 'create', '--site', 'kappa', '--comment', 'x'], 'needs --until'],
      [['silences', 'create', '--site', '1', '--until', 'soon', '--comment', 'x'], '--until "soon"'],
      [['silences', 'create', '--site', '1', '--until', '1h'], 'needs --comment'],
      [['silences', 'expire', 'x'], 'needs a silence id'],
      [['silences', 'list', '--state', 'later'], '--state must be one of active, expired, all'],
      [['alerts', 'ack'], 'needs an alert id'],
      [['alerts', 'unack', '01'], 'needs an alert id'],
      [['alerts', 'mute'], 'unknown command "alerts mute"'],
    ];
    for (const [args, message] of cases) {
      const run = await hashwatt({}, ...args);
      expect([args.join(' '), run.code, run.stderr.includes(message)]).toEqual([args.join(' '), 2, true]);
    }
  });
});

describe('the silence formatting rules', () => {
  it('reads --until as a duration from now or an instant to pass on', () => {
    const now = Date.UTC(2026, 11, 2, 10, 0, 0);
    expect(parseUntil('90s', now)).toBe('2026-12-02T10:01:30.000Z');
    expect(parseUntil('30m', now)).toBe('2026-12-02T10:30:00.000Z');
    expect(parseUntil('2h', now)).toBe('2026-12-02T12:00:00.000Z');
    expect(parseUntil('1d', now)).toBe('2026-12-03T10:00:00.000Z');
    expect(parseUntil('2026-12-24T18:00:00+01:00', now)).toBe('2026-12-24T18:00:00+01:00');
    for (const bad of ['0h', '2', 'h', '1w', '-1h', 'tomorrow', '1.5h'])
      expect(parseUntil(bad, now)).toBeUndefined();
  });

  it('draws silences as a table, naming "every" for a missing scope', () => {
    expect(formatSilences([], 'active')).toBe('no active silences');
    const table = formatSilences(
      [
        {
          id: 3,
          state: 'active',
          site: null,
          alertname: null,
          effective_ends_at: '2026-12-02T12:00:00.000Z',
          created_by: 'admin',
          expired_by: null,
          comment: 'freeze',
        },
      ],
      'active',
    );
    expect(table.split('\n')[1]).toMatch(
      /^\s*3\s+active\s+every site\s+every alert\s+2026-12-02T12:00:00.000Z\s+admin\s+freeze$/,
    );
  });
});
