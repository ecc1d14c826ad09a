/**
 * Node flags the service runs with, wherever it is started (package.json `start`/`dev`, the
 * Dockerfile, the benchmark's service); tests/node-flags.test.ts holds those places to this list.
 *
 * `--max-semi-space-size=8` (MB): Node 24's V8 lets the young generation grow to 128 MB (two
 * 64 MB semi-spaces), and at ingest rates it is always full, so it alone held ~110 MB of the
 * service's RSS with 200,000 devices. 8 MB semi-spaces keep that to 16 MB at no measured cost in
 * rate (docs/performance.md, "Memory"). It bounds only the young generation: the old generation
 * still grows with the fleet, so no fleet size can crash on it (unlike --max-old-space-size). It
 * must be a command-line flag: V8 sizes the young generation when the process starts, so
 * v8.setFlagsFromString is too late (it is for --heap-growing-percent, src/main.ts).
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];
