/** Human figures for alert annotations: operators read these in a page, not in a dashboard. */

/** Watts as W, kW or MW with three significant figures at most. */
export function formatPowerW(watts: number): string {
  const abs = Math.abs(watts);
  if (abs >= 1e6) return `${trim(watts / 1e6)} MW`;
  if (abs >= 1e3) return `${trim(watts / 1e3)} kW`;
  return `${Math.round(watts)} W`;
}

/** A ratio (0.123) as a percentage ("12.3 %"). */
export function formatPercent(ratio: number): string {
  return `${trim(ratio * 100)} %`;
}

/** Terahashes per second as TH/s, PH/s or EH/s. */
export function formatHashrateThs(ths: number): string {
  if (Math.abs(ths) >= 1e6) return `${trim(ths / 1e6)} EH/s`;
  if (Math.abs(ths) >= 1e3) return `${trim(ths / 1e3)} PH/s`;
  return `${trim(ths)} TH/s`;
}

/** Seconds as "45 s", "3 min 20 s", "2 h 5 min". */
export function formatDurationS(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return s % 60 === 0 ? `${minutes} min` : `${minutes} min ${s % 60} s`;
  const hours = Math.floor(minutes / 60);
  return minutes % 60 === 0 ? `${hours} h` : `${hours} h ${minutes % 60} min`;
}

/** Three significant figures, no trailing zeros: 1.20 → "1.2", 1234 → "1234", 0.1234 → "0.123". */
function trim(value: number): string {
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return String(Number(value.toFixed(digits)));
}
