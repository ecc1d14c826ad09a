/**
 * Every route the service serves, described for the OpenAPI document with the zod schemas the
 * routes validate with. tests/openapi.test.ts holds this list to the app's registered routes.
 */
import { z } from 'zod';
import {
  AcknowledgeRequest,
  AlertIdParams,
  NewSilenceRequest,
  SilenceIdParams,
  SilencesQuery,
} from '../alerting/actions.ts';
import { AlertsQuery, SiteAlertsQuery } from '../alerting/routes.ts';
import { EnergyQuery } from '../history/energy.ts';
import { SeriesQuery } from '../history/query.ts';
import { MAX_READINGS_PER_BATCH } from '../ingest/envelope.ts';
import { ReadingSchema } from '../ingest/reading.ts';
import { DevicesQuery } from '../read/index.ts';
import { DeleteSiteQuery } from '../sites/routes.ts';
import { NewSiteRequest, SiteIdParams, SitePatchRequest } from '../sites/service.ts';
import { ApiTokenIdParams, NewApiTokenRequest } from '../tokens/service.ts';
import type { RouteDoc } from './openapi.ts';

const NoQuery = z.strictObject({});

const ErrorEnvelope = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    field: z.string().optional(),
    retry_after_ms: z.number().optional(),
    request_id: z.string().optional(),
  }),
});

const ok = (description: string, schema?: z.ZodType) => ({ description, ...(schema && { schema }) });
const error = (description: string) => ({ description, schema: ErrorEnvelope });
const ADMIN_ERRORS = {
  '400': error('invalid input, naming the field'),
  '401': error('missing or wrong admin token'),
};
const READ_ERRORS = {
  '400': error('invalid query, naming the parameter'),
  '401': error('missing or unknown token'),
  '404': error('no such site, or not one this token may read'),
};

/** Acknowledging and silencing: any reader authenticates; only the admin and operators act. */
const ACTION_ERRORS = {
  '400': error('invalid input, naming the field'),
  '401': error('missing or unknown token'),
  '403': error('`forbidden`: a viewer or site token (or an operator limited to some sites, for every site)'),
};

const Acknowledgement = z.object({
  by: z.string().describe('the named token\'s name, or "admin"'),
  at: z.string(),
  comment: z.string().nullable(),
});
const AlertView = z.object({
  id: z.number(),
  alertname: z.string(),
  severity: z.string(),
  state: z.enum(['pending', 'firing', 'resolved']),
  site: z.object({ id: z.number(), name: z.string(), kind: z.string() }),
  value: z.number().nullable(),
  threshold: z.number().nullable(),
  started_at: z.string(),
  fired_at: z.string().nullable(),
  resolved_at: z.string().nullable(),
  last_notified_at: z.string().nullable(),
  summary: z.string().nullable(),
  description: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  annotations: z.record(z.string(), z.string()),
  acknowledgement: Acknowledgement.nullable(),
  silenced_by: z.array(z.number()).describe('ids of the silences holding it now'),
});
const SilenceView = z.object({
  id: z.number(),
  state: z.enum(['active', 'expired']),
  site: z.object({ id: z.number(), name: z.string() }).nullable().describe('null: every site'),
  alertname: z.string().nullable().describe('null: every alert'),
  starts_at: z.string(),
  ends_at: z.string().describe('the end it was created with'),
  expired_at: z.string().nullable(),
  expired_by: z.string().nullable(),
  effective_ends_at: z.string(),
  comment: z.string(),
  created_by: z.string(),
  created_at: z.string(),
});
const AlertAnswer = z.object({ alert: AlertView });
const SilenceAnswer = z.object({ silence: SilenceView });

const Rejection = z.object({ index: z.number(), field: z.string(), code: z.string(), message: z.string() });
const IngestAnswer = z.object({
  accepted: z.number(),
  duplicates: z.number(),
  accepted_samples: z.number(),
  duplicate_samples: z.number(),
  rejected: z.array(Rejection),
});
const IngestBody = z.strictObject({ readings: z.array(ReadingSchema).max(MAX_READINGS_PER_BATCH) });
const SiteDeviceParams = z.strictObject({
  id: SiteIdParams.shape.id,
  device: z.string().describe("the device's id, or its URL-encoded name (names may contain /)"),
});
const Series = z.object({
  metric: z.string(),
  unit: z.string(),
  step_s: z.number(),
  agg: z.enum(['avg', 'min', 'max', 'last']),
  source: z.enum(['raw', '1m', '1h']),
  points: z.array(z.tuple([z.number(), z.number().nullable()])),
  power_source: z.array(z.string().nullable()).optional(),
});

const RemoteWriteQuery = NoQuery;
const InfluxV2Query = z.object({
  org: z.string().optional().describe('accepted and ignored: the token names the site'),
  bucket: z.string().optional().describe('accepted and ignored'),
  precision: z.enum(['ns', 'us', 'ms', 's']).optional(),
});
const InfluxV1Query = z.object({
  db: z.string().optional().describe('accepted and ignored'),
  precision: z.enum(['n', 'ns', 'u', 'us', 'ms', 's', 'm', 'h']).optional(),
  u: z.string().optional().describe('ignored'),
  p: z.string().optional().describe('the site token, when not in Authorization'),
});
const influxError = {
  description: 'InfluxDB error body',
  schema: z.object({ code: z.string(), message: z.string() }),
};

export const API_ROUTES: readonly RouteDoc[] = [
  {
    method: 'get',
    path: '/healthz',
    summary: 'the process is alive',
    tag: 'service',
    auth: 'none',
    responses: { '200': ok('alive') },
  },
  {
    method: 'get',
    path: '/readyz',
    summary: 'ready: the database answers and migrations are applied',
    tag: 'service',
    auth: 'none',
    responses: { '200': ok('ready'), '503': ok('not ready, with the reason') },
  },
  {
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus exposition: ingest health and per-site fleet gauges (docs/metrics.md)',
    tag: 'service',
    auth: 'metrics',
    responses: { '200': { description: 'text exposition format', contentType: 'text/plain' } },
  },
  {
    method: 'get',
    path: '/',
    summary: 'the web console (src/console/): one page that reads the API with the token it is given',
    tag: 'console',
    auth: 'none',
    responses: { '200': { description: 'HTML', contentType: 'text/html' }, '304': ok('not modified') },
  },
  {
    method: 'get',
    path: '/console/assets/:file',
    summary: "the console's scripts and styles, served from the package",
    tag: 'console',
    auth: 'none',
    params: z.strictObject({ file: z.string() }),
    responses: {
      '200': { description: 'the file', contentType: 'text/javascript' },
      '304': ok('not modified'),
      '404': error('no such asset'),
    },
  },
  {
    method: 'get',
    path: '/console/session',
    summary: "who the console's token is: its role, name and sites",
    tag: 'console',
    auth: 'reader',
    query: NoQuery,
    responses: {
      '200': ok('the session'),
      '400': error('invalid query'),
      '401': error('missing or unknown token'),
    },
  },
  {
    method: 'get',
    path: '/openapi.json',
    summary: 'this document',
    tag: 'service',
    auth: 'none',
    responses: { '200': ok('OpenAPI 3.1') },
  },
  {
    method: 'get',
    path: '/docs',
    summary: 'interactive API docs',
    tag: 'service',
    auth: 'none',
    responses: { '200': { description: 'HTML', contentType: 'text/html' } },
  },
  {
    method: 'post',
    path: '/api/v1/sites',
    summary: 'create a site; its ingest token is returned only here',
    tag: 'sites',
    auth: 'admin',
    query: NoQuery,
    body: [{ contentType: 'application/json', schema: NewSiteRequest }],
    responses: { '201': ok('created'), '409': error('the name is taken'), ...ADMIN_ERRORS },
  },
  {
    method: 'get',
    path: '/api/v1/sites',
    summary: 'list sites',
    tag: 'sites',
    auth: 'admin',
    query: NoQuery,
    responses: { '200': ok('the sites'), ...ADMIN_ERRORS },
  },
  {
    method: 'get',
    path: '/api/v1/sites/:id',
    summary: 'one site',
    tag: 'sites',
    auth: 'admin',
    params: SiteIdParams,
    query: NoQuery,
    responses: { '200': ok('the site'), '404': error('no such site'), ...ADMIN_ERRORS },
  },
  {
    method: 'patch',
    path: '/api/v1/sites/:id',
    summary: 'update a site (any subset; threshold overrides, null resets one)',
    tag: 'sites',
    auth: 'admin',
    params: SiteIdParams,
    query: NoQuery,
    body: [{ contentType: 'application/json', schema: SitePatchRequest }],
    responses: {
      '200': ok('the site'),
      '404': error('no such site'),
      '409': error('the name is taken'),
      ...ADMIN_ERRORS,
    },
  },
  {
    method: 'delete',
    path: '/api/v1/sites/:id',
    summary: 'delete a site (with purge=true when it has data)',
    tag: 'sites',
    auth: 'admin',
    params: SiteIdParams,
    query: DeleteSiteQuery,
    responses: {
      '204': ok('deleted'),
      '404': error('no such site'),
      '409': error('it has data: purge=true'),
      ...ADMIN_ERRORS,
    },
  },
  {
    method: 'post',
    path: '/api/v1/sites/:id/token',
    summary: 'rotate the ingest token; the old one stops working at once',
    tag: 'sites',
    auth: 'admin',
    params: SiteIdParams,
    query: NoQuery,
    responses: { '200': ok('the new token'), '404': error('no such site'), ...ADMIN_ERRORS },
  },
  {
    method: 'get',
    path: '/api/v1/sites/:id/unmapped',
    summary: "what the site's collectors push that hashwatt does not map (this replica, since it started)",
    tag: 'ingest',
    auth: 'admin',
    params: SiteIdParams,
    query: NoQuery,
    responses: { '200': ok('counts and names'), '404': error('no such site'), ...ADMIN_ERRORS },
  },
  {
    method: 'get',
    path: '/api/v1/alerts',
    summary: 'alerts of the built-in engine (docs/alerting.md)',
    tag: 'alerts',
    auth: 'reader',
    query: AlertsQuery,
    responses: { '200': ok('alerts of the sites the token may read'), ...READ_ERRORS },
  },
  {
    method: 'get',
    path: '/api/v1/sites/:id/alerts',
    summary: "a site's alert history",
    tag: 'alerts',
    auth: 'reader',
    params: SiteIdParams,
    query: SiteAlertsQuery,
    responses: { '200': ok('alerts'), ...READ_ERRORS },
  },
  {
    method: 'post',
    path: '/api/v1/alerts/:id/ack',
    summary:
      'acknowledge a firing alert (admin or operator token); shown in the API, webhooks and Alertmanager annotations; acknowledging again replaces it',
    tag: 'alerts',
    auth: 'reader',
    params: AlertIdParams,
    query: NoQuery,
    body: [{ contentType: 'application/json', schema: AcknowledgeRequest }],
    responses: {
      '200': ok('the alert, acknowledged', AlertAnswer),
      '404': error('no such alert, or one of a site this token may not read'),
      '409': error('`alert_not_firing`: pending or resolved'),
      ...ACTION_ERRORS,
    },
  },
  {
    method: 'delete',
    path: '/api/v1/alerts/:id/ack',
    summary: "take a firing alert's acknowledgement back (admin or operator token)",
    tag: 'alerts',
    auth: 'reader',
    params: AlertIdParams,
    query: NoQuery,
    responses: {
      '200': ok('the alert, unacknowledged', AlertAnswer),
      '404': error('no such alert, or one of a site this token may not read'),
      '409': error('`alert_not_firing`: pending or resolved'),
      ...ACTION_ERRORS,
    },
  },
  {
    method: 'get',
    path: '/api/v1/silences',
    summary: 'silences of the sites the caller may read, and those of every site; newest first',
    tag: 'alerts',
    auth: 'reader',
    query: SilencesQuery,
    responses: {
      '200': ok('the silences', z.object({ silences: z.array(SilenceView) })),
      ...READ_ERRORS,
    },
  },
  {
    method: 'post',
    path: '/api/v1/silences',
    summary:
      'silence a site (or every site) and an alert (or every alert) from now until ends_at (admin or operator token)',
    tag: 'alerts',
    auth: 'reader',
    query: NoQuery,
    body: [{ contentType: 'application/json', schema: NewSilenceRequest }],
    responses: {
      '201': ok('created', SilenceAnswer),
      '404': error('no such site, or one this token may not read (`field: "site"`)'),
      ...ACTION_ERRORS,
    },
  },
  {
    method: 'get',
    path: '/api/v1/silences/:id',
    summary: 'one silence',
    tag: 'alerts',
    auth: 'reader',
    params: SilenceIdParams,
    query: NoQuery,
    responses: {
      '200': ok('the silence', SilenceAnswer),
      '404': error('no such silence, or one of a site this token may not read'),
      '400': error('invalid query'),
      '401': error('missing or unknown token'),
    },
  },
  {
    method: 'delete',
    path: '/api/v1/silences/:id',
    summary: 'expire a silence now (admin or operator token); one already ended is returned as it is',
    tag: 'alerts',
    auth: 'reader',
    params: SilenceIdParams,
    query: NoQuery,
    responses: {
      '200': ok('the silence, expired', SilenceAnswer),
      '404': error('no such silence, or one of a site this token may not read'),
      ...ACTION_ERRORS,
    },
  },
  {
    method: 'post',
    path: '/api/v1/tokens',
    summary:
      'create a named token (viewer: reads; operator: reads, acknowledges, silences); the token is returned only here',
    tag: 'tokens',
    auth: 'admin',
    query: NoQuery,
    body: [{ contentType: 'application/json', schema: NewApiTokenRequest }],
    responses: { '201': ok('created'), '409': error('the name is taken'), ...ADMIN_ERRORS },
  },
  {
    method: 'get',
    path: '/api/v1/tokens',
    summary: 'list named tokens (never the tokens themselves)',
    tag: 'tokens',
    auth: 'admin',
    query: NoQuery,
    responses: { '200': ok('the tokens'), ...ADMIN_ERRORS },
  },
  {
    method: 'delete',
    path: '/api/v1/tokens/:id',
    summary: 'revoke a named token',
    tag: 'tokens',
    auth: 'admin',
    params: ApiTokenIdParams,
    query: NoQuery,
    responses: { '204': ok('revoked'), '404': error('no live token with that id'), ...ADMIN_ERRORS },
  },
  {
    method: 'post',
    path: '/api/v1/ingest',
    summary: 'push readings (docs/ingest.md); answered after commit',
    tag: 'ingest',
    auth: 'site',
    body: [{ contentType: 'application/json', schema: IngestBody }],
    responses: {
      '200': ok('committed; per-reading outcome', IngestAnswer),
      '400': error('malformed body'),
      '401': error('missing or unknown site token'),
      '413': error('too large'),
      '415': error('not JSON, or an unknown Content-Encoding'),
      '429': error('overloaded: retry after Retry-After'),
      '503': error('database unavailable or shutting down: retry'),
    },
  },
  {
    method: 'post',
    path: '/api/v1/write',
    summary: 'Prometheus remote_write 1.0 (docs/protocols/remote-write.md)',
    tag: 'receivers',
    auth: 'site',
    query: RemoteWriteQuery,
    body: [
      { contentType: 'application/x-protobuf', description: 'snappy-compressed prometheus.WriteRequest' },
    ],
    responses: {
      '204': ok('everything mappable written'),
      '400': { description: 'invalid data (the valid samples were written)', contentType: 'text/plain' },
      '401': { description: 'missing or unknown token', contentType: 'text/plain' },
      '415': { description: 'not remote_write 1.0', contentType: 'text/plain' },
      '429': { description: 'retry after Retry-After', contentType: 'text/plain' },
      '503': { description: 'retry after Retry-After', contentType: 'text/plain' },
    },
  },
  {
    method: 'post',
    path: '/api/v2/write',
    summary: 'InfluxDB line protocol, v2 API (docs/protocols/line-protocol.md)',
    tag: 'receivers',
    auth: 'site',
    query: InfluxV2Query,
    body: [{ contentType: 'text/plain', description: 'line protocol, optionally gzip' }],
    responses: {
      '204': ok('all written'),
      '400': influxError,
      '401': influxError,
      '422': {
        ...influxError,
        description: 'partial write: the good lines are written, the first bad one named',
      },
      '429': influxError,
      '503': influxError,
    },
  },
  {
    method: 'post',
    path: '/write',
    summary: 'InfluxDB line protocol, v1 API',
    tag: 'receivers',
    auth: 'site',
    query: InfluxV1Query,
    body: [{ contentType: 'text/plain', description: 'line protocol, optionally gzip' }],
    responses: {
      '204': ok('all written'),
      '400': influxError,
      '401': influxError,
      '422': influxError,
      '429': influxError,
      '503': influxError,
    },
  },
  {
    method: 'post',
    path: '/v1/metrics',
    summary: 'OTLP/HTTP metrics (docs/protocols/otlp.md)',
    tag: 'receivers',
    auth: 'site',
    body: [
      { contentType: 'application/x-protobuf', description: 'ExportMetricsServiceRequest' },
      { contentType: 'application/json', description: 'ExportMetricsServiceRequest, OTLP JSON encoding' },
    ],
    responses: {
      '200': ok('ExportMetricsServiceResponse; partial_success names rejected data points'),
      '400': ok('google.rpc.Status'),
      '401': ok('google.rpc.Status'),
      '415': ok('google.rpc.Status'),
      '429': ok('google.rpc.Status, retry after Retry-After'),
      '503': ok('google.rpc.Status, retry after Retry-After'),
    },
  },
  {
    method: 'get',
    path: '/api/v1/fleet',
    summary:
      'every site the caller may read, now: power, surplus, hashrate, GPUs, devices by state, firing alerts',
    tag: 'read',
    auth: 'reader',
    query: NoQuery,
    responses: { '200': ok('the sites, as of the fleet snapshot'), ...READ_ERRORS },
  },
  {
    method: 'get',
    path: '/api/v1/sites/:id/status',
    summary: 'one site now (the same object as in /api/v1/fleet)',
    tag: 'read',
    auth: 'reader',
    params: SiteIdParams,
    query: NoQuery,
    responses: { '200': ok('the site'), ...READ_ERRORS },
  },
  {
    method: 'get',
    path: '/api/v1/sites/:id/devices',
    summary: 'the latest state of each device, paged by cursor (stable under inserts)',
    tag: 'read',
    auth: 'reader',
    params: SiteIdParams,
    query: DevicesQuery,
    responses: { '200': ok('a page of devices and the next cursor'), ...READ_ERRORS },
  },
  {
    method: 'get',
    path: '/api/v1/sites/:id/series',
    summary:
      "a site's metric over time, by the fleet rules; whole-minute steps read the 1-minute rollup, whole-hour steps the 1-hour rollup (`source`; docs/read-api.md)",
    tag: 'read',
    auth: 'reader',
    params: SiteIdParams,
    query: SeriesQuery,
    responses: { '200': ok('the series', Series), ...READ_ERRORS },
  },
  {
    method: 'get',
    path: '/api/v1/sites/:id/devices/:device/series',
    summary:
      "one device's metric over time, core or extra; whole-hour steps of a core metric read the device-hour rollup",
    tag: 'read',
    auth: 'reader',
    params: SiteDeviceParams,
    query: SeriesQuery,
    responses: { '200': ok('the series', Series), ...READ_ERRORS },
  },
  {
    method: 'get',
    path: '/api/v1/sites/:id/energy',
    summary: 'energy per hour or day in the site’s time zone, split by workload, with coverage and cost',
    tag: 'read',
    auth: 'reader',
    params: SiteIdParams,
    query: EnergyQuery,
    responses: { '200': ok('buckets'), ...READ_ERRORS },
  },
];
