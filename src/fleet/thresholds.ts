import { z } from 'zod';

const seconds = z
  .number()
  .int()
  .min(1)
  .max(7 * 86_400);
const ratio = z.number().min(0).max(1);

/**
 * Alert and state thresholds. The names are public: per-site overrides use them in the API
 * (`PATCH /api/v1/sites/:id {"thresholds": {...}}`) and global defaults in HASHWATT_ALERT_THRESHOLDS.
 */
export const ThresholdsSchema = z.strictObject({
  /** A site with no reading for this long is down. */
  site_down_after_s: seconds,
  /** A device with no reading for this long is stale (counted as down unless curtailed). */
  device_stale_after_s: seconds,
  /** Surplus must exceed both this share of available power and `surplus_min_w`. */
  surplus_min_ratio: ratio,
  surplus_min_w: z.number().min(0).max(1e10),
  surplus_for_s: seconds,
  over_available_tolerance_ratio: ratio,
  over_available_for_s: seconds,
  devices_down_ratio: ratio,
  devices_down_for_s: seconds,
  hashing_ratio_min: ratio,
  hashrate_low_for_s: seconds,
  /** A GPU at or under this utilisation (0–1) is idle. */
  gpu_idle_util_max: ratio,
  gpu_idle_for_s: seconds,
});
export type Thresholds = z.infer<typeof ThresholdsSchema>;
export type ThresholdName = keyof Thresholds;

export const DEFAULT_THRESHOLDS: Readonly<Thresholds> = Object.freeze({
  site_down_after_s: 60,
  device_stale_after_s: 120,
  surplus_min_ratio: 0.1,
  surplus_min_w: 0,
  surplus_for_s: 600,
  over_available_tolerance_ratio: 0.02,
  over_available_for_s: 120,
  devices_down_ratio: 0.05,
  devices_down_for_s: 300,
  hashing_ratio_min: 0.75,
  hashrate_low_for_s: 600,
  gpu_idle_util_max: 0.2,
  gpu_idle_for_s: 900,
});

/** A partial override; `null` resets a threshold to the default. */
export const ThresholdsPatchSchema = z.strictObject(
  Object.fromEntries(
    Object.entries(ThresholdsSchema.shape).map(([name, schema]) => [name, schema.nullable().optional()]),
  ) as { [K in ThresholdName]: z.ZodOptional<z.ZodNullable<(typeof ThresholdsSchema.shape)[K]>> },
);
export type ThresholdsPatch = z.infer<typeof ThresholdsPatchSchema>;

/** Stored overrides with a patch applied: set values replace, `null` removes. */
export function applyThresholdsPatch(
  stored: Partial<Thresholds>,
  patch: ThresholdsPatch,
): Partial<Thresholds> {
  const next: Record<string, number> = { ...stored };
  for (const [name, value] of Object.entries(patch)) {
    if (value === null) delete next[name];
    else if (value !== undefined) next[name] = value;
  }
  return next as Partial<Thresholds>;
}

/** The thresholds in force for a site: its overrides over the global defaults. */
export function resolveThresholds(
  defaults: Thresholds,
  overrides: Partial<Thresholds> | Record<string, unknown>,
): Thresholds {
  const valid = ThresholdsSchema.partial().safeParse(overrides);
  // Stored overrides were validated on the way in; anything unreadable falls back rather than breaking evaluation.
  return { ...defaults, ...(valid.success ? stripUndefined(valid.data) : {}) };
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
