import { uncompressSync } from 'snappy';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/alerting/testing.ts';
import { WriteRequestType } from '../../src/protocols/testing/prometheus-proto.ts';
import type { RunningService } from '../../src/service.ts';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import { FaultProxy, type ProxiedExchange } from '../support/fault-proxy.ts';
import { adminRequest, createSite, startTestService } from '../support/service.ts';
import {
  DCGM_INT64_BLANK,
  type DcgmGpu,
  type FakeDcgmExporter,
  startFakeDcgmExporter,
} from './support/fake-dcgm.ts';
import {
  instantKey,
  readCounter,
  readSiteDevices,
  readSiteInstants,
  type StoredInstant,
} from './support/hashwatt-state.ts';
import { type PrometheusProcess, startPrometheus } from './support/prometheus-process.ts';

// A site's Prometheus scraping two GPU servers' dcgm-exporter and remote-writing to hashwatt: the
// real `prometheus` binary, fake exporters serving the real exporter's page, and a fault proxy in
// between (transparent until a test arms it). Small requests over four shards, so the metrics of
// one GPU at one scrape always arrive in several requests, in parallel.

const WRITE = '/api/v1/write';
const MIB = 1048576;
/** Prometheus' max_samples_per_send here: smaller than one GPU's 16 series. */
const MAX_SAMPLES_PER_SEND = 10;

/**
 * Where docs/protocols/remote-write.md says each DCGM field is stored, and how it is converted:
 * the oracle, written out here rather than taken from src/protocols/remote-write/mapping.ts.
 * `temp_c` and `gpu_util_pct` are `real` columns.
 */
const STORED_AS: Readonly<Record<string, { column: string; convert: (value: number) => number }>> = {
  DCGM_FI_DEV_POWER_USAGE: { column: 'power_w', convert: (v) => v },
  DCGM_FI_DEV_GPU_UTIL: { column: 'gpu_util_pct', convert: Math.fround },
  DCGM_FI_DEV_GPU_TEMP: { column: 'temp_c', convert: Math.fround },
  DCGM_FI_DEV_FB_USED: { column: 'gpu_mem_used_bytes', convert: (v) => v * MIB },
  DCGM_FI_DEV_FB_FREE: { column: 'gpu_mem_free_bytes', convert: (v) => v * MIB },
  DCGM_FI_DEV_MEMORY_TEMP: { column: 'gpu_mem_temp_c', convert: (v) => v },
  DCGM_FI_DEV_XID_ERRORS: { column: 'gpu_xid_last', convert: (v) => v },
  DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: { column: 'energy_j_total', convert: (v) => v / 1000 },
  DCGM_FI_DEV_SM_CLOCK: { column: 'gpu_sm_clock_mhz', convert: (v) => v },
  DCGM_FI_DEV_MEM_CLOCK: { column: 'gpu_mem_clock_mhz', convert: (v) => v },
  DCGM_FI_DEV_ECC_SBE_VOL_TOTAL: { column: 'gpu_ecc_errors_total_sbe_volatile', convert: (v) => v },
  DCGM_FI_DEV_ECC_DBE_VOL_TOTAL: { column: 'gpu_ecc_errors_total_dbe_volatile', convert: (v) => v },
  DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL: {
    column: 'gpu_nvlink_errors_total_crc_flit',
    convert: (v) => v,
  },
  DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL: {
    column: 'gpu_nvlink_errors_total_replay',
    convert: (v) => v,
  },
};
/** Served by the exporters, mapped by nothing: counted as unmapped, never stored. */
const UNMAPPED = ['DCGM_FI_DEV_PCIE_REPLAY_COUNTER', 'DCGM_FI_PROF_PIPE_TENSOR_ACTIVE'];
/** DCGM's int64 blank as Prometheus parses it (a double: 2^63). */
const BLANK_VALUE = Number(DCGM_INT64_BLANK);

const deviceOf = (gpu: Pick<DcgmGpu, 'Hostname' | 'gpu'>) => `${gpu.Hostname}/gpu${gpu.gpu}`;

/** What hashwatt must hold for a GPU at any scrape instant: every mapped, non-blank field of its page. */
function expectedValues(exporter: FakeDcgmExporter, gpu: DcgmGpu): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of exporter.series) {
    const target = STORED_AS[s.field];
    if (s.gpu !== gpu || !target || s.rendered === DCGM_INT64_BLANK) continue;
    out[target.column] = target.convert(Number(s.rendered));
  }
  return out;
}

interface DecodedWrite {
  timeseries: {
    labels: { name: string; value: string }[];
    samples: { value: number; timestamp: number }[];
  }[];
  metadata: { metric_family_name: string }[];
}

function decodeWrite(body: Buffer): DecodedWrite {
  const message = WriteRequestType.decode(uncompressSync(body) as Buffer);
  return WriteRequestType.toObject(message, { longs: Number, defaults: true, arrays: true }) as DecodedWrite;
}

/** One mapped sample of a request, as the cell of (device, instant, column) it must fill. */
interface SentCell {
  key: string;
  column: string;
  value: number;
}

/** The cells a remote_write body asks hashwatt to store, and how many unmapped series it carried. */
function cellsOf(body: Buffer): { cells: SentCell[]; unmappedSeries: number; samples: number } {
  const cells: SentCell[] = [];
  let unmappedSeries = 0;
  let samples = 0;
  for (const series of decodeWrite(body).timeseries) {
    const labels = Object.fromEntries(series.labels.map((l) => [l.name, l.value]));
    const name = labels.__name__ ?? '';
    samples += series.samples.length;
    if (UNMAPPED.includes(name)) unmappedSeries++;
    const target = STORED_AS[name];
    if (!target) continue;
    const device = deviceOf({ Hostname: labels.Hostname ?? '', gpu: Number(labels.gpu) });
    for (const s of series.samples) {
      if (s.value === BLANK_VALUE || Number.isNaN(s.value)) continue;
      cells.push({
        key: instantKey(device, s.timestamp * 1000),
        column: target.column,
        value: target.convert(s.value),
      });
    }
  }
  return { cells, unmappedSeries, samples };
}

describe('Prometheus remote_write from dcgm-exporter scrapes', () => {
  let db: TestDatabase;
  let service: RunningService;
  let siteId: number;
  const siteName = 'e2e-remote-write';
  let exporters: FakeDcgmExporter[] = [];
  let proxy: FaultProxy;
  let prometheus: PrometheusProcess | undefined;

  const writes = () => proxy.exchanges.filter((e) => e.path === WRITE);
  const stored = () => readSiteInstants(service.storage.db, siteId);

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await startTestService(db);
    const created = await createSite(service.url, siteName, 'ai', 100);
    siteId = created.site.id;
    exporters = await Promise.all([
      startFakeDcgmExporter('gpu-node-01', 0),
      startFakeDcgmExporter('gpu-node-02', 1),
    ]);
    proxy = await FaultProxy.start(service.url);
    prometheus = await startPrometheus({
      global: { scrape_interval: '1s', scrape_timeout: '1s' },
      scrape_configs: [{ job_name: 'dcgm', static_configs: [{ targets: exporters.map((e) => e.target) }] }],
      remote_write: [
        {
          url: `${proxy.url}${WRITE}`,
          authorization: { credentials: created.token },
          // As docs/protocols/examples/prometheus.yml: Prometheus' per-target series name no device.
          write_relabel_configs: [{ source_labels: ['__name__'], regex: 'up|scrape_.+', action: 'drop' }],
          queue_config: {
            min_shards: 4,
            max_shards: 8,
            max_samples_per_send: MAX_SAMPLES_PER_SEND,
            batch_send_deadline: '200ms',
            min_backoff: '50ms',
            max_backoff: '1s',
          },
          // Metadata goes in requests of its own, with no series: sent every second here, not every minute.
          metadata_config: { send: true, send_interval: '1s' },
        },
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await prometheus?.stop();
    await Promise.all(exporters.map((e) => e.close()));
    await proxy?.close();
    await service?.stop();
    await db?.dispose();
  }, 60_000);

  /** A scrape instant of `exporter` at which every one of its GPUs is stored whole, if any. */
  function completeInstant(all: Map<string, StoredInstant>, exporter: FakeDcgmExporter): number | undefined {
    const first = deviceOf(exporter.gpus[0]!);
    const candidates = [...all.values()].filter((i) => i.device === first).map((i) => i.tsUs);
    return candidates.find((tsUs) =>
      exporter.gpus.every((gpu) => {
        const instant = all.get(instantKey(deviceOf(gpu), tsUs));
        return instant && Object.keys(expectedValues(exporter, gpu)).every((c) => c in instant.values);
      }),
    );
  }

  it('stores every GPU of both hosts as dcgm-exporter served it, each GPU’s scrape over several requests', async () => {
    const { all, instants } = await waitFor(
      'one scrape of each host stored whole',
      async () => {
        const all = await stored();
        const instants = exporters.map((e) => completeInstant(all, e));
        return instants.every((ts) => ts !== undefined) ? { all, instants: instants as number[] } : undefined;
      },
      30_000,
      250,
    );

    // Whole instants: exactly the page's values, scaled as documented; the blank is not stored.
    exporters.forEach((exporter, h) => {
      for (const gpu of exporter.gpus) {
        const instant = all.get(instantKey(deviceOf(gpu), instants[h]!))!;
        expect(instant.values, deviceOf(gpu)).toEqual(expectedValues(exporter, gpu));
        expect(instant.rows).toEqual({ readings: 1, extra: 1 });
      }
    });
    expect(all.get(instantKey('gpu-node-02/gpu3', instants[1]!))!.values).not.toHaveProperty(
      'gpu_mem_temp_c',
    );
    expect(all.get(instantKey('gpu-node-01/gpu3', instants[0]!))!.values.gpu_mem_temp_c).toBe(55);
    expect(all.get(instantKey('gpu-node-01/gpu5', instants[0]!))!.values.gpu_xid_last).toBe(79);
    expect(all.get(instantKey('gpu-node-01/gpu0', instants[0]!))!.values.energy_j_total).toBe(
      987_654_321.007,
    );

    // Every other stored instant (scrapes still arriving) holds only what the page says.
    const byDevice = new Map(
      exporters.flatMap((e) => e.gpus.map((gpu) => [deviceOf(gpu), expectedValues(e, gpu)] as const)),
    );
    for (const [key, instant] of all) {
      const expected = byDevice.get(instant.device);
      expect(expected, `${key}: a device no exporter serves`).toBeDefined();
      for (const [column, value] of Object.entries(instant.values))
        expect(value, `${key} ${column}`).toBe(expected![column]);
      expect(instant.rows.readings).toBeLessThanOrEqual(1);
      expect(instant.rows.extra).toBeLessThanOrEqual(1);
    }
    const devices = await readSiteDevices(service.storage.db, siteId);
    expect([...devices.keys()].sort()).toEqual([...byDevice.keys()].sort());
    for (const device of devices.values())
      expect(device).toEqual({ kind: 'gpu', model: 'NVIDIA H100 80GB HBM3' });

    // Each GPU's samples of that scrape came in two requests at least, over several shards.
    const requestsOf = new Map<string, Set<number>>();
    const forwarded = writes();
    for (const exchange of forwarded) {
      expect(exchange.upstreamStatus, `request ${exchange.seq}`).toBe(204);
      const { cells, samples } = cellsOf(exchange.body);
      expect(samples).toBeLessThanOrEqual(MAX_SAMPLES_PER_SEND);
      for (const cell of cells) {
        const seqs = requestsOf.get(cell.key) ?? new Set();
        seqs.add(exchange.seq);
        requestsOf.set(cell.key, seqs);
      }
    }
    exporters.forEach((exporter, h) => {
      for (const gpu of exporter.gpus) {
        expect(requestsOf.get(instantKey(deviceOf(gpu), instants[h]!))?.size ?? 0).toBeGreaterThanOrEqual(2);
      }
    });
    const dataRequests = forwarded.filter((e) => decodeWrite(e.body).timeseries.length > 0).length;
    const scrapes = exporters.reduce((n, e) => n + e.scrapes(), 0);
    expect(dataRequests).toBeGreaterThan(scrapes);
    expect(
      await readCounter(service.url, 'hashwatt_ingest_requests_total', { transport: 'remote_write' }),
    ).toBeGreaterThanOrEqual(forwarded.length);
    // Nothing was sent twice: no retries without a fault.
    expect(
      await readCounter(service.url, 'hashwatt_samples_duplicate_total', { transport: 'remote_write' }),
    ).toBe(0);
  });

  it('answers 204 to Prometheus’ metadata-only requests', async () => {
    const metadataOnly = await waitFor(
      'a metadata-only request',
      () =>
        writes().find((e) => {
          const decoded = decodeWrite(e.body);
          return decoded.timeseries.length === 0 && decoded.metadata.length > 0;
        }),
      15_000,
      100,
    );
    expect(metadataOnly.upstreamStatus).toBe(204);
    const names = decodeWrite(metadataOnly.body).metadata.map((m) => m.metric_family_name);
    expect(names.some((n) => n.startsWith('DCGM_FI_'))).toBe(true);
  });

  it('counts the unmapped series per site, by name, on the admin API and /metrics', async () => {
    // Two unmapped series per GPU per scrape: one whole scrape of both hosts is 32.
    const report = await waitFor(
      'the unmapped series of a scrape of both hosts',
      async () => {
        const response = await adminRequest(service.url, 'GET', `/api/v1/sites/${siteId}/unmapped`);
        const body = (await response.json()) as {
          site_id: number;
          total: number;
          names: { protocol: string; name: string; requests: number; last_seen: string }[];
        };
        return body.total >= 32 ? body : undefined;
      },
      15_000,
      200,
    );
    expect(report.site_id).toBe(siteId);
    expect(report.names.map((n) => n.name).sort()).toEqual([...UNMAPPED].sort());
    for (const name of report.names) {
      expect(name.protocol).toBe('remote_write');
      expect(name.requests).toBeGreaterThan(0);
    }
    const counted = await readCounter(service.url, 'hashwatt_ingest_unmapped_total', {
      site: siteName,
      protocol: 'remote_write',
    });
    expect(counted).toBeGreaterThanOrEqual(report.total);
  });

  it('stores each sample once when answers are lost: Prometheus resends, hashwatt counts duplicates', async () => {
    const duplicatesBefore = await readCounter(service.url, 'hashwatt_samples_duplicate_total', {
      transport: 'remote_write',
    });
    const lostCount = 3;
    // Requests with samples to store: a lost answer to a metadata-only request would prove nothing.
    proxy.loseAnswers({ path: WRITE, count: lostCount, when: (body) => cellsOf(body).cells.length > 0 });
    const resendsOfLost = (lost: readonly ProxiedExchange[]) =>
      writes().filter(
        (e) => !e.answerLost && lost.some((l) => l.bodySha256 === e.bodySha256 && l.seq < e.seq),
      );
    const lost = await waitFor(
      'Prometheus to resend each request whose answer was lost, and to be answered',
      () => {
        const lost = proxy.lostAnswers(WRITE);
        if (lost.length < lostCount) return undefined;
        const resent = resendsOfLost(lost);
        return lost.every((l) => resent.some((r) => r.bodySha256 === l.bodySha256)) ? lost : undefined;
      },
      30_000,
      100,
    );
    // The lost answers were hashwatt's 204s: the data was committed before Prometheus was told 503.
    for (const l of lost) expect(l.upstreamStatus).toBe(204);
    for (const r of resendsOfLost(lost)) expect(r.upstreamStatus).toBe(204);

    // Each resend's samples were already stored: every one counted as a duplicate.
    const resent = proxy.resends(WRITE);
    expect(resent.length).toBeGreaterThanOrEqual(lostCount);
    const resentCells = resent.flatMap((e) => cellsOf(e.body).cells);
    const duplicatesAfter = await readCounter(service.url, 'hashwatt_samples_duplicate_total', {
      transport: 'remote_write',
    });
    expect(duplicatesAfter - duplicatesBefore).toBe(resentCells.length);
    expect(resentCells.length).toBeGreaterThan(0);

    const all = await stored();
    for (const cell of lost.flatMap((e) => cellsOf(e.body).cells)) {
      const instant = all.get(cell.key);
      expect(instant?.values[cell.column], `${cell.key} ${cell.column}`).toBe(cell.value);
      expect(instant!.rows.readings + instant!.rows.extra).toBeLessThanOrEqual(2);
    }
  });

  it('holds exactly what Prometheus sent once it has stopped: every sample once, nothing else', async () => {
    await prometheus!.stop();
    const forwarded = writes();
    for (const exchange of forwarded) expect(exchange.upstreamStatus, `request ${exchange.seq}`).toBe(204);
    const sent = new Map<string, Record<string, number>>();
    let unmappedSeries = 0;
    for (const exchange of forwarded) {
      const decoded = cellsOf(exchange.body);
      unmappedSeries += decoded.unmappedSeries;
      for (const cell of decoded.cells) {
        const values = sent.get(cell.key) ?? {};
        // A resend repeats a cell with the same value; two different values would be a sender bug.
        if (cell.column in values) expect(values[cell.column]).toBe(cell.value);
        values[cell.column] = cell.value;
        sent.set(cell.key, values);
      }
    }
    const all = await stored();
    expect(new Map([...all].map(([key, instant]) => [key, instant.values]))).toEqual(sent);
    for (const [key, instant] of all) {
      expect(instant.rows.readings, key).toBeLessThanOrEqual(1);
      expect(instant.rows.extra, key).toBeLessThanOrEqual(1);
    }

    const response = await adminRequest(service.url, 'GET', `/api/v1/sites/${siteId}/unmapped`);
    expect(((await response.json()) as { total: number }).total).toBe(unmappedSeries);
    expect(
      await readCounter(service.url, 'hashwatt_ingest_unmapped_total', {
        site: siteName,
        protocol: 'remote_write',
      }),
    ).toBe(unmappedSeries);
  });
});
