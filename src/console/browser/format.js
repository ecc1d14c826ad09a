// @ts-check
/**
 * Numbers and times as an operator reads them: power auto-scaled W → kW → MW → GW, hashrate
 * TH/s → PH/s → EH/s, energy kWh → MWh → GWh, shares in percent, times in the browser's own zone
 * with the zone named. Numbers follow the browser's locale. Pure: src/console/format.test.ts.
 */

/** What an absent value reads as. */
export const NONE = '–';

/** @type {Map<number, Intl.NumberFormat>} */
const fixed = new Map();
/** @param {number} digits */
function fixedFormat(digits) {
  let f = fixed.get(digits);
  if (!f) {
    f = new Intl.NumberFormat(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
    fixed.set(digits, f);
  }
  return f;
}

/** Decimals that keep three significant digits: 312, 31.2, 3.12. */
function decimalsFor(/** @type {number} */ abs) {
  return abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
}

/**
 * `value` (in `units[0]`) in the largest unit of `units` (each `step` times the one before) that
 * keeps it at or above 1, with three significant digits. The unit is chosen after rounding, so
 * 999 960 W reads "1.00 MW", never "1,000 kW".
 * @param {number} value
 * @param {readonly string[]} units
 * @param {number} step
 */
export function formatScaled(value, units, step = 1000) {
  if (!Number.isFinite(value)) return NONE;
  if (value === 0) return `0 ${units[0]}`;
  let i = 0;
  let v = value;
  while (i < units.length - 1 && Math.abs(v) >= step) {
    v /= step;
    i++;
  }
  let digits = decimalsFor(Math.abs(v));
  let rounded = Number(v.toFixed(digits));
  if (Math.abs(rounded) >= step && i < units.length - 1) {
    v /= step;
    i++;
    digits = decimalsFor(Math.abs(v));
    rounded = Number(v.toFixed(digits));
  }
  return `${fixedFormat(digits).format(rounded)} ${units[i]}`;
}

const POWER_UNITS = ['W', 'kW', 'MW', 'GW'];
const HASHRATE_UNITS = ['TH/s', 'PH/s', 'EH/s', 'ZH/s'];
const ENERGY_UNITS = ['kWh', 'MWh', 'GWh', 'TWh'];

/** Watts, auto-scaled: "950 W", "312 kW", "1.23 MW". */
export function formatPower(/** @type {number | null | undefined} */ watts) {
  return watts === null || watts === undefined ? NONE : formatScaled(watts, POWER_UNITS);
}

/** Terahashes per second, auto-scaled: "210 TH/s", "1.05 PH/s". */
export function formatHashrate(/** @type {number | null | undefined} */ ths) {
  return ths === null || ths === undefined ? NONE : formatScaled(ths, HASHRATE_UNITS);
}

/** Kilowatt-hours, auto-scaled: "12.5 kWh", "1.15 MWh". */
export function formatEnergy(/** @type {number | null | undefined} */ kwh) {
  return kwh === null || kwh === undefined ? NONE : formatScaled(kwh, ENERGY_UNITS);
}

const percent0 = new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 0 });
const percent1 = new Intl.NumberFormat(undefined, {
  style: 'percent',
  minimumFractionDigits: 1,
  maximumFractionDigits: 1,
});

/** A ratio (0–1, or past 1) as a percentage: "57%", "4.5%", "105%". */
export function formatRatio(/** @type {number | null | undefined} */ ratio) {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return NONE;
  // Under 10 % a tenth of a percent still matters (a few devices down of hundreds).
  return Math.abs(ratio) < 0.1 && ratio !== 0 ? percent1.format(ratio) : percent0.format(ratio);
}

/** A value already in percent (GPU utilisation as devices report it): "57%". */
export function formatPercentValue(/** @type {number | null | undefined} */ pct) {
  return pct === null || pct === undefined ? NONE : formatRatio(pct / 100);
}

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

/** A count: "1,024". */
export function formatCount(/** @type {number | null | undefined} */ n) {
  return n === null || n === undefined ? NONE : integer.format(n);
}

/** A count and its noun: "1 GPU", "8 GPUs". */
export function formatCountOf(/** @type {number} */ n, /** @type {string} */ noun) {
  return `${integer.format(n)} ${noun}${n === 1 ? '' : 's'}`;
}

/** Degrees Celsius: "41.5 °C". */
export function formatTemperature(/** @type {number | null | undefined} */ c) {
  return c === null || c === undefined ? NONE : `${fixedFormat(1).format(c)} °C`;
}

/** Fan speed: "5,400 rpm". */
export function formatRpm(/** @type {number | null | undefined} */ rpm) {
  return rpm === null || rpm === undefined ? NONE : `${integer.format(rpm)} rpm`;
}

/** Bytes in binary units: "61.2 GiB". */
export function formatBytes(/** @type {number | null | undefined} */ bytes) {
  return bytes === null || bytes === undefined
    ? NONE
    : formatScaled(bytes, ['B', 'KiB', 'MiB', 'GiB', 'TiB'], 1024);
}

/** A money amount in the site's tariff currency, which hashwatt does not know: "57.51". */
export function formatCost(/** @type {number | null | undefined} */ cost) {
  return cost === null || cost === undefined ? NONE : fixedFormat(2).format(cost);
}

/** A length of time: "45 s", "12 min", "3 h 5 min", "2 d 4 h". */
export function formatDuration(/** @type {number} */ seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 === 0 ? `${h} h` : `${h} h ${m % 60} min`;
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? `${d} d` : `${d} d ${h % 24} h`;
}

/** How long ago, from `nowMs`: "just now", "12 s ago", "5 min ago". */
export function formatAgo(/** @type {number} */ thenMs, /** @type {number} */ nowMs) {
  const s = (nowMs - thenMs) / 1000;
  // A second of clock difference between this browser and the service is not "in the future".
  return s < 1 ? 'just now' : `${formatDuration(s)} ago`;
}

/** @param {boolean} zone */
const clockFormats = (zone) => ({
  today: new Intl.DateTimeFormat(undefined, {
    hour: 'numeric',
    minute: '2-digit',
    second: '2-digit',
    ...(zone && { timeZoneName: 'short' }),
  }),
  otherDay: new Intl.DateTimeFormat(undefined, {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: 'numeric',
    minute: '2-digit',
    ...(zone && { timeZoneName: 'short' }),
  }),
});
const withZone = clockFormats(true);
const withoutZone = clockFormats(false);
const dayKey = new Intl.DateTimeFormat('en-CA', { year: 'numeric', month: '2-digit', day: '2-digit' });

/**
 * An instant in the browser's zone, named: "5:01:09 PM CET" today, "Dec 1, 2026, 9:12 AM CET" on
 * another day.
 * @param {string | number | null | undefined} at RFC 3339 or epoch ms
 * @param {number} nowMs
 */
export function formatInstant(at, nowMs = Date.now()) {
  return formatAt(at, nowMs, withZone);
}

/**
 * An instant in the browser's zone without naming it, for dense table cells on a page that names
 * the zone elsewhere: "5:01:09 PM", "Dec 1, 2026, 9:12 AM".
 * @param {string | number | null | undefined} at RFC 3339 or epoch ms
 * @param {number} nowMs
 */
export function formatClock(at, nowMs = Date.now()) {
  return formatAt(at, nowMs, withoutZone);
}

/**
 * @param {string | number | null | undefined} at
 * @param {number} nowMs
 * @param {ReturnType<typeof clockFormats>} formats
 */
function formatAt(at, nowMs, formats) {
  if (at === null || at === undefined) return NONE;
  const ms = typeof at === 'number' ? at : Date.parse(at);
  if (!Number.isFinite(ms)) return NONE;
  return dayKey.format(ms) === dayKey.format(nowMs) ? formats.today.format(ms) : formats.otherDay.format(ms);
}

/** The browser's zone and its current offset: "Europe/Berlin (UTC+01:00)". */
export function describeLocalZone(/** @type {number} */ nowMs = Date.now()) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const offsetMin = -new Date(nowMs).getTimezoneOffset();
  const sign = offsetMin < 0 ? '−' : '+';
  const abs = Math.abs(offsetMin);
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = String(abs % 60).padStart(2, '0');
  return `${zone} (UTC${sign}${hh}:${mm})`;
}

/** The unit each built-in alert's value and threshold are in (docs/alerting.md). */
const ALERT_UNITS = /** @type {const} */ ({
  SiteDown: 'seconds',
  PowerOverAvailable: 'watts',
  PowerSurplus: 'watts',
  DevicesDown: 'ratio',
  HashrateLow: 'ratio',
  GpuIdle: 'ratio',
});

/** An alert's value or threshold in its rule's unit: "12 min", "500 kW", "8.0%". */
export function formatAlertValue(/** @type {string} */ alertname, /** @type {number | null} */ value) {
  if (value === null) return NONE;
  const unit = ALERT_UNITS[/** @type {keyof typeof ALERT_UNITS} */ (alertname)];
  if (unit === 'seconds') return formatDuration(value);
  if (unit === 'watts') return formatPower(value);
  if (unit === 'ratio') return formatRatio(value);
  return fixedFormat(decimalsFor(Math.abs(value))).format(value);
}

/** What a series' `source` means, for the caption under the charts. */
export function describeSource(/** @type {string | null | undefined} */ source) {
  switch (source) {
    case 'raw':
      return 'from raw readings';
    case '1m':
      return 'from 1-minute rollups';
    case '1h':
      return 'from 1-hour rollups';
    default:
      return '';
  }
}
