import { describe, expect, it } from 'vitest';
import { EXTRA_METRICS, isKnownMetricName } from '../catalog/extra-metrics.ts';
import { CORE_METRICS } from '../catalog/index.ts';
import { DEFAULT_LINE_PROTOCOL_MAPPING } from './line-protocol/mapping.ts';
import { DEFAULT_OTLP_MAPPING } from './otlp/mapping.ts';
import { DEFAULT_REMOTE_WRITE_MAPPING } from './remote-write/mapping.ts';

describe('default mappings', () => {
  it('produce only metric names the catalog or the extra list defines', () => {
    const produced = [
      ...DEFAULT_REMOTE_WRITE_MAPPING.families.flatMap((f) => Object.values(f.metrics).flat()),
      ...Object.values(DEFAULT_LINE_PROTOCOL_MAPPING.measurements).flatMap((m) =>
        Object.values(m.fields ?? {}).flat(),
      ),
      ...Object.values(DEFAULT_OTLP_MAPPING.metrics).flatMap((e) => e.rules),
    ].map((r) => r.metric);
    expect(produced.filter((m) => !isKnownMetricName(m))).toEqual([]);
  });

  it('extra metrics follow the naming discipline and do not shadow core names', () => {
    const core = new Set<string>(CORE_METRICS.map((m) => m.name));
    for (const m of EXTRA_METRICS) {
      expect(core.has(m.name)).toBe(false);
      expect(m.name).toMatch(/^[a-z][a-z0-9_]*$/);
      if (m.type === 'counter') expect(m.name).toMatch(/_total$/);
      else expect(m.name).not.toMatch(/_total$/);
    }
    expect(new Set(EXTRA_METRICS.map((m) => m.name)).size).toBe(EXTRA_METRICS.length);
  });
});

describe('SeriesSlots', () => {
  it('finds the first instant inline and later ones in its map, never one it was not given', async () => {
    const { SeriesSlots } = await import('./mapping.ts');
    const slots = new SeriesSlots();
    const slot = (n: number) => ({
      sample: { device: 'd', metric: 'power_w', tsMs: n, value: n },
      priority: 0,
      combine: undefined,
      n: 1,
    });
    expect(slots.get(1_000)).toBeUndefined();
    const a = slot(1);
    const b = slot(2);
    slots.set(1_000, a);
    slots.set(2_000, b);
    expect(slots.get(1_000)).toBe(a);
    expect(slots.get(2_000)).toBe(b);
    expect(slots.get(3_000)).toBeUndefined();
  });
});
