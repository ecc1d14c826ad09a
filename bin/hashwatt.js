#!/usr/bin/env node
// The package's command: Node >= 22.18 runs the TypeScript sources directly (type stripping), so
// the version is checked first, in plain JavaScript, before any .ts is loaded.
import { requireSupportedNode } from './node-check.js';

requireSupportedNode();
await import('../src/cli.ts');
