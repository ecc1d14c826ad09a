/**
 * `hashwatt agent` as a child process, as it runs at a site (`node src/agent/run.ts --config
 * site.yaml`): the end-to-end and reliability tests start it, scrape its /metrics, stop it with
 * SIGTERM or kill it with SIGKILL, and start it again on the same spool.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { waitFor } from './support.ts';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');

/** A loopback port nobody listens on now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** One sample of a Prometheus page: the value of `name{labels}` (labels as written), or undefined. */
export function metricValue(page: string, series: string): number | undefined {
  for (const line of page.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

export class AgentProcess {
  readonly configFile: string;
  readonly metricsUrl: string;
  readonly lines: string[] = [];
  #child: ChildProcess | null = null;
  #exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;

  private constructor(configFile: string, metricsPort: number) {
    this.configFile = configFile;
    this.metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  }

  /** Writes site.yaml (`health.listen` set to a free port) and starts the agent on it. */
  static async start(dir: string, siteYaml: Record<string, unknown>): Promise<AgentProcess> {
    const port = await freePort();
    const file = path.join(dir, 'site.yaml');
    writeFileSync(file, stringify({ ...siteYaml, health: { listen: `127.0.0.1:${port}` } }));
    const agent = new AgentProcess(file, port);
    await agent.start();
    return agent;
  }

  get running(): boolean {
    return this.#child !== null && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts (or starts again) the process; resolves once its /metrics answers. */
  async start(): Promise<void> {
    const child = spawn(process.execPath, ['src/agent/run.ts', '--config', this.configFile], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    this.#exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop() ?? '';
        this.lines.push(...parts);
        if (this.lines.length > 400) this.lines.splice(0, this.lines.length - 400);
      });
    }
    const up = await waitFor(
      async () => {
        if (!this.running) return true;
        try {
          return (await fetch(this.metricsUrl, { signal: AbortSignal.timeout(2000) })).ok;
        } catch {
          return false;
        }
      },
      30_000,
      50,
    );
    if (!up || !this.running)
      throw new Error(`the agent did not start:\n${this.lines.slice(-20).join('\n')}`);
  }

  async metrics(): Promise<string> {
    return (await fetch(this.metricsUrl, { signal: AbortSignal.timeout(5000) })).text();
  }

  /** A value of its /metrics, or undefined when absent. */
  async metric(series: string): Promise<number | undefined> {
    return metricValue(await this.metrics(), series);
  }

  /** Signals the process and resolves with how it ended. */
  async signal(
    signal: NodeJS.Signals,
    timeoutMs = 60_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.#child!;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.#exit!;
    } finally {
      clearTimeout(timer);
    }
  }

  async stop(): Promise<void> {
    if (this.running) await this.signal('SIGTERM', 15_000);
  }
}

/** One stored reading of a device: its status, hashrate and the shares counter it carried. */
export interface StoredReading {
  tsMs: number;
  status: string | null;
  hashrateThs: number | null;
  powerW: number | null;
  sharesAccepted: number | null;
}

/** Every stored reading of a site, by device, in time order, straight from the database. */
export async function storedReadings(
  databaseUrl: string,
  site: string,
): Promise<Map<string, StoredReading[]>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{
      device: string;
      ts_ms: string;
      status: string | null;
      hashrate_ths: number | null;
      power_w: number | null;
      shares: number | null;
    }>(
      `SELECT d.external_id AS device, (extract(epoch FROM r.ts) * 1000)::bigint::text AS ts_ms, r.status,
              r.hashrate_ths, r.power_w, x.shares_accepted_total AS shares
       FROM readings r
       JOIN devices d ON d.id = r.device_id
       JOIN sites s ON s.id = r.site_id
       LEFT JOIN readings_extra x ON x.site_id = r.site_id AND x.device_id = r.device_id AND x.ts = r.ts
       WHERE s.name = $1
       ORDER BY d.external_id, r.ts`,
      [site],
    );
    const out = new Map<string, StoredReading[]>();
    for (const r of rows) {
      const list = out.get(r.device) ?? [];
      list.push({
        tsMs: Number(r.ts_ms),
        status: r.status,
        hashrateThs: r.hashrate_ths,
        powerW: r.power_w,
        sharesAccepted: r.shares === null ? null : Number(r.shares),
      });
      out.set(r.device, list);
    }
    return out;
  } finally {
    await client.end();
  }
}
