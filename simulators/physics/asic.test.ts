import { describe, expect, it } from 'vitest';
import {
  ASIC_MODEL_NAMES,
  ASIC_MODELS,
  type AsicHealth,
  createAsicUnit,
  efficiencyJPerTh,
  initialAsicHealth,
  sampleAsic,
} from './asic.ts';
import { Noise } from './random.ts';

function healthy(ambient = 25): {
  unit: ReturnType<typeof createAsicUnit>;
  health: AsicHealth;
  noise: Noise;
} {
  const noise = new Noise(7);
  const unit = createAsicUnit('S21', noise, 3);
  return { unit, health: initialAsicHealth(unit, ambient), noise };
}

describe('ASIC models', () => {
  it('carry the published nameplate figures', () => {
    expect(ASIC_MODELS['S19 XP']).toMatchObject({ hashrateThs: 140, powerW: 3010 });
    expect(ASIC_MODELS.S21).toMatchObject({ hashrateThs: 200, powerW: 3500 });
    expect(ASIC_MODELS['S21 Pro']).toMatchObject({ hashrateThs: 234, powerW: 3510 });
    expect(efficiencyJPerTh('S21')).toBeCloseTo(17.5, 1);
    expect(efficiencyJPerTh('S21 Pro')).toBeCloseTo(15, 1);
  });
});

describe('sampleAsic', () => {
  it('keeps hashrate and power within ±10 % of nameplate for any unit, tick and ambient', () => {
    // Property check over 2,000 drawn cases (seed, device, tick, ambient, model).
    const draw = new Noise(2024);
    for (let i = 0; i < 2000; i++) {
      const model = ASIC_MODEL_NAMES[Math.floor(draw.uniform(i, 0, 1) * ASIC_MODEL_NAMES.length)]!;
      const noise = new Noise(Math.floor(draw.uniform(i, 0, 2) * 2 ** 32));
      const device = Math.floor(draw.uniform(i, 0, 3) * 100_000);
      const tick = Math.floor(draw.uniform(i, 0, 4) * 1_000_000);
      const ambient = draw.between(i, 0, 5, -10, 40);
      const unit = createAsicUnit(model, noise, device);
      const health = initialAsicHealth(unit, ambient);
      const s = sampleAsic(unit, health, 'hashing', ambient, 10, noise, device, tick);
      const m = ASIC_MODELS[model];
      const at = `${model} device ${device} tick ${tick} ambient ${ambient.toFixed(1)}`;
      expect(s.hashrateThs, at).toBeGreaterThanOrEqual(m.hashrateThs * 0.9);
      expect(s.hashrateThs, at).toBeLessThanOrEqual(m.hashrateThs * 1.1);
      expect(s.powerW, at).toBeGreaterThanOrEqual(m.powerW * 0.9);
      expect(s.powerW, at).toBeLessThanOrEqual(m.powerW * 1.1);
      expect(s.fanRpm, at).toBeGreaterThanOrEqual(m.minFanRpm - 200);
      expect(s.fanRpm, at).toBeLessThanOrEqual(m.maxFanRpm + 200);
      expect(s.status).toBe('ok');
    }
  });

  it('loses about a third of hashrate with a hashboard, and less than a third of power', () => {
    const { unit, health, noise } = healthy();
    const full = sampleAsic(unit, health, 'hashing', 25, 10, noise, 3, 1);
    health.boardsLost = 1;
    const degraded = sampleAsic(unit, health, 'hashing', 25, 10, noise, 3, 1);
    const hashrateLoss = 1 - degraded.hashrateThs / full.hashrateThs;
    const powerLoss = 1 - degraded.powerW / full.powerW;
    expect(hashrateLoss).toBeGreaterThan(0.3);
    expect(hashrateLoss).toBeLessThan(0.37);
    expect(powerLoss).toBeGreaterThan(0.15);
    expect(powerLoss).toBeLessThan(hashrateLoss);
    expect(degraded.status).toBe('ok');
  });

  it('hashes nothing and draws near nothing when curtailed', () => {
    const { unit, health, noise } = healthy();
    const s = sampleAsic(unit, health, 'curtailed', 25, 10, noise, 3, 1);
    expect(s.status).toBe('curtailed');
    expect(s.hashrateThs).toBe(0);
    expect(s.powerW).toBeLessThan(ASIC_MODELS.S21.powerW * 0.03);
  });

  it('reports zero hashrate and status error when dead, fans at full speed', () => {
    const { unit, health, noise } = healthy();
    const s = sampleAsic(unit, health, 'error', 25, 10, noise, 3, 1);
    expect(s).toMatchObject({ status: 'error', hashrateThs: 0, fanRpm: expect.any(Number) });
    expect(s.fanRpm).toBeGreaterThan(ASIC_MODELS.S21.maxFanRpm - 200);
  });

  it('runs hotter and spins fans faster when the inlet air is hotter', () => {
    const cool = healthy(15);
    const hot = healthy(38);
    const a = sampleAsic(cool.unit, cool.health, 'hashing', 15, 10, cool.noise, 3, 1);
    const b = sampleAsic(hot.unit, hot.health, 'hashing', 38, 10, hot.noise, 3, 1);
    expect(b.tempC - a.tempC).toBeGreaterThan(18);
    expect(b.fanRpm).toBeGreaterThan(a.fanRpm);
  });

  it('lets board temperature follow load with a lag, not a jump', () => {
    const { unit, health, noise } = healthy(25);
    const hashingTemp = health.tempC;
    const first = sampleAsic(unit, health, 'curtailed', 25, 10, noise, 3, 1).tempC;
    let later = first;
    for (let t = 2; t < 120; t++) later = sampleAsic(unit, health, 'curtailed', 25, 10, noise, 3, t).tempC;
    expect(first).toBeLessThan(hashingTemp);
    expect(first).toBeGreaterThan(hashingTemp - 10); // 10 s into a 120 s time constant
    expect(later).toBeLessThan(30); // settled near ambient + 3
  });
});
