import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import {
  type DatabaseConnection,
  type Driver,
  Kysely,
  PGliteDialect,
  PostgresDialect,
  sql,
  type TransactionSettings,
} from 'kysely';
import pg from 'pg';
import type { Logger } from '../log.ts';
import type { Database } from './schema.ts';

export type Backend = 'postgres' | 'pglite';

/** An open database: the Kysely handle plus what the service needs to know about the backend. */
export interface Storage {
  readonly db: Kysely<Database>;
  readonly backend: Backend;
  /** How many write transactions may usefully run at once (PGlite has one connection). */
  readonly writeConcurrency: number;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  /** Connection pool occupancy (Postgres only). */
  poolStats(): { total: number; idle: number; waiting: number } | undefined;
  /**
   * Calls `onPayload` for every NOTIFY on `channel` after it commits. On Postgres a session of its
   * own listens and reconnects when lost; `onGap` is called when notifications may have been
   * missed (after a reconnect), so a cache can drop what it holds. Resolves to a stop function.
   */
  listen(
    channel: string,
    onPayload: (payload: string) => void,
    onGap: () => void,
  ): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** A postgres:// URL; when absent, embedded PGlite under `dataDir`. */
  databaseUrl: string | undefined;
  dataDir: string;
  poolSize?: number;
  statementTimeoutMs?: number;
  logger: Logger;
}

/** Opens the configured backend. Does not run migrations. */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Storage> {
  return options.databaseUrl ? openPostgres(options.databaseUrl, options) : openPglite(options.dataDir);
}

function openPostgres(url: string, options: OpenDatabaseOptions): Storage {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    // pg waits forever for a connection by default; a dead server must surface as an error quickly.
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: options.statementTimeoutMs ?? 30_000,
    idle_in_transaction_session_timeout: 60_000,
    application_name: 'hashwatt',
  });
  // Idle clients emit 'error' when the server goes away; unhandled, that would crash the process.
  pool.on('error', (err) => options.logger.warn({ err: err.message }, 'postgres idle client error'));
  // A checked-out client whose server dies between statements emits 'error' itself; unhandled, it
  // would crash the process. The statement in progress (if any) still fails and is answered 503.
  pool.on('connect', (client) => {
    client.on('error', (err) => options.logger.warn({ err: err.message }, 'postgres connection lost'));
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    backend: 'postgres',
    writeConcurrency: 2,
    ping: async () => {
      await sql`SELECT 1`.execute(db);
    },
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    listen: (channel, onPayload, onGap) => listenPostgres(url, channel, onPayload, onGap, options.logger),
    close: () => db.destroy(),
  };
}

/** A LISTEN session outside the pool, reconnected a second after it is lost (a gap for the caller). */
async function listenPostgres(
  url: string,
  channel: string,
  onPayload: (payload: string) => void,
  onGap: () => void,
  logger: Logger,
): Promise<() => Promise<void>> {
  let stopped = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  const connect = async (): Promise<void> => {
    const c = new pg.Client({
      connectionString: url,
      application_name: 'hashwatt-changes',
      connectionTimeoutMillis: 5_000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    client = c;
    let lost = false;
    const reconnect = () => {
      if (lost || stopped || client !== c) return;
      lost = true;
      c.end().catch(() => {});
      retry = setTimeout(() => {
        connect().then(onGap);
      }, 1_000);
      retry.unref();
    };
    c.on('error', (err) => {
      logger.warn({ err: err.message }, 'change feed: listen session lost; reconnecting');
      reconnect();
    });
    c.on('end', reconnect);
    c.on('notification', (n) => {
      if (n.channel === channel && n.payload !== undefined) onPayload(n.payload);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch (error) {
      // Down at start or at a retry: keep trying; the caller's caches expire on their own meanwhile.
      logger.warn({ err: String(error) }, 'change feed: cannot listen yet; retrying');
      reconnect();
    }
  };
  await connect();
  return async () => {
    stopped = true;
    clearTimeout(retry);
    await client?.end().catch(() => {});
  };
}

async function openPglite(dataDir: string): Promise<Storage> {
  mkdirSync(dataDir, { recursive: true });
  const pglite = await PGlite.create(dataDir);
  const db = new Kysely<Database>({
    dialect: new SerializedPGliteDialect({ pglite }, () => pglite.syncToFs()),
  });
  return {
    db,
    backend: 'pglite',
    writeConcurrency: 1,
    ping: async () => {
      await sql`SELECT 1`.execute(db);
    },
    poolStats: () => undefined,
    // One process on one data directory: every change is made here, nothing is ever missed.
    listen: async (channel, onPayload) => {
      const stop = await pglite.listen(channel, onPayload);
      return () => stop();
    },
    close: () => db.destroy(),
  };
}

/**
 * PGlite is one connection, and Kysely's driver hands it to every caller at once, so a query issued
 * while another caller's transaction is open would run inside that transaction. Serialising
 * acquire/release gives PGlite the same isolation a pool gives real Postgres.
 */
class SerializedPGliteDialect extends PGliteDialect {
  readonly #afterCommit: () => Promise<void>;

  constructor(config: ConstructorParameters<typeof PGliteDialect>[0], afterCommit: () => Promise<void>) {
    super(config);
    this.#afterCommit = afterCommit;
  }

  override createDriver(): Driver {
    return new SerializedDriver(super.createDriver(), this.#afterCommit);
  }
}

class SerializedDriver implements Driver {
  readonly #inner: Driver;
  readonly #afterCommit: () => Promise<void>;
  #tail: Promise<void> = Promise.resolve();
  readonly #releases = new Map<DatabaseConnection, () => void>();

  constructor(inner: Driver, afterCommit: () => Promise<void>) {
    this.#inner = inner;
    this.#afterCommit = afterCommit;
  }

  init(): Promise<void> {
    return this.#inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const previous = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    const connection = await this.#inner.acquireConnection();
    this.#releases.set(connection, release);
    return connection;
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    await this.#inner.releaseConnection(connection);
    const release = this.#releases.get(connection);
    this.#releases.delete(connection);
    release?.();
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.#inner.beginTransaction(connection, settings);
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await this.#inner.commitTransaction(connection);
    // PGlite's transaction() returns without syncing its filesystem after COMMIT (electric-sql/pglite
    // issue 1065), unlike a plain query. An ack must not run ahead of the commit reaching the files.
    await this.#afterCommit();
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.#inner.rollbackTransaction(connection);
  }

  async destroy(): Promise<void> {
    await this.#tail;
    await this.#inner.destroy();
  }
}
