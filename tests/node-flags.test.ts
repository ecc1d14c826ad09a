import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SERVICE_NODE_FLAGS } from '../src/node-flags.ts';

// The young-generation bound only works as a command-line flag, so every way of starting the
// service must pass it (src/node-flags.ts).
describe('the service is started with its Node flags everywhere', () => {
  const scripts: Record<string, string> = JSON.parse(readFileSync('package.json', 'utf8')).scripts;

  it.each(['start', 'dev', 'demo'])('npm run %s', (name) => {
    const words = scripts[name]!.split(/\s+/);
    expect(words[0]).toBe('node');
    for (const flag of SERVICE_NODE_FLAGS) expect(words).toContain(flag);
  });

  it('the Docker image', () => {
    const cmd = readFileSync('Dockerfile', 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('CMD '))
      .at(-1)!;
    const words: string[] = JSON.parse(cmd.slice(4));
    expect(words.at(-1)).toBe('src/main.ts');
    for (const flag of SERVICE_NODE_FLAGS) expect(words).toContain(flag);
  });

  it('Node accepts each flag', async () => {
    const { execFileSync } = await import('node:child_process');
    const out = execFileSync(process.execPath, [...SERVICE_NODE_FLAGS, '-e', 'console.log("ok")'], {
      encoding: 'utf8',
    });
    expect(out.trim()).toBe('ok');
  });
});
