import type { SiteState } from '../fleet/site-state.ts';
import type { Thresholds } from '../fleet/thresholds.ts';
import { formatDurationS, formatHashrateThs, formatPercent, formatPowerW } from './format.ts';

/**
 * The alert rules: pure functions of one site's current state and its thresholds. The names, the
 * thresholds and the meaning are shared with the Prometheus rules in prometheus/rules/sites.yml
 * (docs/alerting.md tables the correspondence); change one, change both.
 */
export const ALERT_NAMES = [
  'SiteDown',
  'PowerOverAvailable',
  'PowerSurplus',
  'DevicesDown',
  'HashrateLow',
  'GpuIdle',
] as const;
export type AlertName = (typeof ALERT_NAMES)[number];

export const SEVERITIES = ['critical', 'warning'] as const;
export type Severity = (typeof SEVERITIES)[number];

/**
 * What a rule concludes about a site now. `unknown` means it cannot tell (the site is dark, or
 * hashwatt itself has not listened long enough): an alert neither starts nor resolves on it.
 */
export type Condition = 'met' | 'clear' | 'unknown';

export interface RuleContext {
  nowMs: number;
  /** Since when this hashwatt has been accepting readings: silence before that is not the site's. */
  listeningSinceMs: number;
}

/** Annotations are strings because Alertmanager's are; numbers are also given raw in value/threshold. */
export type Annotations = Record<string, string>;

export interface RuleResult {
  condition: Condition;
  /** The measured value, in the unit of `threshold`; null when there is nothing to measure. */
  value: number | null;
  threshold: number | null;
  /** summary, description and rule-specific details; meaningful when the condition is met. */
  annotations: Annotations;
}

export interface AlertRule {
  name: AlertName;
  severity: Severity;
  /** How long the condition must hold before the alert fires (Prometheus `for`). */
  forMs(t: Thresholds): number;
  /**
   * How long the condition must stay clear before a firing alert resolves (Prometheus
   * `keep_firing_for`): a value hovering at the threshold keeps one alert open instead of flapping.
   */
  resolveHoldMs(t: Thresholds): number;
  evaluate(site: SiteState, context: RuleContext): RuleResult;
}

/** Resolve holds never exceed this: an operator should hear of a recovery within minutes. */
export const MAX_RESOLVE_HOLD_MS = 300_000;

/** Half the time it took to believe the problem, capped: the hold of every rule with a `for`. */
function halfOfFor(forS: number): number {
  return Math.min((forS * 1000) / 2, MAX_RESOLVE_HOLD_MS);
}

const unknown = (threshold: number | null): RuleResult => ({
  condition: 'unknown',
  value: null,
  threshold,
  annotations: {},
});

const where = (site: SiteState) => `site ${site.name} (${site.kind})`;

/**
 * No reading from any device of the site for longer than site_down_after_s. Fires without a `for`:
 * the threshold is the wait. A site that never reported is not down: it has not been commissioned.
 */
const siteDown: AlertRule = {
  name: 'SiteDown',
  severity: 'critical',
  forMs: () => 0,
  // A flaky uplink reports, goes quiet, reports: twice the threshold keeps one alert open.
  resolveHoldMs: (t) => Math.min(t.site_down_after_s * 2000, MAX_RESOLVE_HOLD_MS),
  evaluate(site, { nowMs, listeningSinceMs }): RuleResult {
    const thresholdS = site.thresholds.site_down_after_s;
    if (site.lastReadingMs === null) {
      return { condition: 'clear', value: null, threshold: thresholdS, annotations: {} };
    }
    const silenceS = Math.max(0, (nowMs - site.lastReadingMs) / 1000);
    let condition: Condition = silenceS > thresholdS ? 'met' : 'clear';
    // After hashwatt itself was down, every site looks silent until its agent reconnects and
    // backfills; wait one threshold of listening before blaming the site.
    if (
      condition === 'met' &&
      site.lastReadingMs < listeningSinceMs &&
      nowMs - listeningSinceMs <= thresholdS * 1000
    ) {
      condition = 'unknown';
    }
    return {
      condition,
      value: silenceS,
      threshold: thresholdS,
      annotations: {
        summary: `Site ${site.name} is down`,
        description:
          `No reading from ${where(site)} for ${formatDurationS(silenceS)} ` +
          `(threshold ${formatDurationS(thresholdS)}). Check the site's agent and its uplink.`,
        silence_s: String(Math.round(silenceS)),
      },
    };
  },
};

/** The other rules judge a site by its readings; a dark site has none worth judging. */
function requireUp(site: SiteState, threshold: number | null): RuleResult | null {
  return site.up ? null : unknown(threshold);
}

/** Drawn above available by more than the tolerance: a curtailment breach. */
const powerOverAvailable: AlertRule = {
  name: 'PowerOverAvailable',
  severity: 'critical',
  forMs: (t) => t.over_available_for_s * 1000,
  resolveHoldMs: (t) => halfOfFor(t.over_available_for_s),
  evaluate(site): RuleResult {
    const tolerance = site.thresholds.over_available_tolerance_ratio;
    const limitW = site.availableW * (1 + tolerance);
    const down = requireUp(site, limitW);
    if (down) return down;
    const overW = site.drawnW - site.availableW;
    return {
      condition: site.drawnW > limitW ? 'met' : 'clear',
      value: site.drawnW,
      threshold: limitW,
      annotations: {
        summary: `Site ${site.name} draws more power than it may`,
        description:
          `${capitalise(where(site))} draws ${formatPowerW(site.drawnW)} (${site.drawnSource}), ` +
          `${formatPowerW(overW)} over the ${formatPowerW(site.availableW)} available (${site.availableSource}), ` +
          `beyond the ${formatPercent(tolerance)} tolerance. Curtail now: the excess is penalised.`,
        drawn_w: String(Math.round(site.drawnW)),
        available_w: String(Math.round(site.availableW)),
        over_w: String(Math.round(overW)),
      },
    };
  },
};

/** The device kind that does most of a site's work, and what one of them draws. */
export interface TypicalDevice {
  kind: 'asic' | 'gpu';
  powerW: number;
}

/**
 * The site's mean power per up device of its dominant kind (by power), or null when it cannot be
 * told. SiteState has no per-kind count of up devices, so ASICs are counted as up devices minus
 * fresh GPUs, and their power is that of the hashing ASICs (efficiency × hashrate); see
 * docs/alerting.md for the fields that would make this exact.
 */
export function typicalDevice(site: SiteState): TypicalDevice | null {
  const gpuDominant = site.aiShareRatio !== null ? site.aiShareRatio >= 0.5 : site.kind === 'ai';
  const kind = gpuDominant ? 'gpu' : 'asic';
  const { count, powerW } = site.upDevices[kind];
  return count > 0 && powerW > 0 ? { kind, powerW: powerW / count } : null;
}

/** Available minus drawn at least max(surplus_min_w, surplus_min_ratio × available): paid-for power unused. */
const powerSurplus: AlertRule = {
  name: 'PowerSurplus',
  severity: 'warning',
  forMs: (t) => t.surplus_for_s * 1000,
  resolveHoldMs: (t) => halfOfFor(t.surplus_for_s),
  evaluate(site): RuleResult {
    const t = site.thresholds;
    const thresholdW = Math.max(t.surplus_min_w, t.surplus_min_ratio * site.availableW);
    const down = requireUp(site, thresholdW);
    if (down) return down;
    const surplusW = site.surplusW;
    const typical = typicalDevice(site);
    const more = typical ? Math.floor(Math.max(0, surplusW) / typical.powerW) : null;
    const kindName = typical?.kind === 'gpu' ? 'GPUs' : 'ASICs';
    return {
      // With both thresholds at 0 an empty site would "leave 0 W unused"; a surplus is positive.
      condition: surplusW > 0 && surplusW >= thresholdW ? 'met' : 'clear',
      value: surplusW,
      threshold: thresholdW,
      annotations: {
        summary: `Site ${site.name} leaves ${formatPowerW(surplusW)} of available power unused`,
        description:
          `${capitalise(where(site))} draws ${formatPowerW(site.drawnW)} of ${formatPowerW(site.availableW)} ` +
          `available (${site.availableSource}): ${formatPowerW(surplusW)} (${formatPercent(site.surplusRatio)}) unused` +
          (typical && more !== null
            ? `, enough for about ${more} more ${kindName} at ${formatPowerW(typical.powerW)} each.`
            : '.') +
          ' Bring curtailed or idle devices back, or sell the power.',
        surplus_w: String(Math.round(surplusW)),
        surplus_ratio: site.surplusRatio.toFixed(4),
        available_w: String(Math.round(site.availableW)),
        available_source: site.availableSource,
        drawn_w: String(Math.round(site.drawnW)),
        ...(typical &&
          more !== null && {
            devices_powerable: String(more),
            typical_device_kind: typical.kind,
            typical_device_power_w: String(Math.round(typical.powerW)),
          }),
      },
    };
  },
};

/** Down and silent compute devices over all of them; curtailed devices are excused by SiteState. */
const devicesDown: AlertRule = {
  name: 'DevicesDown',
  severity: 'warning',
  forMs: (t) => t.devices_down_for_s * 1000,
  resolveHoldMs: (t) => halfOfFor(t.devices_down_for_s),
  evaluate(site): RuleResult {
    const threshold = site.thresholds.devices_down_ratio;
    const down = requireUp(site, threshold);
    if (down) return down;
    const { devices } = site;
    const bad = devices.down + devices.stale;
    return {
      condition: devices.total > 0 && site.devicesDownRatio > threshold ? 'met' : 'clear',
      value: site.devicesDownRatio,
      threshold,
      annotations: {
        summary: `${formatPercent(site.devicesDownRatio)} of the devices at ${site.name} are down`,
        description:
          `${bad} of ${devices.total} compute devices at ${where(site)} are down or silent ` +
          `(${devices.down} down, ${devices.stale} silent; threshold ${formatPercent(threshold)}). ` +
          `${devices.curtailed} curtailed devices are excused.`,
        devices_down: String(devices.down),
        devices_stale: String(devices.stale),
        devices_curtailed: String(devices.curtailed),
        devices_total: String(devices.total),
      },
    };
  },
};

/** Actual over expected hashrate of the ASICs expected to hash (curtailed ones are not). */
const hashrateLow: AlertRule = {
  name: 'HashrateLow',
  severity: 'warning',
  forMs: (t) => t.hashrate_low_for_s * 1000,
  resolveHoldMs: (t) => halfOfFor(t.hashrate_low_for_s),
  evaluate(site): RuleResult {
    const threshold = site.thresholds.hashing_ratio_min;
    const down = requireUp(site, threshold);
    if (down) return down;
    const ratio = site.hashingRatio;
    // No ASIC expected to hash (none, or all curtailed): nothing can be low.
    if (ratio === null) return { condition: 'clear', value: null, threshold, annotations: {} };
    return {
      condition: ratio < threshold ? 'met' : 'clear',
      value: ratio,
      threshold,
      annotations: {
        summary: `Site ${site.name} hashes at ${formatPercent(ratio)} of expected`,
        description:
          `The ASICs of ${where(site)} deliver ${formatHashrateThs(site.hashrateThs)} of ` +
          `${formatHashrateThs(site.expectedHashrateThs)} expected (${formatPercent(ratio)}, minimum ` +
          `${formatPercent(threshold)}). Look for failed hashboards, pool problems or overheating.`,
        hashrate_ths: String(site.hashrateThs),
        expected_hashrate_ths: String(site.expectedHashrateThs),
      },
    };
  },
};

/** Mean utilisation of an AI or mixed site's GPUs under gpu_idle_util_max: AI capacity unused. */
const gpuIdle: AlertRule = {
  name: 'GpuIdle',
  severity: 'warning',
  forMs: (t) => t.gpu_idle_for_s * 1000,
  resolveHoldMs: (t) => halfOfFor(t.gpu_idle_for_s),
  evaluate(site): RuleResult {
    const threshold = site.thresholds.gpu_idle_util_max;
    const down = requireUp(site, threshold);
    if (down) return down;
    const util = site.gpus.utilisationRatio;
    if (site.kind === 'mining' || site.gpus.count === 0 || util === null) {
      return { condition: 'clear', value: null, threshold, annotations: {} };
    }
    return {
      condition: util < threshold ? 'met' : 'clear',
      value: util,
      threshold,
      annotations: {
        summary: `GPUs at ${site.name} are idle (${formatPercent(util)} utilised)`,
        description:
          `The ${site.gpus.count} GPUs of ${where(site)} average ${formatPercent(util)} utilisation ` +
          `(idle under ${formatPercent(threshold)}; ${site.gpus.idle} idle). Schedule work or lend the power to mining.`,
        gpus: String(site.gpus.count),
        gpus_idle: String(site.gpus.idle),
      },
    };
  },
};

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Every rule, in the order they are evaluated and listed. */
export const ALERT_RULES: readonly AlertRule[] = [
  siteDown,
  powerOverAvailable,
  powerSurplus,
  devicesDown,
  hashrateLow,
  gpuIdle,
];

const BY_NAME = new Map(ALERT_RULES.map((r) => [r.name, r]));

/** The rule of an alert name, or undefined for a name this version does not know. */
export function findRule(name: string): AlertRule | undefined {
  return BY_NAME.get(name as AlertName);
}
