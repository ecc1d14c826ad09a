#!/usr/bin/env node
/** Runs a scenario's site agents against a hashwatt service. `node simulators/cli.ts --help`. */
import { parseArgs } from 'node:util';
import { ProvisionError, provisionSites } from './agent/provision.ts';
import { describeUnacknowledged, startFleet } from './fleet.ts';
import { listScenarios, loadScenario, ScenarioError, type ScenarioOverrides } from './scenario.ts';
import { formatStatusLine, formatSummary } from './status.ts';

const HELP = `Usage: node simulators/cli.ts --scenario NAME|FILE [options]
       npm run simulate -- --scenario demo --url http://127.0.0.1:8080 --admin-token T

Simulates the site agents of a scenario pushing telemetry to a hashwatt service, over HTTP (gzip)
or WebSocket, with buffering, retries and the scenario's faults. Ctrl-C stops generating, flushes
what is buffered for a few seconds and prints the final summary.

Scenario
  --scenario NAME|FILE  shipped scenario (${listScenarios().join(', ')}) or a JSON file
  --duration S          run for S scenario seconds (0 = until stopped); default from the scenario
  --interval S          seconds between two readings of a device (e.g. 1 for tests)
  --scale F             multiply device counts (and capacities) by F, e.g. 0.1
  --sites A,B           only these sites of the scenario
  --rate N              load scenarios: target readings per second (open loop)
  --seed N              noise seed; same seed and --start give identical readings (default 1)
  --start TIME          timestamp of the first reading, RFC3339 (default: now)
  --speed F             run scenario time F times faster than wall time (needs --duration)
  --no-failures         no background hashboard losses or device failures

Service
  --url URL             service base URL (env HASHWATT_URL; default http://127.0.0.1:8080)
  --tokens S=T,...      site tokens by site name (env HASHWATT_SITE_TOKENS)
  --admin-token T       create the scenario's sites, or rotate the token of existing ones, for
                        sites without a token (env HASHWATT_ADMIN_TOKEN)
  --transport http|ws   force one transport for every site (default: per site in the scenario)

Output
  --quiet               no live status line, only the final summary
  --json                print the final counters as JSON instead of the table
  --flush-ms N          when the duration is over or on Ctrl-C, keep delivering buffered readings
                        for up to N ms (default 10000)
  --list                list shipped scenarios and exit
  -h, --help            this help

Exit status: 0 when every reading generated was acknowledged (or refused by the service), 1 when
readings were left unacknowledged (still buffered after the flush, or dropped) or on an error,
2 on bad usage.`;

function fail(message: string, code = 2): never {
  process.stderr.write(`simulate: ${message}\n`);
  process.exit(code);
}

function parseNumber(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) fail(`--${name} expects a number, got "${value}"`);
  return n;
}

/** "site-a=tok1,site-b=tok2" → { site-a: tok1, ... }; a token may itself contain "=". */
export function parseTokens(text: string | undefined): Record<string, string> {
  const tokens: Record<string, string> = {};
  if (!text) return tokens;
  for (const pair of text.split(',')) {
    const trimmed = pair.trim();
    if (trimmed === '') continue;
    const eq = trimmed.indexOf('=');
    if (eq <= 0 || eq === trimmed.length - 1) fail(`tokens: expected site=token, got "${trimmed}"`);
    tokens[trimmed.slice(0, eq)] = trimmed.slice(eq + 1);
  }
  return tokens;
}

async function main(): Promise<void> {
  let args: ReturnType<typeof parse>;
  function parse() {
    return parseArgs({
      options: {
        scenario: { type: 'string' },
        url: { type: 'string' },
        seed: { type: 'string' },
        duration: { type: 'string' },
        interval: { type: 'string' },
        scale: { type: 'string' },
        sites: { type: 'string' },
        rate: { type: 'string' },
        start: { type: 'string' },
        speed: { type: 'string' },
        tokens: { type: 'string' },
        'admin-token': { type: 'string' },
        transport: { type: 'string' },
        quiet: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'flush-ms': { type: 'string' },
        'no-failures': { type: 'boolean', default: false },
        list: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  }
  try {
    args = parse();
  } catch (err) {
    fail(`${(err as Error).message}\nTry --help.`);
  }
  const v = args.values;
  if (v.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  if (v.list) {
    process.stdout.write(`${listScenarios().join('\n')}\n`);
    return;
  }
  if (!v.scenario) fail('--scenario is required. Try --help.');
  if (v.transport !== undefined && v.transport !== 'http' && v.transport !== 'ws')
    fail('--transport must be http or ws');

  const url = v.url ?? process.env.HASHWATT_URL ?? 'http://127.0.0.1:8080';
  try {
    const protocol = new URL(url).protocol;
    if (protocol !== 'http:' && protocol !== 'https:') fail(`--url must be http(s), got ${url}`);
  } catch {
    fail(`--url is not a URL: ${url}`);
  }
  let startMs: number | undefined;
  if (v.start !== undefined) {
    startMs = Date.parse(v.start);
    if (Number.isNaN(startMs)) fail(`--start expects an RFC3339 time, got "${v.start}"`);
  }
  const overrides: ScenarioOverrides = {
    scale: parseNumber('scale', v.scale),
    interval_s: parseNumber('interval', v.interval),
    duration_s: parseNumber('duration', v.duration),
    rate_per_s: parseNumber('rate', v.rate),
    transport: v.transport as 'http' | 'ws' | undefined,
    sites: v.sites?.split(',').map((s) => s.trim()),
    ...(v['no-failures'] && { random_failures: false }),
  };
  const scenario = loadScenario(v.scenario, overrides);

  const tokens = { ...parseTokens(process.env.HASHWATT_SITE_TOKENS), ...parseTokens(v.tokens) };
  const missing = scenario.sites.filter((s) => tokens[s.name] === undefined).map((s) => s.name);
  const adminToken = v['admin-token'] ?? process.env.HASHWATT_ADMIN_TOKEN;
  if (missing.length > 0) {
    if (!adminToken)
      fail(`no token for site(s) ${missing.join(', ')}: pass --tokens site=token or --admin-token`);
    Object.assign(tokens, await provisionSites({ url, adminToken, scenario, sites: missing }));
    process.stderr.write(`provisioned ${missing.length} site(s): ${missing.join(', ')}\n`);
  }

  const flushMs = parseNumber('flush-ms', v['flush-ms']) ?? 10_000;
  if (flushMs < 0) fail('--flush-ms must be >= 0');
  const live = !v.quiet && !v.json;
  const tty = process.stderr.isTTY === true;
  let lastPrinted = 0;
  const fleet = startFleet({
    scenario,
    url,
    tokens,
    seed: parseNumber('seed', v.seed) ?? 1,
    startMs,
    speed: parseNumber('speed', v.speed),
    drainMs: flushMs,
    ...(live && {
      onStatus: (status) => {
        const line = formatStatusLine(status);
        if (tty) process.stderr.write(`\r\x1b[2K${line}`);
        else if (status.elapsedMs - lastPrinted >= 10_000) {
          // Logs (CI, files) get a line every 10 s instead of a redrawn one.
          lastPrinted = status.elapsedMs;
          process.stderr.write(`${line}\n`);
        }
      },
    }),
  });
  process.stderr.write(
    `simulating "${scenario.name}": ${scenario.sites.length} site(s) → ${url}${scenario.duration_s > 0 ? ` for ${scenario.duration_s} s` : ' until Ctrl-C'}\n`,
  );

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) process.exit(130); // a second Ctrl-C means now
    process.stderr.write(
      `${tty && live ? '\n' : ''}${signal}: stopping, flushing for up to ${flushMs} ms (again to quit now)\n`,
    );
    void fleet.stop({ flushMs });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const final = await fleet.done;
  if (tty && live) process.stderr.write('\n');
  // The fleet's clock starts before its generators, so a run reports at least the duration asked.
  const elapsedMs = fleet.status().elapsedMs;
  if (v.json) {
    process.stdout.write(
      `${JSON.stringify({ scenario: scenario.name, elapsed_ms: Math.round(elapsedMs), target_per_s: scenario.rate_per_s ?? null, offered_per_s: Math.round((final.total.generated * 1000) / elapsedMs), ...final })}\n`,
    );
  } else {
    process.stdout.write(`${formatSummary(final, elapsedMs, scenario.rate_per_s ?? null)}\n`);
    const errors = fleet.status().errors;
    for (const [site, error] of Object.entries(errors))
      process.stdout.write(`last error at ${site}: ${error}\n`);
  }
  const unacknowledged = describeUnacknowledged(final.total, flushMs);
  if (unacknowledged) process.stderr.write(`simulate: ${unacknowledged}\n`);
  const nothingDelivered = final.total.generated > 0 && final.total.acknowledged === 0;
  process.exitCode = unacknowledged || nothingDelivered ? 1 : 0;
}

main().catch((err: unknown) => {
  // Configuration and provisioning problems are the user's to fix: one line says what. Anything
  // else is a bug here and keeps its stack.
  const known =
    err instanceof ScenarioError ||
    err instanceof ProvisionError ||
    (err instanceof Error && err.constructor === Error);
  fail(err instanceof Error ? (known ? err.message : (err.stack ?? err.message)) : String(err), 1);
});
