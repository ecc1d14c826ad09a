import { Counter, Gauge, type Registry } from 'prom-client';
import type { LeaderLease } from '../alerting/leader.ts';
import type { Logger } from '../log.ts';
import type { Storage } from '../storage/database.ts';
import { oldestPendingMinuteMs, oldestPendingMs, type RollupStep, rollupStep } from '../storage/rollups.ts';
import { MINUTE_MS } from './ranges.ts';

/** The advisory lock electing the replica that rolls up: "hw" + "ru", 1. */
export const ROLLUP_LOCK = { classId: 0x68777275, objId: 1 } as const;

export interface RollupJobOptions {
  storage: Storage;
  lease: LeaderLease;
  logger: Logger;
  registry?: Registry;
  /** How often a run starts (default 10 s). */
  intervalMs?: number;
  /**
   * How long after a minute ends it counts as closed (default 5 s): readings of an agent a little
   * behind still land before the minute is built. Later ones mark it again and it is rebuilt.
   */
  graceMs?: number;
  /**
   * Raw readings one transaction builds from, about (default 250 000: 0.6-2 s of Postgres CPU at
   * the measured 2.3 µs per reading with 6 readings per device-minute, 7.5 µs with one, both tiers;
   * docs/rollups.md); the marks' counts size it, so a big site's minute is not a small one's.
   */
  budgetReadings?: number;
  /**
   * A run stops starting transactions of a backlog after this long (default 5 s), to leave the
   * database to ingest; the last minutes are built to the end.
   */
  maxRunMs?: number;
  /**
   * Whether ingest is saturated (its write queue filling). Then a backlog (work older than a few
   * minutes) is built paced: one small transaction at a time, resting so that it spends at most
   * `busyDuty` of the wall time building (default 0.1); reads compute the pending buckets from raw
   * meanwhile (hashwatt_rollup_lag_seconds). The last minutes are built as usual.
   */
  ingestBusy?: () => boolean;
  busyDuty?: number;
  /** Readings of one transaction while ingest is busy (default 25 000). */
  busyBudgetReadings?: number;
  now?: () => number;
}

/** Pending work older than this (past the grace) is a backlog, built paced under saturated ingest. */
const BACKLOG_MS = 3 * MINUTE_MS;

/**
 * Keeps the rollups current (docs/rollups.md): every interval, on the one replica holding the
 * lease, it builds the minutes and hours that ingest marked dirty, in bounded transactions.
 */
export class RollupJob {
  readonly #o: Required<Omit<RollupJobOptions, 'registry'>>;
  #restUntil = 0;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #leader = false;
  readonly #built: Counter | undefined;
  readonly #failures: Counter | undefined;

  constructor(options: RollupJobOptions) {
    this.#o = {
      intervalMs: 10_000,
      graceMs: 5_000,
      budgetReadings: 250_000,
      maxRunMs: 5_000,
      ingestBusy: () => false,
      busyDuty: 0.1,
      busyBudgetReadings: 25_000,
      now: Date.now,
      ...options,
    };
    const registers = options.registry ? [options.registry] : undefined;
    if (registers) {
      this.#built = new Counter({
        name: 'hashwatt_rollup_buckets_built_total',
        help: 'Rollup buckets built or rebuilt from raw readings, by tier (site-minute; site-hour with its device-hours).',
        labelNames: ['tier'],
        registers,
      });
      this.#failures = new Counter({
        name: 'hashwatt_rollup_failures_total',
        help: 'Rollup job runs that failed (rolled back whole; retried at the next interval).',
        registers,
      });
      const job = this;
      new Gauge({
        name: 'hashwatt_rollup_lag_seconds',
        help: 'Age of the oldest bucket waiting to be rolled up (0 when none); reported by the replica holding the rollup lease.',
        registers,
        async collect() {
          if (!job.#leader) return this.set(0);
          const oldest = await oldestPendingMs(job.#o.storage.db).catch(() => null);
          this.set(oldest === null ? 0 : Math.max(0, (job.#o.now() - oldest) / 1000));
        },
      });
    }
  }

  start(): void {
    this.#stopped = false;
    const tick = () => {
      if (this.#stopped) return;
      this.#running = this.#runGuarded().finally(() => {
        this.#running = undefined;
        if (!this.#stopped) this.#timer = setTimeout(tick, this.#o.intervalMs).unref();
      });
    };
    this.#timer = setTimeout(tick, Math.min(1_000, this.#o.intervalMs)).unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
    await this.#o.lease.release();
  }

  /** One run: transactions while closed work remains and the run's time allows. Never throws. */
  async #runGuarded(): Promise<void> {
    try {
      this.#leader = await this.#o.lease.check();
      if (!this.#leader) return;
      const started = this.#o.now();
      if (this.#o.ingestBusy() && (await this.#backlogged(started))) {
        if (started < this.#restUntil) return;
        await this.runOnce(this.#o.busyBudgetReadings);
        const spent = this.#o.now() - started;
        this.#restUntil = this.#o.now() + spent * (1 / this.#o.busyDuty - 1);
        return;
      }
      // The last minutes are built to the end in this run, busy ingest or not: they are due before
      // the next minute closes, and their cost per reading is the same whenever it is paid. Stopped
      // at one transaction under busy ingest, a minute of four 34 000-reading/s sites took four
      // runs, and the job fell a site-minute further behind every minute (docs/rollups.md). Only
      // a backlog keeps to maxRunMs, and to one transaction while ingest is busy.
      let step: RollupStep;
      do step = await this.runOnce();
      while (
        step.more &&
        !this.#stopped &&
        ((!this.#o.ingestBusy() && this.#o.now() - started < this.#o.maxRunMs) ||
          !(await this.#backlogged(this.#o.now())))
      );
    } catch (error) {
      this.#failures?.inc();
      this.#o.logger.warn({ err: String(error) }, 'rollup run failed; retrying at the next interval');
    }
  }

  /**
   * Whether the work waiting is a backlog (an upgrade's, a long outage's backfill) rather than the
   * last minutes. Keeping current is paid per reading whatever the pacing (docs/rollups.md), so it
   * is never deferred: paced, the job fell further behind every minute under sustained load. Only
   * a backlog is built paced while ingest is saturated.
   */
  async #backlogged(nowMs: number): Promise<boolean> {
    const oldest = await oldestPendingMinuteMs(this.#o.storage.db);
    return oldest !== null && oldest < nowMs - this.#o.graceMs - BACKLOG_MS;
  }

  /** One bounded transaction of work, regardless of the lease (tests and the benchmark call it). */
  async runOnce(budgetReadings = this.#o.budgetReadings): Promise<RollupStep> {
    const closedMs = Math.floor((this.#o.now() - this.#o.graceMs) / MINUTE_MS) * MINUTE_MS;
    const step = await rollupStep(this.#o.storage.db, closedMs, budgetReadings);
    if (step.siteMinutes > 0) this.#built?.inc({ tier: '1m' }, step.siteMinutes);
    if (step.hours > 0) this.#built?.inc({ tier: '1h' }, step.hours);
    return step;
  }

  /** Builds everything closed until nothing is left (tests, the upgrade, the benchmark). */
  async runUntilIdle(): Promise<number> {
    let steps = 0;
    for (;;) {
      const step = await this.runOnce();
      steps++;
      if (!step.more) return steps;
    }
  }
}
