// The rollup job's minute build alone: one closed minute of one site, built by the real
// `rollupStep` with nothing else running, in two shapes: dense (50 000 devices × 22 readings, a
// site-minute of the load scenario at full rate) and sparse (250 000 devices × 1 reading, a fleet
// reporting once a minute: the job's dearest shape per reading).
//
//   node bench/rollup-minute.ts [--rounds 4]
//
// For an A/B of the build itself, run this same file against the older code (docs/rollups.md, "The
// minute build without a sort"):
//   git worktree add /tmp/hw-old <commit> && cp bench/rollup-minute.ts /tmp/hw-old/bench/ &&
//   ln -s "$PWD/node_modules" /tmp/hw-old/node_modules && (cd /tmp/hw-old && node bench/rollup-minute.ts)
// Prints JSON; writes no results file.
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { silentLogger } from '../src/log.ts';
import { openDatabase } from '../src/storage/database.ts';
import { migrateToLatest } from '../src/storage/migrate.ts';
import { ensurePartitions } from '../src/storage/partitions.ts';
import { rollupStep } from '../src/storage/rollups.ts';
import { processCpuUs } from './support/postgres-cpu.ts';
import { createDatabase, databaseUrl, dropDatabase } from './support/service.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string' } } });
const ROUNDS = Number(values.rounds ?? 4);
const DB = 'hashwatt_bench_rollup_minute';
const SHAPES = [
  { name: 'dense', devices: 50_000, perDevice: 22 },
  { name: 'sparse', devices: 250_000, perDevice: 1 },
] as const;

interface ShapeResult {
  name: string;
  readings: number;
  build_ms: number[];
  pg_cpu_us_per_reading: number[];
}

const results: ShapeResult[] = [];
for (const shape of SHAPES) {
  await createDatabase(DB);
  const storage = await openDatabase({
    databaseUrl: databaseUrl(DB),
    dataDir: 'data',
    logger: silentLogger,
    poolSize: 1,
  });
  try {
    await migrateToLatest(storage.db);
    const nowMs = Date.now();
    await ensurePartitions(storage.db, nowMs, { retentionDays: 2, aheadDays: 1 });
    // A whole minute an hour back, inside today's or yesterday's partition.
    const minuteS = Math.floor((nowMs - 3_600_000) / 60_000) * 60;
    const readings = shape.devices * shape.perDevice;
    await sql`INSERT INTO sites (id, name, kind, capacity_w, token_hash) VALUES (1, 'bench', 'mining', 1e9, '\\x01')`.execute(
      storage.db,
    );
    await sql`INSERT INTO devices (id, site_id, external_id, kind)
      SELECT g, 1, 'asic-' || g, 'asic' FROM generate_series(1, ${shape.devices}) g`.execute(storage.db);
    // Power steady per device, hashrate moving through the minute: each way "last" is found.
    await sql`INSERT INTO readings (site_id, device_id, ts, power_w, hashrate_ths, expected_hashrate_ths, temp_c, fan_rpm, status)
      SELECT 1, d, to_timestamp(${minuteS} + t * 60.0 / ${shape.perDevice} + (d % 97) / 100.0),
        3000 + d % 500, 100 + t, 110, 60, 5000, 'ok'
      FROM generate_series(0, ${shape.perDevice - 1}) t, generate_series(1, ${shape.devices}) d ORDER BY 3, 2`.execute(
      storage.db,
    );
    await sql`ANALYZE readings`.execute(storage.db);
    const { rows } = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(storage.db);
    const backend = rows[0]!.pid;
    const result: ShapeResult = { name: shape.name, readings, build_ms: [], pg_cpu_us_per_reading: [] };
    for (let round = 0; round < ROUNDS; round++) {
      await sql`DELETE FROM rollup_device_1m_staged`.execute(storage.db);
      await sql`DELETE FROM rollup_site_1m`.execute(storage.db);
      await sql`DELETE FROM rollup_dirty`.execute(storage.db);
      await sql`DELETE FROM rollup_dirty_hour`.execute(storage.db);
      await sql`INSERT INTO rollup_dirty (site_id, from_ts, to_ts, readings)
        VALUES (1, to_timestamp(${minuteS}), to_timestamp(${minuteS + 60}), ${readings})`.execute(storage.db);
      const cpu0 = processCpuUs(backend);
      const t0 = performance.now();
      // Closed at the minute's end: the minute alone is built, not its hour.
      const step = await rollupStep(storage.db, (minuteS + 60) * 1000, 250_000);
      const ms = performance.now() - t0;
      if (step.siteMinutes !== 1) throw new Error(`built ${step.siteMinutes} site-minutes, not 1`);
      result.build_ms.push(Math.round(ms));
      result.pg_cpu_us_per_reading.push(Math.round(((processCpuUs(backend) - cpu0) / readings) * 100) / 100);
    }
    results.push(result);
    process.stderr.write(`${shape.name}: ${result.build_ms.join(', ')} ms\n`);
  } finally {
    await storage.close();
  }
}
await dropDatabase(DB);
console.log(JSON.stringify({ date: new Date().toISOString(), rounds: ROUNDS, shapes: results }, null, 2));
