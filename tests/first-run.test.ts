import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAtLeast, parseVersion, requiredNodeVersion, unsupportedNodeMessage } from '../bin/node-check.js';
import { describeListenError } from '../src/startup-errors.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';

// What a newcomer meets before any data flows: the Node version, a port already taken.

const ROOT = join(import.meta.dirname, '..');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(node: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(node, args, {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
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

const MINIMUM = requiredNodeVersion();

/** The machine's own Node when it is older than required (Debian's is 20), else null. */
function oldNode(): string | null {
  for (const candidate of ['/usr/bin/node', '/bin/node', '/usr/local/bin/node']) {
    const probe = spawnSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8' });
    const version = probe.status === 0 ? parseVersion(probe.stdout.trim()) : null;
    if (version && !isAtLeast(version, MINIMUM)) return candidate;
  }
  return null;
}

describe('the Node version check', () => {
  it('reads the minimum from package.json engines', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(pkg.engines.node).toBe('>=22.18');
    expect(MINIMUM).toEqual([22, 18, 0]);
  });

  it('compares major, then minor, then patch', () => {
    const min = parseVersion('>=22.18')!;
    expect(isAtLeast(parseVersion('22.18.0')!, min)).toBe(true);
    expect(isAtLeast(parseVersion('v22.18.1')!, min)).toBe(true);
    expect(isAtLeast(parseVersion('24.0.0')!, min)).toBe(true);
    expect(isAtLeast(parseVersion('23.1.0')!, min)).toBe(true);
    // The major alone (what .ci/node.sh used to compare) lets 22.17 through.
    expect(isAtLeast(parseVersion('22.17.9')!, min)).toBe(false);
    expect(isAtLeast(parseVersion('20.20.2')!, min)).toBe(false);
    expect(isAtLeast(parseVersion('8.99.99')!, min)).toBe(false);
    expect(parseVersion('not a version')).toBeNull();
  });

  it('tells what to do in one line, and nothing when the version will do', () => {
    expect(unsupportedNodeMessage('24.21.0', MINIMUM)).toBeNull();
    const message = unsupportedNodeMessage('22.17.0', MINIMUM)!;
    expect(message).toContain('Node.js 22.17.0 is too old');
    expect(message).toContain('>= 22.18');
    expect(message).toContain('. .ci/node.sh');
    expect(message).not.toContain('\n');
  });

  const old = oldNode();
  const entries = [
    ['bin/hashwatt.js', '--help'],
    ['bin/run.js', 'src/demo.ts'],
    ['bin/run.js', 'src/main.ts'],
    ['bin/run.js', 'simulators/cli.ts', '--help'],
  ];
  it.each(entries)(
    `an old Node (${old ?? 'faked: none on this machine'}) running %s %s gets the sentence, not ERR_UNKNOWN_FILE_EXTENSION`,
    async (...args) => {
      const result =
        old !== null
          ? await run(old, args)
          : // No old Node here: the same check, fed the version an old Node would report.
            await run(process.execPath, [
              '--input-type=module',
              '-e',
              "(await import('./bin/node-check.js')).requireSupportedNode('20.20.2')",
            ]);
      expect(result.code).toBe(1);
      expect(result.stderr).not.toContain('ERR_UNKNOWN_FILE_EXTENSION');
      expect(result.stderr).toMatch(
        /^hashwatt: Node\.js 20\.\d+\.\d+ is too old; hashwatt needs Node\.js >= 22\.18/,
      );
      expect(result.stderr).toContain('run ". .ci/node.sh"');
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    },
  );

  it('routes every npm script that runs a .ts file through the check', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    for (const name of ['start', 'dev', 'demo', 'simulate', 'migrate', 'bench', 'soak']) {
      expect(pkg.scripts[name], name).toMatch(/^node (--[a-z-]+(=\S+)? )*bin\/(run|hashwatt)\.js\b/);
    }
    for (const [name, script] of Object.entries(pkg.scripts)) {
      if (/^node .*\.ts\b/.test(script))
        expect(script, name).toMatch(/^node (--[a-z-]+(=\S+)? )*bin\/run\.js /);
    }
  });

  it('.ci/node.sh puts a Node of at least major.minor first on PATH', { timeout: 120_000 }, async () => {
    // With the machine's old Node first on PATH, sourcing it must end with a recent enough one.
    const dir = old === null ? '' : `${join(old, '..')}:`;
    const result = await run('/bin/bash', ['-c', '. .ci/node.sh && node -p process.versions.node'], {
      PATH: `${dir}${process.env.PATH ?? ''}`,
    });
    expect(result.code, result.stderr).toBe(0);
    expect(isAtLeast(parseVersion(result.stdout.trim())!, MINIMUM)).toBe(true);
  });
});

describe('a port already taken', () => {
  let db: TestDatabase;
  let blocker: Server;
  let port: number;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    port = (blocker.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    await db.dispose();
  });

  const env = () => ({
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: db.url!,
    HASHWATT_ADMIN_TOKEN: 'first-run-admin-token-0123',
    LOG_LEVEL: 'silent',
  });

  it.each([
    ['npm start', 'src/main.ts', 'hashwatt'],
    ['npm run demo', 'src/demo.ts', 'hashwatt demo'],
  ])(
    '%s says which port is taken and how to pick another, in one line, exit 1',
    async (command, entry, prefix) => {
      const result = await run(process.execPath, ['bin/run.js', entry, '--duration', '1'], env());
      expect(result.code).toBe(1);
      expect(result.stderr.trim()).toBe(
        `${prefix}: port ${port} on 127.0.0.1 is already in use (another hashwatt, or another program); pick another port with PORT, e.g. PORT=${port + 1} ${command}`,
      );
    },
  );

  it('describes the listen errors a user can fix, and leaves others alone', () => {
    const target = { host: '0.0.0.0', port: 8080, command: 'npm start' };
    const inUse = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' });
    expect(describeListenError(inUse, target)).toMatch(
      /^port 8080 on 0\.0\.0\.0 is already in use.*PORT=8081 npm start$/,
    );
    const privileged = Object.assign(new Error('listen EACCES'), { code: 'EACCES' });
    expect(describeListenError(privileged, { ...target, port: 80 })).toMatch(/above 1023.*PORT=81 npm start/);
    expect(describeListenError(new Error('boom'), target)).toBeNull();
    expect(describeListenError('not an error', target)).toBeNull();
  });
});
