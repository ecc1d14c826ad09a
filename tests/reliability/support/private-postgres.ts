import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, waitFor } from './process.ts';

const run = promisify(execFile);

/** Where Debian puts the server binaries; overridable for other layouts. */
const PG_BIN = process.env.HASHWATT_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/**
 * A Postgres server of this test alone, in a temp dir on a free loopback port, so the test may stop
 * and start it without touching the server other test files share. Runs as the `postgres` OS user
 * when the test runs as root (initdb refuses root).
 */
export class PrivatePostgres {
  readonly dir: string;
  readonly port: number;
  readonly #asUser: string[];

  private constructor(dir: string, port: number) {
    this.dir = dir;
    this.port = port;
    this.#asUser = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
  }

  /** initdb + start; the caller must `remove()` it (also on failure). */
  static async create(): Promise<PrivatePostgres> {
    const dir = mkdtempSync(path.join(tmpdir(), 'hashwatt-pg-'));
    // The server runs as `postgres`: it needs the dir (data and socket) to be its own.
    chmodSync(dir, 0o777);
    const server = new PrivatePostgres(dir, await freePort());
    try {
      await server.#exec('initdb', ['-D', server.dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync']);
      await server.start();
      const client = new pg.Client({ connectionString: server.url('postgres') });
      await client.connect();
      await client.query('CREATE DATABASE hashwatt');
      await client.end();
      return server;
    } catch (error) {
      await server.remove();
      throw error;
    }
  }

  /**
   * A streaming standby of this server: `pg_basebackup -R` into a directory of its own (it writes
   * standby.signal and primary_conninfo), started on its own port. The caller removes it too.
   */
  async createStandby(): Promise<PrivatePostgres> {
    const dir = mkdtempSync(path.join(tmpdir(), 'hashwatt-pg-standby-'));
    chmodSync(dir, 0o777);
    const standby = new PrivatePostgres(dir, await freePort());
    try {
      await standby.#exec('pg_basebackup', [
        '-h',
        '127.0.0.1',
        '-p',
        String(this.port),
        '-U',
        'postgres',
        '-D',
        standby.dataDir,
        '-R',
        '-X',
        'stream',
        // A spread checkpoint would make the backup wait for up to half the checkpoint timeout.
        '--checkpoint=fast',
        '--no-sync',
      ]);
      await standby.start();
      return standby;
    } catch (error) {
      await standby.remove();
      throw error;
    }
  }

  get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  url(database = 'hashwatt'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async #exec(tool: string, args: string[]): Promise<void> {
    const [command, ...rest] = [...this.#asUser, path.join(PG_BIN, tool), ...args];
    await run(command!, rest, { timeout: 60_000 });
  }

  /** Starts the server and waits until it accepts connections. */
  async start(): Promise<void> {
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=on`;
    await this.#exec('pg_ctl', [
      'start',
      '-D',
      this.dataDir,
      '-w',
      '-t',
      '60',
      '-l',
      this.logFile,
      '-o',
      options,
    ]);
    const up = await waitFor(async () => {
      const client = new pg.Client({
        connectionString: this.url('postgres'),
        connectionTimeoutMillis: 1_000,
      });
      try {
        await client.connect();
        await client.end();
        return true;
      } catch {
        return false;
      }
    }, 30_000);
    if (!up) throw new Error(`private Postgres on port ${this.port} did not come up`);
  }

  get logFile(): string {
    return path.join(this.dir, 'postgres.log');
  }

  /** Stops the server: `fast` rolls back open transactions and disconnects clients; `immediate` is a crash. */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.#exec('pg_ctl', ['stop', '-D', this.dataDir, '-m', mode, '-w', '-t', '60']);
  }

  /** Stops the server if it runs and deletes its files. */
  async remove(): Promise<void> {
    try {
      await this.#exec('pg_ctl', ['stop', '-D', this.dataDir, '-m', 'immediate', '-w', '-t', '30']);
    } catch {
      // not running (or never initialised)
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
