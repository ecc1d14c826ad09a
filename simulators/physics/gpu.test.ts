import { describe, expect, it } from 'vitest';
import { createGpuServer, GPU_MODELS, type GpuJob, gpuPowerW, sampleGpuServer } from './gpu.ts';
import { Noise } from './random.ts';

const noise = new Noise(11);

function run(job: GpuJob['kind'], tick = 5, localHour = 14) {
  const server = createGpuServer('H100 SXM', noise, 1, 10, 22);
  server.job = { kind: job, startTick: 0, endTick: 1_000_000, memShare: 0.8, peakUtil: 0.8 };
  return sampleGpuServer(server, {
    tick,
    intervalS: 10,
    localHour,
    inletC: 22,
    noise,
    server: 1,
    gpuBase: 100,
    reliability: null,
    forced: () => null,
  });
}

describe('GPU power', () => {
  it('follows utilisation: idle ~80–100 W, full load ~700 W, monotonic in between', () => {
    expect(gpuPowerW('H100 SXM', 0)).toBeGreaterThanOrEqual(80);
    expect(gpuPowerW('H100 SXM', 0)).toBeLessThanOrEqual(100);
    expect(gpuPowerW('H100 SXM', 1)).toBe(700);
    let last = 0;
    for (let u = 0; u <= 1; u += 0.05) {
      const p = gpuPowerW('H100 SXM', u);
      expect(p).toBeGreaterThan(last);
      last = p;
    }
  });

  it('runs training at 90–100 % and near TDP on all eight GPUs', () => {
    const sample = run('training');
    expect(sample.gpus).toHaveLength(8);
    for (const g of sample.gpus) {
      expect(g).not.toBeNull();
      expect(g!.utilPct).toBeGreaterThanOrEqual(90);
      expect(g!.powerW).toBeGreaterThan(600);
      expect(g!.powerW).toBeLessThanOrEqual(700);
      expect(g!.memUsedBytes).toBeGreaterThan(GPU_MODELS['H100 SXM'].memBytes * 0.7);
      expect(g!.memUsedBytes).toBeLessThanOrEqual(GPU_MODELS['H100 SXM'].memBytes);
      expect(g!.status).toBe('ok');
    }
  });

  it('sits idle at 0 % with idle power and status idle between jobs', () => {
    const sample = run('idle');
    for (const g of sample.gpus) {
      expect(g!.utilPct).toBe(0);
      expect(g!.powerW).toBeLessThan(110);
      expect(g!.status).toBe('idle');
    }
  });

  it('serves inference with less load at night than in the afternoon', () => {
    const sum = (h: number) => run('inference', 5, h).gpus.reduce((n, g) => n + g!.utilPct, 0);
    expect(sum(4)).toBeLessThan(sum(16) * 0.5);
  });

  it('dips during training checkpoints (every 30 min)', () => {
    const atCheckpoint = run('training', 180); // 1800 s after the job started
    expect(atCheckpoint.gpus[0]!.utilPct).toBeLessThan(20);
  });

  it('counts host power on top of the GPUs', () => {
    const sample = run('training');
    const gpus = sample.gpus.reduce((n, g) => n + g!.powerW, 0);
    const host = sample.itPowerW - gpus;
    expect(host).toBeGreaterThan(GPU_MODELS['H100 SXM'].hostIdleW);
    expect(host).toBeLessThanOrEqual(GPU_MODELS['H100 SXM'].hostBusyW);
  });

  it('reports nothing for a GPU that fell off the bus, and status error for an Xid failure', () => {
    const server = createGpuServer('H100 SXM', noise, 1, 10, 22);
    const sample = sampleGpuServer(server, {
      tick: 1,
      intervalS: 10,
      localHour: 12,
      inletC: 22,
      noise,
      server: 1,
      gpuBase: 100,
      reliability: null,
      forced: (g) => (g === 0 ? 'silent' : g === 1 ? 'error' : null),
    });
    expect(sample.gpus[0]).toBeNull();
    expect(sample.gpus[1]).toMatchObject({ status: 'error', utilPct: 0 });
  });
});
