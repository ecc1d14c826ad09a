import type { GridWindow } from '../scenario.ts';

const hourFormats = new Map<string, Intl.DateTimeFormat>();

/** Local time of day in fractional hours (0 ≤ h < 24) in an IANA time zone. */
export function localHour(tsMs: number, timeZone: string): number {
  let format = hourFormats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-GB', {
      timeZone,
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      hourCycle: 'h23',
    });
    hourFormats.set(timeZone, format);
  }
  let h = 0;
  let m = 0;
  let s = 0;
  for (const part of format.formatToParts(tsMs)) {
    if (part.type === 'hour') h = Number(part.value);
    else if (part.type === 'minute') m = Number(part.value);
    else if (part.type === 'second') s = Number(part.value);
  }
  return h + m / 60 + s / 3600 + (tsMs % 1000) / 3_600_000;
}

/** Inlet air temperature: the daily mean ±6 °C, coolest around 03:00, warmest around 15:00. */
export function ambientC(meanC: number, hour: number): number {
  return meanC + 6 * Math.sin((2 * Math.PI * (hour - 9)) / 24);
}

function toHours(hhmm: string): number {
  return Number(hhmm.slice(0, 2)) + Number(hhmm.slice(3, 5)) / 60;
}

/** Whether a local hour falls inside a window; windows with from > to wrap past midnight. */
export function inWindow(window: GridWindow, hour: number): boolean {
  const from = toHours(window.from);
  const to = toHours(window.to);
  return from <= to ? hour >= from && hour < to : hour >= from || hour < to;
}

/** Available power by the daily grid schedule: the first matching window, else the full capacity. */
export function scheduledAvailablePowerW(
  capacityW: number,
  windows: readonly GridWindow[],
  hour: number,
): number {
  for (const w of windows) if (inWindow(w, hour)) return capacityW * w.available_ratio;
  return capacityW;
}
