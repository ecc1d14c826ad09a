/**
 * `hashwatt agent …`: the site agent's command line. `runAgentCli(argv)` is what `hashwatt agent`
 * dispatches to (argv without the leading `agent`); `node src/agent/run.ts …` runs it alone.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { stringify as toYaml } from 'yaml';
import { expandRange } from './address-range.ts';
import { AGENT_VERSION, Agent, createAgentLogger } from './agent.ts';
import { type AgentConfig, AgentConfigError, parseAgentConfig } from './config.ts';
import { type DiscoverResult, discoverMiners, type FoundMiner } from './discover.ts';

export const AGENT_USAGE = `hashwatt agent — polls a site's miners, meters and GPUs and pushes to hashwatt

Usage:
  hashwatt agent --config site.yaml          run the agent (Ctrl-C / SIGTERM: finish polls, deliver, stop)
  hashwatt agent --config site.yaml --check  check the file and list what it would poll
  hashwatt agent discover [--config site.yaml] [--range R]... [--json | --yaml]
                                             find miners on 4028 (CGMiner family) and 4433
                                             (Whatsminer V3) and name their firmware

Options:
  --config FILE        site.yaml (docs/agent.md; example: deploy/agent/site.example.yaml)
  --flush-s S          on stop, keep delivering for up to S seconds (default 10); the rest stays spooled
  --range R            discover: 10.0.1.0/24, 10.0.1.10-250 or one address (repeatable;
                       default: the miners of --config)
  --concurrency N      discover: probes at once (default 256)
  --timeout-ms N       discover: per probe (default 3000)
  --deadline-s S       discover: the whole scan (default 120)
  --json | --yaml      discover: JSON, or a miners: block to paste into site.yaml
  -h, --help
`;

export interface AgentIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  env: Readonly<Record<string, string | undefined>>;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM); replaced in tests. */
  stopSignal?: () => Promise<string>;
}

function defaultStopSignal(): Promise<string> {
  return new Promise((resolve) => {
    let asked = 0;
    const on = (signal: NodeJS.Signals) => {
      asked++;
      // A second Ctrl-C means now; the spool keeps what was not delivered.
      if (asked > 1) process.exit(130);
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

function loadConfig(file: string, io: AgentIo): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new AgentConfigError(
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  return parseAgentConfig(text, { source: file, env: io.env, readFile: (f) => readFileSync(f, 'utf8') });
}

function describeTargets(config: AgentConfig): string {
  const counts = new Map<string, number>();
  for (const t of config.targets) {
    const key =
      t.type === 'miner'
        ? `miners (${t.api})`
        : t.type === 'meter'
          ? `${t.kind}s (modbus ${t.model})`
          : `gpu hosts (${t.source})`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const lines = [...counts].map(([k, n]) => `  ${String(n).padStart(6)}  ${k}`);
  return [
    `hashwatt  ${config.url} (${config.transport === 'ws' ? 'WebSocket, HTTP fallback' : 'HTTP'})`,
    `spool     ${config.spool.dir} (at most ${config.spool.maxBytes.toLocaleString('en-US')} bytes)`,
    `metrics   ${config.health.listen ? `http://${config.health.listen.host}:${config.health.listen.port}/metrics` : 'off'}`,
    'targets',
    ...lines,
  ].join('\n');
}

function formatFound(result: DiscoverResult): string {
  const rows = [['address', 'port', 'api', 'firmware', 'model', 'version']];
  for (const f of result.found)
    rows.push([
      f.host,
      String(f.port),
      f.api,
      f.firmware,
      f.model ?? '–',
      f.version ?? (f.problem ? `(${f.problem})` : '–'),
    ]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
  const seconds = (result.elapsedMs / 1000).toFixed(1);
  table.push(
    '',
    `${result.found.length} miner API(s) found; ${result.probes} probes in ${seconds} s${result.skipped > 0 ? `, ${result.skipped} not made (deadline)` : ''}`,
  );
  return table.join('\n');
}

/** A `miners:` block for site.yaml, one entry per miner found. */
export function foundAsYaml(found: readonly FoundMiner[]): string {
  const miners = found
    .filter((f) => f.problem === undefined)
    .map((f) => ({
      address: f.host,
      api: f.api,
      ...((f.api === 'cgminer' ? f.port !== 4028 : f.port !== 4433) && { port: f.port }),
    }));
  return toYaml({ miners });
}

async function discoverCommand(values: Record<string, unknown>, io: AgentIo): Promise<number> {
  const ranges = (values.range as string[] | undefined) ?? [];
  if (ranges.length === 0 && typeof values.config === 'string')
    ranges.push(...loadConfig(values.config, io).minerAddresses);
  if (ranges.length === 0) {
    io.stderr.write('hashwatt agent discover: give --range (or --config with miners)\n');
    return 2;
  }
  const hosts: string[] = [];
  for (const r of ranges) {
    const expanded = expandRange(r);
    if (!expanded.ok) {
      // A hostname (miners[].address may be one) is probed as it is.
      if (/^[a-zA-Z0-9.-]+$/.test(r) && /[a-zA-Z]/.test(r)) hosts.push(r);
      else {
        io.stderr.write(`hashwatt agent discover: ${expanded.message}\n`);
        return 2;
      }
    } else hosts.push(...expanded.addresses);
  }
  const number = (name: string, fallback: number) => {
    const v = values[name];
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0)
      throw new AgentConfigError(`--${name} expects a positive number, got "${String(v)}"`);
    return n;
  };
  const result = await discoverMiners({
    hosts: [...new Set(hosts)],
    concurrency: number('concurrency', 256),
    timeoutMs: number('timeout-ms', 3000),
    deadlineMs: number('deadline-s', 120) * 1000,
  });
  if (values.json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else if (values.yaml) io.stdout.write(foundAsYaml(result.found));
  else io.stdout.write(`${formatFound(result)}\n`);
  return 0;
}

/**
 * Polling allocates fast and keeps little. A heap that grows 50 % past live data between
 * collections, and a small young generation, cut the agent's resident memory at 5,000 miners from
 * 346 to 264 MiB when set here, and to 163 MiB when the young generation is capped at start
 * (NODE_OPTIONS=--max-semi-space-size=4, as the unit in docs/agent.md does), for a few points of
 * CPU (bench/agent.ts).
 */
function tuneHeapForPolling(env: AgentIo['env']): void {
  setFlagsFromString('--heap-growing-percent=50');
  const capped = process.execArgv.some((a) => a.startsWith('--max-semi-space-size'));
  if (!capped && !/--max-semi-space-size/.test(env.NODE_OPTIONS ?? ''))
    setFlagsFromString('--max-semi-space-size=4');
}

async function runCommand(values: Record<string, unknown>, io: AgentIo): Promise<number> {
  if (typeof values.config !== 'string') {
    io.stderr.write(`hashwatt agent: --config site.yaml is required\n\n${AGENT_USAGE}`);
    return 2;
  }
  const config = loadConfig(values.config, io);
  if (values.check) {
    io.stdout.write(`${describeTargets(config)}\n`);
    return 0;
  }
  const flushS = Number(values['flush-s'] ?? 10);
  if (!Number.isFinite(flushS) || flushS < 0)
    throw new AgentConfigError('--flush-s expects a number of seconds');
  tuneHeapForPolling(io.env);
  const logger = createAgentLogger(config.logLevel);
  const stopped = (io.stopSignal ?? defaultStopSignal)();
  const agent = await Agent.start(config, { logger });
  const signal = await stopped;
  logger.info({ signal, flush_s: flushS }, 'stopping');
  await agent.stop({ flushMs: flushS * 1000 });
  logger.flush();
  return 0;
}

/** Runs `hashwatt agent …` with argv after `agent`; resolves with the exit status. */
export async function runAgentCli(
  argv: readonly string[],
  io: AgentIo = { stdout: process.stdout, stderr: process.stderr, env: process.env },
): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  function parse() {
    return parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string' },
        check: { type: 'boolean' },
        'flush-s': { type: 'string' },
        range: { type: 'string', multiple: true },
        concurrency: { type: 'string' },
        'timeout-ms': { type: 'string' },
        'deadline-s': { type: 'string' },
        json: { type: 'boolean' },
        yaml: { type: 'boolean' },
        version: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  }
  try {
    parsed = parse();
  } catch (error) {
    io.stderr.write(`hashwatt agent: ${(error as Error).message}\n\n${AGENT_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout.write(AGENT_USAGE);
    return 0;
  }
  if (values.version) {
    io.stdout.write(`hashwatt-agent ${AGENT_VERSION}\n`);
    return 0;
  }
  try {
    if (positionals[0] === 'discover') return await discoverCommand(values, io);
    if (positionals.length > 0) {
      io.stderr.write(`hashwatt agent: unknown command "${positionals.join(' ')}"\n\n${AGENT_USAGE}`);
      return 2;
    }
    return await runCommand(values, io);
  } catch (error) {
    if (error instanceof AgentConfigError) {
      io.stderr.write(`hashwatt agent: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}
