import { Hono } from 'hono';
import { alertRoutes } from '../alerting/routes.ts';
import { consoleRoutes } from '../console/index.ts';
import { HashwattError } from '../errors.ts';
import type { FleetReader } from '../fleet/index.ts';
import type { Thresholds } from '../fleet/thresholds.ts';
import { historyRoutes } from '../history/routes.ts';
import { ingestRoutes } from '../ingest/http.ts';
import type { IngestPipeline } from '../ingest/pipeline.ts';
import type { Logger } from '../log.ts';
import { readRoutes } from '../read/index.ts';
import { receiverRoutes, UnmappedSeries, unmappedRoutes } from '../receivers/index.ts';
import { siteRoutes } from '../sites/routes.ts';
import type { Storage } from '../storage/database.ts';
import { type ApiTokenGrant, apiTokenRoutes } from '../tokens/index.ts';
import { API_ROUTES } from './api-doc.ts';
import { requireAdmin, type SiteAuthenticator } from './auth.ts';
import { requireBearer } from './bearer.ts';
import { errorResponse, requestError } from './errors.ts';
import { openApiDocument, openApiRoutes, SERVICE_VERSION } from './openapi.ts';
import { acceptRequestId } from './request-id.ts';

/** Fields gathered while a request runs and logged once at its end: one wide event per request. */
export type WideEvent = Record<string, unknown>;

export interface Readiness {
  ready: boolean;
  reason?: string;
}

/** Renders the Prometheus exposition; the metrics module provides it. */
export interface MetricsEndpoint {
  contentType: string;
  render(): Promise<string>;
}

export interface AppDeps {
  storage: Storage;
  /** A read standby for series and energy (HASHWATT_READ_DATABASE_URL); default `storage`. */
  historyStorage?: Storage;
  /** Days the site-minute rollup is kept (energy reads hours past it); default 90. */
  minuteRetentionDays?: number;
  pipeline: IngestPipeline;
  logger: Logger;
  adminToken: string | undefined;
  authenticateSite: SiteAuthenticator;
  readiness: () => Promise<Readiness>;
  metrics?: MetricsEndpoint;
  /** Bearer token /metrics requires; unset, /metrics is open (the Prometheus convention). */
  metricsToken?: string;
  thresholdDefaults: Thresholds;
  /** The fleet snapshot /metrics reads, shared with the read API (which takes its own when absent). */
  fleet?: FleetReader;
  onSiteDeleted?: (siteId: number) => void;
  /** A site's token rotated or its settings patched through this replica: cached grants go. */
  onSiteChanged?: (siteId: number) => void;
  /** A named token revoked through this replica. */
  onTokensChanged?: () => void;
  /** Named read-only tokens; without it, only the admin and site tokens read. */
  authenticateViewer?: (token: string) => Promise<ApiTokenGrant | undefined>;
  /** What the push receivers could not map, per site; one is made when not given. */
  unmapped?: UnmappedSeries;
}

type Env = { Variables: { requestId: string; event: WideEvent } };

/** The HTTP face of hashwatt; transports and admin API mounted on one Hono app. */
export function createApp(deps: AppDeps) {
  const app = new Hono<Env>();

  app.use(async (c, next) => {
    const started = performance.now();
    // A client's id is echoed and logged only when it is short and header-safe (src/http/request-id.ts).
    const requestId = acceptRequestId(c.req.header('x-request-id'));
    const event: WideEvent = {};
    c.set('requestId', requestId);
    c.set('event', event);
    await next();
    c.header('x-request-id', requestId);
    const status = c.res.status;
    // Health checks and scrapes arrive every few seconds; logging them would drown the rest.
    const quiet =
      status < 400 && (c.req.path === '/healthz' || c.req.path === '/readyz' || c.req.path === '/metrics');
    if (!quiet) {
      deps.logger.info(
        {
          request_id: requestId,
          method: c.req.method,
          path: c.req.path,
          status,
          ms: Math.round(performance.now() - started),
          ...event,
        },
        'request',
      );
    }
  });

  app.onError((thrown, c) => {
    const error = requestError(c, thrown);
    if (!(error instanceof HashwattError)) {
      deps.logger.error({ err: error, request_id: c.get('requestId'), path: c.req.path }, 'unhandled error');
    } else {
      Object.assign(c.get('event'), { error: error.code });
      // A client gone is no fault of ours, but what failed after it left may be: keep its cause.
      if (error.code === 'client_closed_request' && error.cause !== undefined) {
        Object.assign(c.get('event'), { cause: String(error.cause) });
      }
      // A value the database refused reached it past the edge's validation: answered 400, but a
      // gap in a route's schema to close, so it is logged as one.
      if (error.code === 'invalid_value' && error.cause !== undefined) {
        deps.logger.warn(
          { err: error.cause, request_id: c.get('requestId'), path: c.req.path },
          'database refused a value the edge let through',
        );
      }
    }
    return errorResponse(c, error);
  });

  app.notFound((c) =>
    errorResponse(c, new HashwattError('not_found', `no route for ${c.req.method} ${c.req.path}`)),
  );

  app.route('/', openApiRoutes(openApiDocument(API_ROUTES, SERVICE_VERSION)));
  app.route(
    '/',
    consoleRoutes({
      adminToken: deps.adminToken,
      authenticateSite: deps.authenticateSite,
      authenticateViewer: deps.authenticateViewer,
    }),
  );
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const readiness = await deps.readiness();
    return c.json(
      readiness.ready ? { status: 'ready' } : { status: 'not_ready', reason: readiness.reason },
      readiness.ready ? 200 : 503,
    );
  });
  if (deps.metrics) {
    const metrics = deps.metrics;
    if (deps.metricsToken) app.use('/metrics', requireBearer(deps.metricsToken, 'metrics'));
    app.get('/metrics', async (c) =>
      c.body(await metrics.render(), 200, { 'content-type': metrics.contentType }),
    );
  }

  // Ahead of the admin-only middleware below: the read routes authenticate for themselves (the
  // admin, or a site's own token for its site), and a route that answers never reaches it.
  app.route(
    '/api/v1',
    readRoutes({
      storage: deps.storage,
      fleet: deps.fleet,
      thresholdDefaults: deps.thresholdDefaults,
      adminToken: deps.adminToken,
      authenticateSite: deps.authenticateSite,
      authenticateViewer: deps.authenticateViewer,
    }),
  );
  app.route(
    '/api/v1',
    historyRoutes({
      storage: deps.storage,
      ...(deps.historyStorage && { history: deps.historyStorage }),
      ...(deps.minuteRetentionDays !== undefined && { minuteRetentionDays: deps.minuteRetentionDays }),
      adminToken: deps.adminToken,
      authenticateSite: deps.authenticateSite,
      authenticateViewer: deps.authenticateViewer,
    }),
  );
  // Alerts and silences authenticate their readers (any reader, for the sites it reads).
  app.route(
    '/api/v1',
    alertRoutes({
      storage: deps.storage,
      adminToken: deps.adminToken,
      authenticateSite: deps.authenticateSite,
      authenticateViewer: deps.authenticateViewer,
    }),
  );
  app.use('/api/v1/sites/*', requireAdmin(deps.adminToken));
  app.use('/api/v1/sites', requireAdmin(deps.adminToken));
  app.route(
    '/api/v1/sites',
    siteRoutes({
      storage: deps.storage,
      thresholdDefaults: deps.thresholdDefaults,
      onSiteDeleted: deps.onSiteDeleted,
      ...(deps.onSiteChanged && { onSiteChanged: deps.onSiteChanged }),
    }),
  );
  app.use('/api/v1/tokens/*', requireAdmin(deps.adminToken));
  app.use('/api/v1/tokens', requireAdmin(deps.adminToken));
  app.route(
    '/api/v1/tokens',
    apiTokenRoutes({
      storage: deps.storage,
      ...(deps.onTokensChanged && { onTokensChanged: deps.onTokensChanged }),
    }),
  );
  app.route('/api/v1/ingest', ingestRoutes(deps.pipeline, deps.authenticateSite));
  const unmapped =
    deps.unmapped ??
    new UnmappedSeries((site, protocol, count) => deps.pipeline.observer.unmapped(site, protocol, count));
  app.route('/api/v1/sites', unmappedRoutes({ unmapped, storage: deps.storage }));
  app.route(
    '/',
    receiverRoutes(
      { pipeline: deps.pipeline, authenticateSite: deps.authenticateSite, unmapped },
      deps.logger,
    ),
  );
  return app;
}
