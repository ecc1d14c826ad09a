import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';

/** The repository root, where `node src/main.ts` runs. */
export const REPO_ROOT = path.resolve(import.meta.dirname, '../../..');

// The same admin token as the in-process tests, so both can use tests/support/service.ts's helpers.
import { ADMIN_TOKEN } from '../../support/service.ts';

export { ADMIN_TOKEN };

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A loopback port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Polls `check` until it returns true, at most `timeoutMs`; false when it never did. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

/** Resident set size of a process in MiB, from /proc; undefined once it is gone. */
export function rssMb(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

/**
 * Peak resident set size of a process in MiB (the kernel's high-water mark, VmHWM): unlike sampling
 * VmRSS, no spike between samples escapes it. Undefined once the process is gone.
 */
export function peakRssMb(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmHWM:\s+(\d+)/.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Lines of output kept per process: enough to explain a failure, bounded so a chatty child cannot grow the test. */
const KEPT_LINES = 200;

/**
 * hashwatt as a child process (`node src/main.ts`), the way it runs in production: the scenarios
 * kill it, stop it gracefully and start it again on the same port.
 */
export class HashwattProcess {
  readonly port: number;
  readonly url: string;
  readonly #env: Record<string, string>;
  readonly #ownProcessGroup: boolean;
  readonly #lines: string[] = [];
  /** Lines logged at error or fatal (pino levels 50, 60), kept apart so chatty warnings cannot push them out. */
  readonly errors: string[] = [];
  /** Exits nobody asked for (a crash), with the output that led to them. */
  readonly crashes: { code: number | null; signal: NodeJS.Signals | null; log: string }[] = [];
  #stopping = false;
  #child: ChildProcess | undefined;
  #exit: Promise<Exit> | undefined;

  constructor(port: number, env: Record<string, string>, options: { ownProcessGroup?: boolean } = {}) {
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.#env = env;
    this.#ownProcessGroup = options.ownProcessGroup ?? false;
  }

  /**
   * Starts hashwatt on a free port with `DATABASE_URL` and waits until /readyz answers 200.
   * `ownProcessGroup`: a terminal's Ctrl-C reaches only the parent, which then stops hashwatt itself.
   */
  static async start(
    databaseUrl: string,
    env: Record<string, string> = {},
    options: { ownProcessGroup?: boolean } = {},
  ): Promise<HashwattProcess> {
    const service = new HashwattProcess(
      await freePort(),
      { DATABASE_URL: databaseUrl, HASHWATT_ADMIN_TOKEN: ADMIN_TOKEN, LOG_LEVEL: 'warn', ...env },
      options,
    );
    await service.start();
    return service;
  }

  get pid(): number | undefined {
    return this.#child?.exitCode === null ? this.#child.pid : undefined;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** The last lines the process wrote (stdout and stderr), for failure messages. */
  logTail(lines = 20): string {
    return this.#lines.slice(-lines).join('\n');
  }

  /** Starts (or restarts) the process on this port; resolves once it is ready. */
  async start(readyTimeoutMs = 30_000): Promise<void> {
    if (this.running) throw new Error('hashwatt is already running');
    const child = spawn(process.execPath, ['src/main.ts'], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        PORT: String(this.port),
        HOST: '127.0.0.1',
        ...this.#env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: this.#ownProcessGroup,
    });
    this.#child = child;
    this.#stopping = false;
    this.#exit = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => {
        if (!this.#stopping) this.crashes.push({ code, signal, log: this.logTail(40) });
        resolve({ code, signal });
      });
    });
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop() ?? '';
        this.#lines.push(...parts);
        for (const line of parts) {
          if (/"level":(50|60)/.test(line) && this.errors.length < KEPT_LINES) this.errors.push(line);
        }
        if (this.#lines.length > KEPT_LINES) this.#lines.splice(0, this.#lines.length - KEPT_LINES);
      });
    }
    const ready = await waitFor(
      async () => {
        if (!this.running) return true;
        try {
          return (await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2_000) })).ok;
        } catch {
          return false;
        }
      },
      readyTimeoutMs,
      100,
    );
    if (!ready || !this.running) {
      this.#child.kill('SIGKILL');
      throw new Error(`hashwatt did not become ready on ${this.url}:\n${this.logTail()}`);
    }
  }

  /** Sends a signal; resolves with how the process ended (SIGKILL'd if it outlives `timeoutMs`). */
  async signal(signal: NodeJS.Signals, timeoutMs = 40_000): Promise<Exit> {
    const child = this.#child;
    const exit = this.#exit;
    if (!child || !exit) throw new Error('hashwatt was never started');
    if (!this.running) {
      const { code, signal: by } = await exit;
      throw new Error(`hashwatt had already exited (code ${code}, signal ${by}):\n${this.logTail(40)}`);
    }
    this.#stopping = true;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    try {
      return await exit;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops the process whatever state it is in (cleanup). */
  async stop(): Promise<void> {
    if (this.running) await this.signal('SIGTERM', 15_000);
  }
}
