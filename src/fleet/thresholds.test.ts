import { describe, expect, it } from 'vitest';
import {
  applyThresholdsPatch,
  DEFAULT_THRESHOLDS,
  resolveThresholds,
  ThresholdsPatchSchema,
} from './thresholds.ts';

describe('thresholds', () => {
  it('overrides some defaults and keeps the rest', () => {
    const t = resolveThresholds(DEFAULT_THRESHOLDS, { site_down_after_s: 30 });
    expect(t.site_down_after_s).toBe(30);
    expect(t.surplus_for_s).toBe(600);
  });

  it('applies a partial patch: values replace, null resets to the default', () => {
    const stored = applyThresholdsPatch(
      { site_down_after_s: 30, surplus_min_w: 5e5 },
      { site_down_after_s: null, gpu_idle_for_s: 60 },
    );
    expect(stored).toEqual({ surplus_min_w: 5e5, gpu_idle_for_s: 60 });
    expect(resolveThresholds(DEFAULT_THRESHOLDS, stored).site_down_after_s).toBe(60);
  });

  it('rejects unknown names and out-of-range values, naming the field', () => {
    const unknown = ThresholdsPatchSchema.safeParse({ site_down_after: 30 });
    expect(unknown.success).toBe(false);
    const ratio = ThresholdsPatchSchema.safeParse({ surplus_min_ratio: 1.5 });
    expect(ratio.error?.issues[0]?.path).toEqual(['surplus_min_ratio']);
  });
});
