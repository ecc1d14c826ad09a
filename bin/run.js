#!/usr/bin/env node
// `node bin/run.js FILE.ts [args…]`: the npm scripts' entry. Checks the Node version before any
// .ts is loaded, then runs FILE.ts as if Node had been started on it.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { requireSupportedNode } from './node-check.js';

requireSupportedNode();
const entry = process.argv[2];
if (!entry) {
  process.stderr.write('usage: node bin/run.js FILE.ts [args…]\n');
  process.exit(2);
}
// FILE.ts parses process.argv.slice(2) as its own arguments, as under `node FILE.ts args…`.
process.argv.splice(1, 1);
await import(pathToFileURL(resolve(entry)).href);
