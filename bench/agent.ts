// The site agent's own cost: polls per second per core and resident memory with 5,000 miners.
//
//   node bench/agent.ts [--quick] [--miners N]
//
// Three processes on this machine: the simulated miners (simulators/protocols/cli.ts: 5,000 ASICs
// on their real APIs, one loopback address each from 127.1.0.1, plus a Modbus meter), the agent
// (`node src/agent/run.ts`, as deployed, with its disk spool), and, in this process, a stand-in
// for hashwatt's WebSocket stream that acknowledges every frame at once: what is measured is the
// agent, not the service or the database. CPU is the agent's own (utime + stime from /proc), so
// the miners and the sink sharing the cores do not count against it; polls are its /metrics'.
//
// Phases: `steady`, the production schedule (every miner every 10 s: 500 polls/s at 5,000), then
// `saturation`, every 2 s (2,500 polls/s asked): what one agent can carry, and what it skips.
// Writes bench/results/agent.json (agent.quick.json with --quick).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';
import { parse, stringify } from 'yaml';

const ROOT = path.resolve(import.meta.dirname, '..');
const TICKS_PER_S = 100; // Linux USER_HZ: /proc/<pid>/stat counts CPU time in these

const { values } = parseArgs({
  options: { quick: { type: 'boolean' }, miners: { type: 'string' } },
});
const quick = values.quick ?? false;
const MINERS = Number(values.miners ?? (quick ? 1000 : 5000));
const PHASES = quick
  ? [
      { name: 'steady', interval_s: 10, warmup_s: 12, measure_s: 20 },
      { name: 'saturation', interval_s: 2, warmup_s: 6, measure_s: 12 },
    ]
  : [
      { name: 'steady', interval_s: 10, warmup_s: 20, measure_s: 60 },
      { name: 'saturation', interval_s: 2, warmup_s: 10, measure_s: 30 },
    ];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
}

function memoryMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

function metric(page: string, series: string): number {
  let sum = 0;
  for (const line of page.split('\n'))
    if (line.startsWith(series)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

function spawnLogged(
  args: string[],
  name: string,
  env: Record<string, string> = {},
): { child: ChildProcess; output: string[] } {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const output: string[] = [];
  for (const s of [child.stdout, child.stderr])
    s?.on('data', (c: Buffer) => {
      output.push(...c.toString().split('\n').filter(Boolean));
      if (output.length > 200) output.splice(0, output.length - 200);
    });
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGKILL')
      process.stderr.write(`${name} exited ${code ?? signal}:\n${output.slice(-20).join('\n')}\n`);
  });
  return { child, output };
}

/** A stand-in for hashwatt's /api/v1/stream: acknowledges each frame at once, counts the readings. */
async function startSink(): Promise<{ url: string; readings: () => number; close: () => Promise<void> }> {
  let readings = 0;
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server, path: '/api/v1/stream' });
  wss.on('connection', (socket) => {
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as { seq: number; readings: unknown[] };
      readings += frame.readings.length;
      socket.send(
        JSON.stringify({ ack: frame.seq, accepted: frame.readings.length, duplicates: 0, rejected: [] }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    readings: () => readings,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.close(() => resolve());
      }),
  };
}

interface PhaseResult {
  name: string;
  interval_s: number;
  asked_polls_per_s: number;
  measured_s: number;
  polls: number;
  polls_per_s: number;
  poll_failures: number;
  polls_skipped: number;
  agent_cpu_s: number;
  agent_cores_used: number;
  polls_per_s_per_core: number;
  readings_acknowledged_per_s: number;
  spool_readings_at_end: number;
  /** The simulated miners' process, on the same cores: at 1.0 it is what limits the polls. */
  simulator_cores_used: number;
  /** The machine's 1-minute load average at the end: other work on the shared cores starves the agent. */
  load_average_1m: number;
  rss_mb: number;
  peak_rss_mb: number;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'hashwatt-bench-agent-'));
  const sink = await startSink();
  const sectionsFile = path.join(dir, 'sections.yaml');
  const fleet = spawnLogged(
    [
      'simulators/protocols/cli.ts',
      '--miners',
      String(MINERS),
      '--base',
      '127.1.0.1',
      '--interval',
      '10',
      '--config-out',
      sectionsFile,
    ],
    'simulated miners',
  );
  await until(() => fleet.output.some((l) => l.startsWith('ready:')), 120_000, 'the simulated miners');
  const sections = parse(readFileSync(sectionsFile, 'utf8')) as Record<string, unknown>;
  const results: PhaseResult[] = [];
  try {
    for (const phase of PHASES) {
      const metricsPort = 19_000 + Math.floor(Math.random() * 1000);
      const config = path.join(dir, `${phase.name}.yaml`);
      rmSync(path.join(dir, 'spool'), { recursive: true, force: true });
      writeFileSync(
        config,
        stringify({
          hashwatt: { url: sink.url, token: 'bench-token' },
          spool: { dir: path.join(dir, 'spool') },
          health: { listen: `127.0.0.1:${metricsPort}`, per_target: true },
          poll: {
            concurrency: 512,
            miners: { interval_s: phase.interval_s, timeout_s: Math.min(5, phase.interval_s) },
            meters: { interval_s: 5 },
          },
          ...sections,
          log_level: 'error',
        }),
      );
      // As docs/agent.md deploys it: the young generation capped at start.
      const agent = spawnLogged(['src/agent/run.ts', '--config', config], `agent (${phase.name})`, {
        NODE_OPTIONS: '--max-semi-space-size=4',
      });
      const pid = agent.child.pid!;
      const url = `http://127.0.0.1:${metricsPort}/metrics`;
      const scrape = async () => (await fetch(url)).text();
      await until(async () => (await scrape().catch(() => '')).length > 0, 60_000, 'the agent');
      await sleep(phase.warmup_s * 1000);
      const fleetPid = fleet.child.pid!;
      const before = {
        page: await scrape(),
        cpu: cpuSeconds(pid),
        fleetCpu: cpuSeconds(fleetPid),
        at: performance.now(),
        acked: sink.readings(),
      };
      await sleep(phase.measure_s * 1000);
      const after = {
        page: await scrape(),
        cpu: cpuSeconds(pid),
        fleetCpu: cpuSeconds(fleetPid),
        at: performance.now(),
        acked: sink.readings(),
      };
      const seconds = (after.at - before.at) / 1000;
      const delta = (series: string) => metric(after.page, series) - metric(before.page, series);
      const polls = delta('hashwatt_agent_polls_total{');
      const cpu = after.cpu - before.cpu;
      const mem = memoryMb(pid);
      const r: PhaseResult = {
        name: phase.name,
        interval_s: phase.interval_s,
        asked_polls_per_s: Math.round((MINERS / phase.interval_s + 0.2) * 10) / 10,
        measured_s: Math.round(seconds * 10) / 10,
        polls,
        polls_per_s: Math.round(polls / seconds),
        poll_failures: delta('hashwatt_agent_polls_total{collector="auto",outcome="failed"}'),
        polls_skipped: delta('hashwatt_agent_polls_skipped_total{'),
        agent_cpu_s: Math.round(cpu * 100) / 100,
        agent_cores_used: Math.round((cpu / seconds) * 100) / 100,
        polls_per_s_per_core: Math.round(polls / cpu),
        readings_acknowledged_per_s: Math.round((after.acked - before.acked) / seconds),
        spool_readings_at_end: metric(after.page, 'hashwatt_agent_spool_readings '),
        simulator_cores_used: Math.round(((after.fleetCpu - before.fleetCpu) / seconds) * 100) / 100,
        load_average_1m: Math.round(loadavg()[0]! * 10) / 10,
        rss_mb: Math.round(mem.rss),
        peak_rss_mb: Math.round(mem.peak),
      };
      results.push(r);
      process.stdout.write(
        `${phase.name}: ${MINERS} miners every ${phase.interval_s} s → ${r.polls_per_s} polls/s on ${r.agent_cores_used} cores = ${r.polls_per_s_per_core} polls/s per core; RSS ${r.rss_mb} MiB (peak ${r.peak_rss_mb}); ${r.poll_failures} failed, ${r.polls_skipped} skipped; simulator ${r.simulator_cores_used} cores; load ${r.load_average_1m}\n`,
      );
      agent.child.kill('SIGTERM');
      await new Promise((resolve) => agent.child.once('exit', resolve));
    }
  } finally {
    fleet.child.kill('SIGTERM');
    await new Promise((resolve) => fleet.child.once('exit', resolve));
    await sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const out = {
    date: new Date().toISOString(),
    quick,
    miners: MINERS,
    machine: { cores: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
    note: 'agent CPU and memory only (/proc), run with NODE_OPTIONS=--max-semi-space-size=4 as docs/agent.md deploys it; the simulated miners and the acknowledging sink run on the same cores, and in the saturation phase the simulated miners (one process) are what limits the polls achieved',
    phases: results,
  };
  mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  const file = path.join(ROOT, 'bench/results', quick ? 'agent.quick.json' : 'agent.json');
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(`wrote ${path.relative(ROOT, file)}\n`);
}

await main();
