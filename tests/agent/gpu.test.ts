import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { GpuServerDetail } from '../../simulators/physics/site.ts';
import { SimulatedGpuHost } from '../../simulators/protocols/gpu-host.ts';
import { type GpuTarget, PollError } from '../../src/agent/collectors/collector.ts';
import { DcgmCollector } from '../../src/agent/collectors/gpu/dcgm.ts';
import { NvidiaSmiCollector } from '../../src/agent/collectors/gpu/nvidia-smi.ts';
import { finalizeReading } from '../../src/agent/reading.ts';
import { context } from './support.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'hashwatt-gpu-test-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const hosts: SimulatedGpuHost[] = [];
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.close()));
});

/** Eight H100s at work; `lost` fell off the bus. */
function detail(lost: number[] = []): GpuServerDetail {
  return {
    name: 'node-001',
    model: 'H100 SXM',
    itPowerW: 8000,
    gpus: Array.from({ length: 8 }, (_, g) =>
      lost.includes(g)
        ? null
        : {
            utilPct: 90 + g,
            powerW: 600 + g * 3.25,
            memUsedBytes: (60_000 + g) * 1048576,
            tempC: 60 + g,
            status: 'ok' as const,
          },
    ),
  };
}

async function host(source: 'dcgm' | 'nvidia-smi', lost: number[] = [], blanks = false) {
  const h = new SimulatedGpuHost({
    name: 'node-001',
    index: 1,
    model: 'H100 SXM',
    source,
    port: 0,
    stateDir: dir,
    blanks,
  });
  h.update(detail(lost));
  await h.listen();
  hosts.push(h);
  return h;
}

async function failure(promise: Promise<unknown>): Promise<PollError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof PollError) return error;
    throw error;
  }
  throw new Error('expected a failure');
}

describe('GPUs through a dcgm-exporter', () => {
  it('one reading per GPU, values as the exporter served them; blanks left out, never sent', async () => {
    const h = await host('dcgm', [], true);
    const target: GpuTarget = {
      type: 'gpu',
      id: 'gpu:node-001',
      source: 'dcgm',
      name: 'node-001',
      url: h.url,
    };
    const result = await new DcgmCollector().poll(target, context());
    expect(result.readings.map((r) => r.device)).toEqual(
      Array.from({ length: 8 }, (_, g) => `node-001/gpu${g}`),
    );
    const gpus = h.gpus();
    for (const [g, r] of result.readings.entries()) {
      expect(r).toMatchObject({
        kind: 'gpu',
        model: 'H100 80GB HBM3',
        power_w: gpus[g]!.powerW,
        temp_c: gpus[g]!.tempC,
        gpu_util_pct: gpus[g]!.utilPct,
        gpu_mem_used_bytes: gpus[g]!.memUsedMiB * 1048576,
      });
    }
    const blank = finalizeReading(result.readings[3]!);
    expect(blank.dropped).toEqual([{ field: 'extras.gpu_mem_temp_c', reason: 'sentinel' }]);
    expect(blank.reading.extras).not.toHaveProperty('gpu_mem_temp_c');
    expect(h.served).toEqual([{ atMs: expect.any(Number), gpus: 8 }]);
  });

  it('a GPU off the bus is missing from the page; an exporter that errors or is down fails the poll', async () => {
    const h = await host('dcgm', [5]);
    const target: GpuTarget = { type: 'gpu', id: 'g', source: 'dcgm', name: 'node-001', url: h.url };
    const result = await new DcgmCollector().poll(target, context());
    expect(result.readings.map((r) => r.device)).not.toContain('node-001/gpu5');
    expect(result.readings).toHaveLength(7);

    const failing = http.createServer((_req, res) => res.writeHead(500).end('boom'));
    await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
    const port = (failing.address() as { port: number }).port;
    const e = await failure(
      new DcgmCollector().poll({ ...target, url: `http://127.0.0.1:${port}/metrics` }, context()),
    );
    expect(e.code).toBe('http_status');
    await new Promise<void>((resolve) => failing.close(() => resolve()));
    const down = await failure(
      new DcgmCollector().poll({ ...target, url: `http://127.0.0.1:${port}/metrics` }, context()),
    );
    expect(down.code).toBe('refused');
  });
});

describe('GPUs through nvidia-smi', () => {
  it('runs the fake nvidia-smi and reads its CSV: [N/A] left out, reasons to a bitmask', async () => {
    const h = await host('nvidia-smi');
    const target: GpuTarget = {
      type: 'gpu',
      id: 'gpu:a',
      source: 'nvidia-smi',
      name: 'node-001',
      command: h.nvidiaSmiCommand(),
    };
    const result = await new NvidiaSmiCollector().poll(target, context(10_000));
    expect(result.readings).toHaveLength(8);
    expect(result.problems).toEqual([]);
    expect(result.readings[2]).toMatchObject({
      device: 'node-001/gpu2',
      power_w: 606.5,
      temp_c: 62,
      gpu_util_pct: 92,
      gpu_mem_used_bytes: 60_002 * 1048576,
      extras: { power_limit_w: 700, gpu_sm_clock_mhz: 1980, gpu_throttle_reasons: 0 },
    });
  });

  it('asks a pre-535 driver again with clocks_throttle_reasons, and remembers', async () => {
    const h = await host('nvidia-smi');
    const log = path.join(dir, 'legacy.log');
    const target: GpuTarget = {
      type: 'gpu',
      id: 'gpu:legacy',
      source: 'nvidia-smi',
      name: 'node-001',
      command: [...h.nvidiaSmiCommand(), '--legacy', '--log', log],
    };
    const collector = new NvidiaSmiCollector();
    const first = await collector.poll(target, context(10_000));
    expect(first.readings[0]!.extras).toHaveProperty('gpu_throttle_reasons');
    await collector.poll(target, context(10_000));
    // The refused first try writes no log line: two runs that printed, one per poll.
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual(['8', '8']);
  });

  it('a lost GPU: the others are read, the exit status reported as a problem', async () => {
    const h = await host('nvidia-smi', [4]);
    const target: GpuTarget = {
      type: 'gpu',
      id: 'gpu:lost',
      source: 'nvidia-smi',
      name: 'node-001',
      command: h.nvidiaSmiCommand(),
    };
    const result = await new NvidiaSmiCollector().poll(target, context(10_000));
    expect(result.readings.map((r) => r.device)).not.toContain('node-001/gpu4');
    expect(result.readings).toHaveLength(7);
    expect(result.problems[0]).toMatch(/^exited 15: Unable to determine the device handle for GPU/);
  });

  it('a command that hangs is killed at the timeout; one that is missing fails the poll', async () => {
    const hang: GpuTarget = {
      type: 'gpu',
      id: 'gpu:hang',
      source: 'nvidia-smi',
      name: 'n',
      command: [process.execPath, '-e', 'setTimeout(() => {}, 60000)', '--'],
    };
    expect((await failure(new NvidiaSmiCollector().poll(hang, context(500)))).code).toBe('timeout');
    const missing: GpuTarget = { ...hang, id: 'gpu:missing', command: ['/nonexistent/nvidia-smi'] };
    const e = await failure(new NvidiaSmiCollector().poll(missing, context()));
    expect(e.code).toBe('exit_status');
    expect(e.message).toContain('ENOENT');
  });
});
