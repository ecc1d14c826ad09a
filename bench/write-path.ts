// A/B of the write statement on the real schema: what each part of a group-commit transaction costs.
//
//   node bench/write-path.ts [--devices 50000] [--rounds 3]
//
// Creates and drops its own database on $BENCH_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/postgres). Each variant writes 5 000-row batches over two
// connections, rounds interleaved so no variant always runs on the fullest table. The figures in
// docs/performance.md come from this script.
import { parseArgs } from 'node:util';
import { type Kysely, sql } from 'kysely';
import pg from 'pg';
import { silentLogger } from '../src/log.ts';
import { floatArray, int4Array, timestamptzArray } from '../src/storage/binary-arrays.ts';
import { openDatabase } from '../src/storage/database.ts';
import { migrateToLatest } from '../src/storage/migrate.ts';
import { ensurePartitions } from '../src/storage/partitions.ts';
import {
  insertReadings,
  type ReadingRecord,
  updateDeviceLatest,
  writeReadings,
} from '../src/storage/readings.ts';
import type { Database } from '../src/storage/schema.ts';

const { values } = parseArgs({ options: { devices: { type: 'string' }, rounds: { type: 'string' } } });
const DEVICES = Number(values.devices ?? 50_000);
const ROUNDS = Number(values.rounds ?? 3);
const BATCH = 5_000;
const BATCHES = 24;
const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB = 'hashwatt_bench_write_path';

async function admin(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  await c.query(text).finally(() => c.end());
}

let step = 0;
const base = Date.now() - 3_600_000;
/** The next batch: every device once per 1-s step, in time order, as a fleet reports. */

function batch(): ReadingRecord[] {
  const out: ReadingRecord[] = [];
  for (let i = 0; i < BATCH; i++) {
    const n = step * BATCH + i;
    out.push({
      site_id: 1,
      device_id: 1 + (n % DEVICES),
      kind: 'asic',
      ts_us: (base + Math.floor(n / DEVICES) * 1000) * 1000,
      received_ms: Date.now(),
      power_w: 3500,
      hashrate_ths: 200,
      expected_hashrate_ths: 200,
      temp_c: 65,
      fan_rpm: 5000,
      status: 'ok',
    });
  }
  step++;
  return out;
}

const literal = (a: readonly (number | string | null | undefined)[]) =>
  `{${a.map((v) => v ?? 'NULL').join(',')}}`;

/** The readings insert, optionally returning every inserted row (the first version of the write path). */
async function insertPlain(trx: Kysely<Database>, rows: ReadingRecord[], returning: boolean): Promise<void> {
  await sql`INSERT INTO readings (site_id, device_id, ts, power_w, hashrate_ths, expected_hashrate_ths, temp_c, fan_rpm, status)
    SELECT s, d, to_timestamp(t / 1000000.0), p, h, e, tc, f, st
    FROM unnest(${literal(rows.map((r) => r.site_id))}::int[], ${literal(rows.map((r) => r.device_id))}::int[],
      ${literal(rows.map((r) => r.ts_us))}::float8[], ${literal(rows.map((r) => r.power_w))}::float8[],
      ${literal(rows.map((r) => r.hashrate_ths))}::float8[], ${literal(rows.map((r) => r.expected_hashrate_ths))}::float8[],
      ${literal(rows.map((r) => r.temp_c))}::real[], ${literal(rows.map((r) => r.fan_rpm))}::real[],
      ${literal(rows.map((r) => r.status))}::device_status[]) AS u(s, d, t, p, h, e, tc, f, st)
    ON CONFLICT DO NOTHING
    ${returning ? sql`RETURNING device_id, ts` : sql``}`.execute(trx);
}

/** The same insert with every number sent as a binary array (src/storage/binary-arrays.ts). */
async function insertBinary(trx: Kysely<Database>, rows: ReadingRecord[]): Promise<void> {
  const f = (get: (r: ReadingRecord) => number | null | undefined, type: 'float8' | 'float4' = 'float8') =>
    floatArray(rows.map(get), type);
  await sql`INSERT INTO readings (site_id, device_id, ts, power_w, hashrate_ths, expected_hashrate_ths, temp_c, fan_rpm, status)
    SELECT s, d, t, p, h, e, tc, f, st
    FROM unnest(${int4Array(rows.map((r) => r.site_id))}::int[], ${int4Array(rows.map((r) => r.device_id))}::int[],
      ${timestamptzArray(rows.map((r) => r.ts_us))}::timestamptz[], ${f((r) => r.power_w)}::float8[],
      ${f((r) => r.hashrate_ths)}::float8[], ${f((r) => r.expected_hashrate_ths)}::float8[],
      ${f((r) => r.temp_c, 'float4')}::real[], ${f((r) => r.fan_rpm, 'float4')}::real[],
      ${literal(rows.map((r) => r.status))}::device_status[]) AS u(s, d, t, p, h, e, tc, f, st)
    ON CONFLICT DO NOTHING`.execute(trx);
}

/** device_latest moved forward by a plain UPDATE … FROM unnest() instead of an upsert. */
async function updateLatestFrom(trx: Kysely<Database>, rows: ReadingRecord[]): Promise<void> {
  const sorted = [...rows].sort((a, b) => a.device_id - b.device_id);
  await sql`UPDATE device_latest l SET ts = to_timestamp(u.t / 1000000.0), received_at = now(), power_w = u.p,
      hashrate_ths = u.h, status = u.st
    FROM unnest(${literal(sorted.map((r) => r.device_id))}::int[], ${literal(sorted.map((r) => r.ts_us))}::float8[],
      ${literal(sorted.map((r) => r.power_w))}::float8[], ${literal(sorted.map((r) => r.hashrate_ths))}::float8[],
      ${literal(sorted.map((r) => r.status))}::device_status[]) AS u(d, t, p, h, st)
    WHERE l.device_id = u.d AND to_timestamp(u.t / 1000000.0) >= l.ts`.execute(trx);
}

type Variant = [name: string, write: (trx: Kysely<Database>, rows: ReadingRecord[]) => Promise<unknown>];
const VARIANTS: Variant[] = [
  ['insert, row count only', (trx, r) => insertPlain(trx, r, false)],
  ['the same insert with RETURNING device_id, ts', (trx, r) => insertPlain(trx, r, true)],
  ['the same insert, numbers as binary arrays (timestamptz, int4, float8, real)', insertBinary],
  ['hashwatt insert (key-sorted, all metric columns, row count)', (trx, r) => insertReadings(trx, r)],
  // What the service runs since the purge guard: the sites' rows key-shared first, then the insert.
  ['hashwatt write (site rows FOR KEY SHARE, then the insert)', (trx, r) => writeReadings(trx, r)],
  [
    'insert + device_latest upsert in one transaction (hashwatt until the latest state moved off the ack path)',
    async (trx, r) => {
      await insertReadings(trx, r);
      await updateDeviceLatest(trx, r);
    },
  ],
  ['device_latest upsert alone', (trx, r) => updateDeviceLatest(trx, r)],
  ['device_latest UPDATE … FROM unnest alone, 5 of its 13 columns', updateLatestFrom],
];

await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
await admin(`CREATE DATABASE ${DB}`);
const url = new URL(ADMIN_URL);
url.pathname = `/${DB}`;
const storage = await openDatabase({ databaseUrl: url.toString(), dataDir: '/tmp', logger: silentLogger });
try {
  await migrateToLatest(storage.db);
  await ensurePartitions(storage.db, Date.now(), { retentionDays: 2, aheadDays: 1 });
  await sql`INSERT INTO sites (name, kind, capacity_w, token_hash) VALUES ('bench', 'mining', 1, '\\x01')`.execute(
    storage.db,
  );
  await sql`INSERT INTO devices (site_id, external_id, kind)
    SELECT 1, 'd' || i, 'asic' FROM generate_series(1, ${DEVICES}) i`.execute(storage.db);
  // Every device has a latest-state row before anything is timed, as in a running fleet.
  for (let i = 0; i < Math.ceil(DEVICES / BATCH); i++) {
    const rows = batch();
    await storage.db.transaction().execute((trx) => updateDeviceLatest(trx, rows));
  }

  const rates = new Map<string, number[]>();
  const withLatest = async (unlogged: boolean) => {
    await sql.raw(`ALTER TABLE device_latest SET ${unlogged ? 'UNLOGGED' : 'LOGGED'}`).execute(storage.db);
  };
  // The table rewritten at the fill factor, so every page has the room HOT updates need.
  const withFillfactor = async (percent: number) => {
    await sql.raw(`ALTER TABLE device_latest SET (fillfactor = ${percent})`).execute(storage.db);
    await sql.raw('VACUUM FULL device_latest').execute(storage.db);
  };
  for (let round = 0; round < ROUNDS; round++) {
    const order = [...VARIANTS.slice(round % VARIANTS.length), ...VARIANTS.slice(0, round % VARIANTS.length)];
    const plus: Variant[] = [
      ['device_latest upsert alone, table UNLOGGED', (trx, r) => updateDeviceLatest(trx, r)],
      ['device_latest upsert alone, fillfactor 50 (HOT updates)', (trx, r) => updateDeviceLatest(trx, r)],
    ];
    for (const [name, write] of [...order, ...plus]) {
      const unlogged = name.includes('UNLOGGED');
      if (unlogged) await withLatest(true);
      const fillfactor = name.includes('fillfactor 50');
      if (fillfactor) await withFillfactor(50);
      const t0 = performance.now();
      await Promise.all(
        [0, 1].map(async () => {
          for (let i = 0; i < BATCHES / 2; i++) {
            const rows = batch();
            await storage.db.transaction().execute((trx) => write(trx, rows));
          }
        }),
      );
      const rate = (BATCHES * BATCH) / ((performance.now() - t0) / 1000);
      if (unlogged) await withLatest(false);
      if (fillfactor) await withFillfactor(100);
      rates.set(name, [...(rates.get(name) ?? []), rate]);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(
    `| variant (${DEVICES.toLocaleString('en-US')} devices, 5k batches, 2 connections, median of ${ROUNDS}) | rows/s |`,
  );
  console.log('|---|---|');
  for (const [name, xs] of rates)
    console.log(`| ${name} | ${Math.round(median(xs)).toLocaleString('en-US')} |`);
} finally {
  await storage.close();
  await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
}
