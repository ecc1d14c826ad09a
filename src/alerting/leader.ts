import pg from 'pg';
import type { Logger } from '../log.ts';
import type { LeaderFence } from '../storage/alerts.ts';

/**
 * Which replica evaluates alerts. Every replica of one database runs an engine; exactly one holds
 * the lease, the others try again every evaluation interval.
 */
export interface LeaderLease {
  /** Acquires or confirms leadership; true while this replica holds it. Never throws. */
  check(): Promise<boolean>;
  /** Checked inside every alert write, so a replica that lost the lease writes nothing. */
  readonly fence: LeaderFence | undefined;
  /** Gives leadership up (another replica takes over at its next try). */
  release(): Promise<void>;
}

/** Embedded PGlite is one process on one data directory: it is always the leader. */
export function singleProcessLease(): LeaderLease {
  return { check: async () => true, fence: undefined, release: async () => {} };
}

/** The advisory lock (two int4 keys): "hw" + "at" and 1 for the alert evaluator. */
export const ALERT_LOCK = { classId: 0x68776174, objId: 1 } as const;

/**
 * A Postgres session-level advisory lock held on a connection of its own, outside the pool: the
 * lock lives exactly as long as that session. When the holder dies (process, host or network),
 * Postgres ends the session and releases the lock, and the next replica to try takes it.
 */
export class AdvisoryLockLease implements LeaderLease {
  readonly #url: string;
  readonly #logger: Logger;
  readonly #lock: { classId: number; objId: number };
  /** What the lock elects, for the log and the session's application_name. */
  readonly #role: string;
  #client: pg.Client | undefined;
  #pid: number | undefined;
  #held = false;
  #broken = false;

  constructor(
    databaseUrl: string,
    logger: Logger,
    lock: { classId: number; objId: number } = ALERT_LOCK,
    role = 'alerting',
  ) {
    this.#url = databaseUrl;
    this.#logger = logger;
    this.#lock = lock;
    this.#role = role;
  }

  get fence(): LeaderFence | undefined {
    return this.#held && this.#pid !== undefined ? { ...this.#lock, pid: this.#pid } : undefined;
  }

  #checking: Promise<boolean> | undefined;

  /** One check at a time: the lease is shared by every background job of the replica. */
  check(): Promise<boolean> {
    this.#checking ??= this.#check().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  async #check(): Promise<boolean> {
    try {
      if (this.#broken) await this.#drop();
      const client = this.#client ?? (await this.#connect());
      if (this.#held) {
        // The lock is the session's: a session that still answers still holds it.
        await client.query('SELECT 1');
        return true;
      }
      const { rows } = await client.query<{ ok: boolean; pid: number }>(
        'SELECT pg_try_advisory_lock($1::int4, $2::int4) AS ok, pg_backend_pid() AS pid',
        [this.#lock.classId, this.#lock.objId],
      );
      this.#held = rows[0]?.ok === true;
      this.#pid = rows[0]?.pid;
      if (this.#held) this.#logger.info({ pid: this.#pid }, `${this.#role}: this replica holds the lease`);
      return this.#held;
    } catch (error) {
      if (this.#held) this.#logger.warn({ err: String(error) }, `${this.#role}: leader lock lost`);
      await this.#drop();
      return false;
    }
  }

  async release(): Promise<void> {
    await this.#drop();
  }

  async #connect(): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.#url,
      application_name: `hashwatt-${this.#role}`,
      connectionTimeoutMillis: 5_000,
      query_timeout: 5_000,
      // A half-open connection (dead host, cut network) must end the session on the server too.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    // Unhandled, the error of an idle client would crash the process; the next check reconnects.
    const lost = () => {
      if (this.#client !== client) return; // an old session ending after a reconnect
      this.#broken = true;
      this.#held = false;
    };
    client.on('error', (err) => {
      if (this.#held && this.#client === client)
        this.#logger.warn({ err: err.message }, `${this.#role}: leader lock session failed`);
      lost();
    });
    client.on('end', lost);
    this.#client = client;
    this.#broken = false;
    await client.connect();
    return client;
  }

  async #drop(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    this.#held = false;
    this.#pid = undefined;
    this.#broken = false;
    // Ending the session releases the lock; an already dead one has nothing to release.
    await client?.end().catch(() => {});
  }
}
