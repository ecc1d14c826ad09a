import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { waitFor } from '../../../src/alerting/testing.ts';

/**
 * The real `prometheus` binary (Debian's, /usr/bin/prometheus) as a child process with a config
 * of the test's own, its own data directory and a random loopback port, as tests/e2e/prometheus.test.ts
 * runs it.
 */

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

export interface PrometheusProcess {
  /** The web/API base URL. */
  readonly url: string;
  /** Everything it printed (stdout and stderr). */
  log(): string;
  /** True once the process has exited. */
  exited(): boolean;
  /**
   * SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone and its directory removed.
   * Safe to call twice. On SIGTERM Prometheus stops scraping and flushes its remote_write queues.
   */
  stop(graceMs?: number): Promise<void>;
}

/** Starts Prometheus with `config` (a prometheus.yml as an object) and waits until it is ready. */
export async function startPrometheus(config: Record<string, unknown>): Promise<PrometheusProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), 'hashwatt-e2e-prometheus-'));
  const configFile = path.join(dir, 'prometheus.yml');
  writeFileSync(configFile, stringify(config));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let log = '';
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (error) => reject(new Error(`prometheus did not start: ${error.message}`)));
    child.once('exit', (code) => reject(new Error(`prometheus exited (${code}):\n${log}`)));
  });
  failed.catch(() => {});

  let stopped: Promise<void> | undefined;
  const stop = (graceMs = 10_000): Promise<void> => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await gone;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  try {
    await Promise.race([
      waitFor('Prometheus to be ready', async () => (await fetch(`${url}/-/ready`)).ok, 20_000, 100),
      failed,
    ]);
  } catch (error) {
    await stop(1_000);
    throw error;
  }
  return {
    url,
    log: () => log,
    exited: () => child.exitCode !== null || child.signalCode !== null,
    stop,
  };
}
