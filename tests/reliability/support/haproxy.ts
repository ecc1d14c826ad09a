import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitFor } from './process.ts';

const run = promisify(execFile);

/** Debian's haproxy package; overridable for other layouts. */
export const HAPROXY_BIN = process.env.HASHWATT_HAPROXY_BIN ?? '/usr/sbin/haproxy';

/** One hashwatt replica behind the proxy: a name for HAProxy's stats and the loopback port it serves on. */
export interface HaproxyServer {
  name: string;
  port: number;
}

export interface HaproxyOptions {
  /** Health-check interval; a server is marked down after 2 failed checks, up after 2 good ones. */
  checkIntervalMs?: number;
}

/** A server's state as HAProxy's stats report it: UP, DOWN, "UP 1/2" while rising, MAINT, … */
export type ServerStatus = string;

/** Lines of HAProxy's own output kept for failure messages (server up/down transitions, alerts). */
const KEPT_LINES = 100;

/**
 * The configuration: HTTP mode, one backend of hashwatt replicas, round robin, health checks on
 * /readyz. Each request is balanced on its own (`http-server-close`: no server-side keep-alive
 * pinning a client's requests to one replica); a WebSocket upgrade becomes a tunnel (`timeout
 * tunnel`) that stays on the replica it reached. A connection refused by a dead replica is retried
 * on another one (`retries` + `redispatch`); a request in flight when a replica dies is answered
 * 502 and the agent retries it, as it would without a proxy.
 */
export function haproxyConfig(
  frontendPort: number,
  statsPort: number,
  servers: readonly HaproxyServer[],
  options: HaproxyOptions = {},
): string {
  const inter = options.checkIntervalMs ?? 500;
  return [
    'global',
    '  maxconn 4096',
    // Server state changes (UP/DOWN) and alerts only; requests are not logged.
    '  log stderr format raw daemon notice',
    '',
    'defaults',
    '  mode http',
    '  log global',
    '  option http-server-close',
    '  option redispatch',
    '  retries 2',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  timeout http-request 10s',
    '  timeout http-keep-alive 5s',
    // An upgraded WebSocket lives as long as the agent keeps it; the agents' own heartbeats keep it busy.
    '  timeout tunnel 1h',
    '  timeout client-fin 1s',
    '  timeout server-fin 1s',
    '',
    'frontend hashwatt_in',
    `  bind 127.0.0.1:${frontendPort}`,
    '  default_backend hashwatt',
    '',
    'backend hashwatt',
    '  balance roundrobin',
    // HTTP/1.1 with a Host header: Node refuses a request without one (HAProxy's default check has none).
    '  option httpchk',
    '  http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host hashwatt',
    '  http-check expect status 200',
    // A dead replica's tunnels end at once rather than when their sockets time out.
    `  default-server inter ${inter} fastinter ${inter} downinter ${inter} fall 2 rise 2 on-marked-down shutdown-sessions`,
    ...servers.map((s) => `  server ${s.name} 127.0.0.1:${s.port} check`),
    '',
    'listen stats',
    `  bind 127.0.0.1:${statsPort}`,
    '  stats enable',
    '  stats uri /stats',
    '',
  ].join('\n');
}

/**
 * HAProxy in front of hashwatt replicas, started by the test on loopback ports with a config file
 * of its own in a temp dir (`haproxy -db`: foreground, so it dies with its parent's cleanup).
 */
export class Haproxy {
  readonly port: number;
  readonly url: string;
  readonly statsUrl: string;
  readonly servers: readonly HaproxyServer[];
  readonly #dir: string;
  readonly #child: ChildProcess;
  readonly #lines: string[] = [];
  #exited = false;

  private constructor(port: number, statsPort: number, servers: readonly HaproxyServer[], dir: string) {
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.statsUrl = `http://127.0.0.1:${statsPort}/stats;csv`;
    this.servers = servers;
    this.#dir = dir;
    this.#child = spawn(HAPROXY_BIN, ['-db', '-f', this.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child.once('exit', () => {
      this.#exited = true;
    });
    for (const stream of [this.#child.stdout, this.#child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        this.#lines.push(...chunk.split('\n').filter(Boolean));
        if (this.#lines.length > KEPT_LINES) this.#lines.splice(0, this.#lines.length - KEPT_LINES);
      });
    }
  }

  /** Writes the config, checks it (`haproxy -c`), starts HAProxy and waits until every server is UP. */
  static async start(servers: readonly HaproxyServer[], options: HaproxyOptions = {}): Promise<Haproxy> {
    const dir = mkdtempSync(path.join(tmpdir(), 'hashwatt-haproxy-'));
    const port = await freePort();
    const statsPort = await freePort();
    writeFileSync(path.join(dir, 'haproxy.cfg'), haproxyConfig(port, statsPort, servers, options));
    try {
      await run(HAPROXY_BIN, ['-c', '-q', '-f', path.join(dir, 'haproxy.cfg')], { timeout: 10_000 });
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`haproxy refused its config: ${(error as { stderr?: string }).stderr ?? error}`);
    }
    const proxy = new Haproxy(port, statsPort, servers, dir);
    const up = await waitFor(
      async () => {
        if (proxy.#exited) return true;
        const states = await proxy.serverStates().catch(() => undefined);
        return states !== undefined && servers.every((s) => states.get(s.name) === 'UP');
      },
      20_000,
      100,
    );
    if (!up || proxy.#exited) {
      await proxy.stop();
      throw new Error(`haproxy did not come up with every server UP:\n${proxy.logTail()}`);
    }
    return proxy;
  }

  get configFile(): string {
    return path.join(this.#dir, 'haproxy.cfg');
  }

  get pid(): number | undefined {
    return this.#exited ? undefined : this.#child.pid;
  }

  /** HAProxy's last lines of output (server state changes, alerts). */
  logTail(lines = 20): string {
    return this.#lines.slice(-lines).join('\n');
  }

  /** Each server's status from the stats page's CSV (`svname` → `status`). */
  async serverStates(): Promise<Map<string, ServerStatus>> {
    const text = await (await fetch(this.statsUrl, { signal: AbortSignal.timeout(2_000) })).text();
    const [header, ...rows] = text.split('\n').filter(Boolean);
    const columns = (header ?? '').replace(/^# /, '').split(',');
    const proxyAt = columns.indexOf('pxname');
    const nameAt = columns.indexOf('svname');
    const statusAt = columns.indexOf('status');
    const states = new Map<string, ServerStatus>();
    for (const row of rows) {
      const cells = row.split(',');
      if (cells[proxyAt] !== 'hashwatt' || cells[nameAt] === 'BACKEND') continue;
      states.set(cells[nameAt]!, cells[statusAt]!);
    }
    return states;
  }

  /** Waits until HAProxy reports `name` with `status` (e.g. a restarted replica back UP); false on timeout. */
  async waitForServer(name: string, status: 'UP' | 'DOWN', timeoutMs = 10_000): Promise<boolean> {
    return waitFor(
      async () => (await this.serverStates().catch(() => undefined))?.get(name) === status,
      timeoutMs,
      100,
    );
  }

  /** Stops HAProxy (SIGTERM: immediate stop) and deletes its config dir. */
  async stop(): Promise<void> {
    if (!this.#exited) {
      const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
      this.#child.kill('SIGTERM');
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
