import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { Gauge, type Registry } from 'prom-client';
import { type AlertEngine, type AlertingTuning, createAlerting } from './alerting/index.ts';
import { AdvisoryLockLease, ALERT_LOCK, type LeaderLease, singleProcessLease } from './alerting/leader.ts';
import { startChangeFeed, TokenCache } from './changes/index.ts';
import type { Config } from './config.ts';
import { FleetReader } from './fleet/index.ts';
import { createApp, type Readiness } from './http/app.ts';
import { DeviceDirectory } from './ingest/device-directory.ts';
import { LatestStateWriter } from './ingest/latest-state.ts';
import { type AuthenticatedSite, IngestPipeline } from './ingest/pipeline.ts';
import { StreamServer } from './ingest/websocket.ts';
import { GroupCommitWriter } from './ingest/writer.ts';
import type { Logger } from './log.ts';
import { createMetrics, type Metrics } from './metrics/index.ts';
import { UnmappedSeries } from './receivers/index.ts';
import { RollupJob, type RollupJobOptions } from './rollups/job.ts';
import { authenticateToken } from './sites/service.ts';
import { openDatabase, type Storage } from './storage/database.ts';
import { migrateToLatest, pendingMigrations } from './storage/migrate.ts';
import { dropExpiredPartitions, ensurePartitions, partitionsAwaitingRollup } from './storage/partitions.ts';
import { applyReaderGrants, READER_ROLE } from './storage/reader-grants.ts';
import { replicaLagSeconds } from './storage/replication.ts';
import { findSite } from './storage/sites.ts';
import { type ApiTokenGrant, authenticateApiToken } from './tokens/index.ts';

/** Knobs tests and benchmarks turn; production uses the defaults. */
export interface ServiceTuning {
  maxBatchReadings?: number;
  flushDelayMs?: number;
  queueDelayTargetMs?: number;
  /** How often committed readings move devices' latest state forward. */
  latestFlushMs?: number;
  maxQueuedReadings?: number;
  maxQueuedBytes?: number;
  heartbeatMs?: number;
  maintenanceIntervalMs?: number;
  /** Shortest interval between fleet snapshots (it grows with the aggregate's cost). */
  fleetRefreshMs?: number;
  alerting?: AlertingTuning;
  rollups?: Partial<Pick<RollupJobOptions, 'intervalMs' | 'graceMs' | 'budgetReadings' | 'maxRunMs'>>;
}

export interface RunningService {
  readonly url: string;
  /** The HTTP app as served: tests walk its registered routes and call it in-process. */
  readonly app: ReturnType<typeof createApp>;
  readonly storage: Storage;
  readonly server: Server;
  readonly fleet: FleetReader;
  readonly metrics: Metrics;
  readonly alerting: AlertEngine;
  /** The rollup job of this replica (it builds only while holding the lease). */
  readonly rollups: RollupJob;
  /** Devices' latest state, written behind the committed readings; `flush()` catches it up now. */
  readonly latest: LatestStateWriter;
  /** Graceful stop: refuse new work, commit and ack what was admitted, close sockets and the database. */
  stop(): Promise<void>;
}

async function openAndMigrate(config: Config, logger: Logger): Promise<Storage> {
  const storage = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.dbPoolSize,
    statementTimeoutMs: config.dbStatementTimeoutMs,
    logger,
  });
  try {
    const applied = await migrateToLatest(storage.db);
    if (applied.length > 0) logger.info({ migrations: applied }, 'migrations applied');
    // Not fatal: without the privilege to grant (a managed database's app user), the operator grants by hand.
    await applyReaderGrants(storage.db).catch((error: unknown) =>
      logger.warn(
        { err: String(error), role: READER_ROLE },
        'could not set the dashboard reader role’s grants',
      ),
    );
    return storage;
  } catch (error) {
    await storage.close();
    throw error;
  }
}

/** Opens the database, migrates, and serves HTTP and WebSocket ingest until stopped. */
export async function startService(
  config: Config,
  logger: Logger,
  tuning: ServiceTuning = {},
): Promise<RunningService> {
  const storage = await openAndMigrate(config, logger);
  // History reads on a streaming standby: never migrated (it replays the primary's schema).
  const history = config.readDatabaseUrl
    ? await openDatabase({
        databaseUrl: config.readDatabaseUrl,
        dataDir: config.dataDir,
        logger,
        poolSize: config.dbPoolSize,
        statementTimeoutMs: config.dbStatementTimeoutMs,
      })
    : undefined;
  for (const notice of config.notices) logger.warn(notice);

  // One lease elects the replica that runs the deployment's background work: alert evaluation,
  // rollups, the shared fleet aggregate and retention. PGlite is one process: always this one.
  // The alert lock is the job lock: alert writes are fenced on it (src/storage/alerts.ts).
  const JOB_LOCK = ALERT_LOCK;
  const jobs: LeaderLease =
    storage.backend === 'postgres' && config.databaseUrl
      ? new AdvisoryLockLease(config.databaseUrl, logger, JOB_LOCK, 'jobs')
      : singleProcessLease();

  const partitionPolicy = { retentionDays: config.retentionDays, aheadDays: config.partitionsAheadDays };
  const maintainPartitions = async () => {
    const now = Date.now();
    const created = await ensurePartitions(storage.db, now, partitionPolicy);
    const dropped = await dropExpiredPartitions(storage.db, now, config.retention);
    if (created.length + dropped.length > 0) {
      logger.info({ created: created.length, newest: created.at(-1), dropped }, 'partitions maintained');
    }
    const waiting = await partitionsAwaitingRollup(storage.db, now, config.retention.raw);
    if (waiting.length > 0)
      logger.info({ partitions: waiting }, 'raw partitions past retention kept until they are rolled up');
  };
  // Every replica at start (idempotent, serialised by a lock): partitions exist before ingest.
  await maintainPartitions();
  const maintenance = setInterval(() => {
    jobs
      .check()
      .then((leader) => (leader ? maintainPartitions() : undefined))
      .catch((err) => logger.warn({ err: String(err) }, 'partition maintenance failed'));
  }, tuning.maintenanceIntervalMs ?? 3_600_000);
  maintenance.unref();

  let stopping = false;
  let migrated = false;
  const readiness = async (): Promise<Readiness> => {
    if (stopping) return { ready: false, reason: 'shutting down' };
    try {
      await storage.ping();
    } catch (error) {
      return { ready: false, reason: `database unreachable: ${(error as Error).message}` };
    }
    if (!migrated) {
      const pending = await pendingMigrations(storage.db);
      if (pending.length > 0) return { ready: false, reason: `migrations pending: ${pending.join(', ')}` };
      migrated = true;
    }
    return { ready: true };
  };

  let streams: StreamServer | undefined;
  let writer: GroupCommitWriter | undefined;
  let latest: LatestStateWriter | undefined;
  const fleet = new FleetReader(storage, config.thresholds, {
    ...(storage.backend === 'postgres' && { shared: { isWriter: () => jobs.check() } }),
    onRefreshError: (err) => logger.warn({ err: String(err) }, 'fleet snapshot failed'),
  });
  fleet.start(tuning.fleetRefreshMs ?? 1_000);
  const metrics = createMetrics({
    fleet,
    storage,
    writer: () => writer,
    latest: () => latest,
    streams: () => streams?.connections ?? 0,
    ready: async () => (await readiness()).ready,
    perDeviceMax: config.metricsPerDeviceMax,
  });

  const alerting = createAlerting(
    {
      storage,
      lease: jobs,
      fleet,
      logger,
      registry: metrics.registry,
      databaseUrl: config.databaseUrl,
      intervalMs: config.alertIntervalMs,
      alertmanagerUrls: config.alertmanagerUrls,
      webhookUrls: config.webhookUrls,
      retentionDays: config.alertHistoryDays,
    },
    tuning.alerting,
  );

  const rollups = new RollupJob({
    storage,
    logger,
    registry: metrics.registry,
    lease: jobs,
    intervalMs: config.rollupIntervalMs,
    // Ingest first: with its write queue half full the job paces itself (docs/rollups.md).
    ingestBusy: () => writer !== undefined && writer.depth.readings * 2 >= writer.queueLimit,
    // PGlite has one connection: a rollup transaction holds ingest off while it runs, so it does
    // little at a time (a backlog then takes more runs, each a short pause for the writers).
    ...(storage.backend === 'pglite' && { budgetReadings: 50_000, maxRunMs: 1_000 }),
    ...tuning.rollups,
  });

  writer = new GroupCommitWriter({
    storage,
    logger,
    maxBatchReadings: tuning.maxBatchReadings ?? 5_000,
    flushDelayMs: tuning.flushDelayMs ?? 5,
    // Half a second of work at the measured commit rate keeps every connection fed through the
    // agents' round trips; deeper queues only add latency and heap (docs/performance.md).
    // One second of work: agents flush about once a second, so the fleet's readings arrive in
    // bursts of up to a second's worth; half a second refused those bursts at 80 % of the rate
    // the writer sustains (docs/performance.md, "Admission").
    queueDelayTargetMs: tuning.queueDelayTargetMs ?? 1_000,
    maxQueuedReadings: tuning.maxQueuedReadings ?? 100_000,
    maxQueuedBytes: tuning.maxQueuedBytes ?? 48 * 1024 * 1024,
    ensurePartitions: async () => {
      await ensurePartitions(storage.db, Date.now(), partitionPolicy);
    },
    observer: metrics.writerObserver,
  });
  latest = new LatestStateWriter({
    storage,
    logger,
    flushMs: tuning.latestFlushMs ?? 1_000,
    observer: metrics.latestObserver,
  });
  const directory = new DeviceDirectory(storage.db, config.maxDevicesPerSite);
  const pipeline = new IngestPipeline({
    directory,
    writer,
    latest,
    retentionDays: config.retentionDays,
    observer: metrics.ingestObserver,
  });
  // Grants are cached per replica (no database round trip per request or frame); the change feed
  // below drops them the moment a token changes on any replica, and they expire after 10 s anyway.
  const siteGrants = new TokenCache<AuthenticatedSite>({ ttlMs: 10_000 });
  const viewerGrants = new TokenCache<ApiTokenGrant>({ ttlMs: 10_000 });
  const authenticateSite = (token: string) => siteGrants.get(token, () => authenticateToken(storage, token));
  const authenticateViewer = (token: string) =>
    viewerGrants.get(token, () => authenticateApiToken(storage, token));
  const forgetSite = (id: number) => {
    directory.forgetSite(id);
    latest.forgetSite(id);
    unmapped.forgetSite(id);
  };
  const unmapped = new UnmappedSeries((site, protocol, count) =>
    metrics.ingestObserver.unmapped(site, protocol, count),
  );

  if (history) registerReplicaLag(metrics.registry, history, logger);
  const app = createApp({
    storage,
    ...(history && { historyStorage: history }),
    minuteRetentionDays: config.retention.site1m,
    fleet,
    authenticateViewer,
    pipeline,
    logger,
    adminToken: config.adminToken,
    metricsToken: config.metricsToken,
    authenticateSite,
    readiness,
    thresholdDefaults: config.thresholds,
    onSiteDeleted: (id) => {
      siteGrants.drop((site) => site.id === id);
      forgetSite(id);
    },
    onSiteChanged: (id) => siteGrants.drop((site) => site.id === id),
    onTokensChanged: () => viewerGrants.drop(),
    unmapped,
    metrics: metrics.endpoint,
  });
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  streams = new StreamServer({
    pipeline,
    authenticate: authenticateSite,
    logger,
    ...(tuning.heartbeatMs && { heartbeatMs: tuning.heartbeatMs }),
  });
  streams.attach(server);
  const stopChangeFeed = await startChangeFeed(
    storage,
    {
      changed: (table, id) => {
        if (table === 'api_tokens') viewerGrants.drop();
        if (table !== 'sites') return;
        siteGrants.drop((site) => site.id === id);
        // Deleted (perhaps by another replica): what this replica holds of it goes too.
        findSite(storage.db, id)
          .then((site) => site || forgetSite(id))
          .catch(() => {});
        streams?.revalidate(id).catch(() => {});
      },
      gap: () => {
        siteGrants.drop();
        viewerGrants.drop();
        streams?.revalidate().catch(() => {});
      },
    },
    logger,
  );
  // Node's default keep-alive (5 s) is shorter than many agents' push interval; keep sockets warm.
  server.keepAliveTimeout = 65_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
  } catch (error) {
    // A port in use: the caller says so and exits; close what is open so PGlite shuts down cleanly.
    clearInterval(maintenance);
    fleet.stop();
    await latest.close();
    await stopChangeFeed();
    await history?.close();
    await storage.close();
    throw error;
  }
  const { port } = server.address() as AddressInfo;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info(
    { url, backend: storage.backend, data_dir: storage.backend === 'pglite' ? config.dataDir : undefined },
    'hashwatt listening',
  );
  alerting.start(url);
  rollups.start();

  return {
    url,
    app,
    storage,
    server,
    fleet,
    metrics,
    alerting,
    rollups,
    latest,
    stop: async () => {
      if (stopping) return;
      stopping = true;
      clearInterval(maintenance);
      fleet.stop();
      const alertingStopped = alerting.stop();
      const rollupsStopped = rollups.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Admitted work commits and is acknowledged before any socket is closed.
      await Promise.all([streams?.close(config.shutdownTimeoutMs), pipeline.close()]);
      // Keep-alive sockets that finish a response after close() would hold it open; sweep them.
      const sweep = setInterval(() => server.closeIdleConnections(), 100);
      const deadline = setTimeout(() => server.closeAllConnections(), config.shutdownTimeoutMs);
      server.closeIdleConnections();
      await closed;
      clearInterval(sweep);
      clearTimeout(deadline);
      await alertingStopped;
      await rollupsStopped;
      await stopChangeFeed();
      await history?.close();
      await storage.close();
      logger.info('hashwatt stopped');
    },
  };
}

/** `hashwatt_read_replica_lag_seconds`: the history standby's replay lag, read at scrape time. */
function registerReplicaLag(registry: Registry, history: Storage, logger: Logger): void {
  new Gauge({
    name: 'hashwatt_read_replica_lag_seconds',
    help: 'How far the history standby (HASHWATT_READ_DATABASE_URL) replays behind the primary; -1 when it is unreachable or no standby.',
    registers: [registry],
    async collect() {
      try {
        this.set((await replicaLagSeconds(history.db)) ?? -1);
      } catch (error) {
        logger.warn({ err: String(error) }, 'read standby: lag query failed');
        this.set(-1);
      }
    },
  });
}
