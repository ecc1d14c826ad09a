import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { describeUnacknowledged } from '../simulators/fleet.ts';
import {
  formatStatusLine,
  formatSummary,
  loadScenario,
  provisionSites,
  startFleet,
} from '../simulators/index.ts';
import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './log.ts';
import { startService } from './service.ts';
import { describeListenError } from './startup-errors.ts';

// `npm run demo`: hashwatt on the embedded default plus the demo scenario's three site agents,
// in one process, so a newcomer sees data flow with nothing else installed or running.

const { values } = parseArgs({
  options: {
    duration: { type: 'string' },
    scale: { type: 'string' },
    scenario: { type: 'string', default: 'demo' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(
    'npm run demo [-- --duration SECONDS] [--scale F] [--scenario NAME]\n' +
      'Starts hashwatt on embedded PGlite (HASHWATT_DATA_DIR, default ./data) and the demo site agents.\n',
  );
  process.exit(0);
}

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`hashwatt demo: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
// The demo's admin token: HASHWATT_ADMIN_TOKEN when set, else one made up for this run (printed
// below, as it is the only way into the console and the admin API).
const adminToken = config.adminToken ?? `demo-${randomBytes(12).toString('hex')}`;
const logger = createLogger(process.env.LOG_LEVEL ? config.logLevel : 'warn');
const service = await startService({ ...config, adminToken }, logger).catch((error: unknown) => {
  const problem = describeListenError(error, {
    host: config.host,
    port: config.port,
    command: 'npm run demo',
  });
  if (problem === null) throw error;
  process.stderr.write(`hashwatt demo: ${problem}\n`);
  process.exit(1);
});

const out = process.stdout;
// The console first, before the sites are provisioned: it is what a newcomer opens, and it shows
// the sites appear and their data arrive.
out.write(`hashwatt console  ${service.url}/
  sign in with the admin token  ${adminToken}
  ${config.adminToken ? '(HASHWATT_ADMIN_TOKEN)' : '(made up for this run; set HASHWATT_ADMIN_TOKEN to choose one)'}
  a viewer or operator token for someone else:
    HASHWATT_URL=${service.url} HASHWATT_ADMIN_TOKEN=${adminToken} node bin/hashwatt.js tokens create --name NAME --role viewer
`);

const scenario = loadScenario(values.scenario, {
  ...(values.scale && { scale: Number(values.scale) }),
  ...(values.duration && { duration_s: Number(values.duration) }),
});
const tokens = await provisionSites({ url: service.url, adminToken, scenario });
const where =
  service.storage.backend === 'pglite' ? `embedded Postgres (PGlite) in ${config.dataDir}` : 'Postgres';
out.write(`
hashwatt demo on ${where}
  API       ${service.url}/api/v1/sites   (the same admin token)
  ready     ${service.url}/readyz
  metrics   ${service.url}/metrics        (per-site power, surplus, hashrate, GPUs, devices by state)
  ingest    POST ${service.url}/api/v1/ingest, WebSocket ${service.url.replace('http', 'ws')}/api/v1/stream
  docs      README.md, docs/, simulators/README.md
  sites     ${scenario.sites.map((s) => `${s.name} (${s.kind}, ${s.transport})`).join(', ')}
Ctrl-C stops the agents, flushes what they hold, and stops hashwatt.

`);

/** What the agents still hold when the demo stops gets this long to be acknowledged. */
const FLUSH_MS = 5_000;
const live = out.isTTY;
let lastLine = 0;
const fleet = startFleet({
  scenario,
  url: service.url,
  tokens,
  seed: 1,
  drainMs: FLUSH_MS,
  onStatus: (status) => {
    const line = `${formatStatusLine(status)}  ack ${Math.round(status.acknowledgedPerS)}/s`;
    if (live) out.write(`\r\x1b[2K${line}`);
    else if (status.elapsedMs - lastLine >= 10_000) {
      lastLine = status.elapsedMs;
      out.write(`${line}\n`);
    }
  },
});

let stopping = false;
async function stop(code: number): Promise<never> {
  stopping = true;
  if (live) out.write('\n');
  const final = await fleet.stop({ flushMs: FLUSH_MS });
  await service.stop();
  out.write(`\n${formatSummary(final, fleet.status().elapsedMs, null)}\n`);
  const unacknowledged = describeUnacknowledged(final.total, FLUSH_MS);
  if (unacknowledged) process.stderr.write(`hashwatt demo: ${unacknowledged}\n`);
  process.exit(unacknowledged && code === 0 ? 1 : code);
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(130);
    void stop(0);
  });
}
await fleet.done;
if (!stopping) await stop(0);
