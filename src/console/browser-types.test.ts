/**
 * The console's browser modules are JavaScript checked by tsc through JSDoc, in a project of their
 * own (src/console/browser/tsconfig.json: DOM types, no Node) that `tsc -p .` does not include.
 * This runs that check with the suite, so a type error in the page fails CI like one in the server.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');

describe('the console browser modules', () => {
  it('type-check with their own tsconfig', () => {
    const tsc = spawnSync(
      process.execPath,
      [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'src/console/browser'],
      { cwd: ROOT, encoding: 'utf8', timeout: 60_000 },
    );
    expect(`${tsc.stdout}${tsc.stderr}`).toBe('');
    expect(tsc.status).toBe(0);
  });
});
