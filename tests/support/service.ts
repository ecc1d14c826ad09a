import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import pino from 'pino';
import { parseConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { type RunningService, type ServiceTuning, startService } from '../../src/service.ts';
import type { TestDatabase } from './databases.ts';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/** One line of the service's log, as pino writes it. */
export interface LogLine {
  msg: string;
  level: number;
  [field: string]: unknown;
}

/** A real hashwatt on a random port, on a test database. */
export async function startTestService(
  db: TestDatabase,
  options: {
    env?: Record<string, string>;
    tuning?: ServiceTuning;
    databaseUrl?: string;
    /** Keep every log line here (parsed) instead of logging nothing. */
    log?: LogLine[];
  } = {},
): Promise<RunningService> {
  const config = parseConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    HASHWATT_ADMIN_TOKEN: ADMIN_TOKEN,
    HASHWATT_DATA_DIR: db.dataDir,
    HASHWATT_SHUTDOWN_TIMEOUT_S: '10',
    ...((options.databaseUrl ?? db.url) ? { DATABASE_URL: options.databaseUrl ?? db.url } : {}),
    ...options.env,
  });
  const log = options.log;
  const logger = log
    ? pino(
        { level: 'info' },
        new Writable({
          write(chunk: Buffer, _encoding, done) {
            for (const line of chunk.toString('utf8').split('\n')) if (line) log.push(JSON.parse(line));
            done();
          },
        }),
      )
    : silentLogger;
  return startService(config, logger, options.tuning);
}

export interface CreatedSite {
  site: { id: number; name: string; capacity_w: number };
  token: string;
}

export async function adminRequest(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Response> {
  return fetch(base + path, {
    method,
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

export async function createSite(
  base: string,
  name: string,
  kind = 'mining',
  capacityKw = 1000,
): Promise<CreatedSite> {
  const response = await adminRequest(base, 'POST', '/api/v1/sites', { name, kind, capacity_kw: capacityKw });
  if (response.status !== 201) throw new Error(`create site: ${response.status} ${await response.text()}`);
  return (await response.json()) as CreatedSite;
}

export interface IngestResponse {
  status: number;
  headers: Headers;
  body: {
    accepted?: number;
    duplicates?: number;
    rejected?: { index: number; field: string; code: string; message: string }[];
    error?: { code: string; message: string; field?: string };
  };
}

/** POSTs readings as an agent would; gzip when asked. */
export async function postReadings(
  base: string,
  token: string | undefined,
  readings: unknown[] | string | Buffer,
  options: { gzip?: boolean; headers?: Record<string, string> } = {},
): Promise<IngestResponse> {
  let body: string | Buffer =
    typeof readings === 'string' || Buffer.isBuffer(readings) ? readings : JSON.stringify({ readings });
  const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers };
  if (token) headers.authorization = `Bearer ${token}`;
  if (options.gzip) {
    body = gzipSync(body);
    headers['content-encoding'] = 'gzip';
  }
  const response = await fetch(`${base}/api/v1/ingest`, { method: 'POST', headers, body });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : {} };
}

/** An ASIC reading at `ts`, unique per (device, ts). */
export function asicReading(device: string, ts: number, extra: Record<string, unknown> = {}) {
  return {
    device,
    kind: 'asic',
    ts,
    power_w: 3500,
    hashrate_ths: 200,
    expected_hashrate_ths: 200,
    status: 'ok',
    ...extra,
  };
}
