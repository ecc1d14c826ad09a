/**
 * The console's number and time formats (src/console/browser/format.js). The module is browser
 * code, JSDoc-typed and checked by src/console/browser/tsconfig.json; this project does not check
 * JavaScript, so its shape is declared here and the module loaded by URL.
 */
import { describe, expect, it } from 'vitest';

interface FormatModule {
  NONE: string;
  formatPower(w: number | null | undefined): string;
  formatHashrate(ths: number | null | undefined): string;
  formatEnergy(kwh: number | null | undefined): string;
  formatRatio(ratio: number | null | undefined): string;
  formatPercentValue(pct: number | null | undefined): string;
  formatDuration(seconds: number): string;
  formatAgo(thenMs: number, nowMs: number): string;
  formatAlertValue(alertname: string, value: number | null): string;
  formatInstant(at: string | number | null | undefined, nowMs?: number): string;
  describeSource(source: string | null | undefined): string;
  describeLocalZone(nowMs?: number): string;
}

const format = (await import(new URL('./browser/format.js', import.meta.url).href)) as FormatModule;

// The digits follow the runtime's locale, as they follow the browser's; the units and the
// rounding are what is held here.
const digits = (value: number, fraction: number) =>
  new Intl.NumberFormat(undefined, {
    minimumFractionDigits: fraction,
    maximumFractionDigits: fraction,
  }).format(value);

describe('console formats', () => {
  it('scales power from W to GW with three significant digits', () => {
    expect(format.formatPower(0)).toBe('0 W');
    expect(format.formatPower(950)).toBe(`${digits(950, 0)} W`);
    expect(format.formatPower(3520)).toBe(`${digits(3.52, 2)} kW`);
    expect(format.formatPower(312_000)).toBe(`${digits(312, 0)} kW`);
    expect(format.formatPower(1_234_567)).toBe(`${digits(1.23, 2)} MW`);
    expect(format.formatPower(2.5e9)).toBe(`${digits(2.5, 2)} GW`);
    expect(format.formatPower(-88_000)).toBe(`${digits(-88, 1)} kW`);
    expect(format.formatPower(null)).toBe(format.NONE);
  });

  it('picks the unit after rounding: 999,960 W is 1.00 MW, not 1,000 kW', () => {
    expect(format.formatPower(999_960)).toBe(`${digits(1, 2)} MW`);
    expect(format.formatPower(999.7)).toBe(`${digits(1, 2)} kW`);
    expect(format.formatHashrate(999.99)).toBe(`${digits(1, 2)} PH/s`);
  });

  it('scales hashrate and energy', () => {
    expect(format.formatHashrate(210)).toBe(`${digits(210, 0)} TH/s`);
    expect(format.formatHashrate(1050)).toBe(`${digits(1.05, 2)} PH/s`);
    expect(format.formatHashrate(3.2e6)).toBe(`${digits(3.2, 2)} EH/s`);
    expect(format.formatEnergy(12.5)).toBe(`${digits(12.5, 1)} kWh`);
    expect(format.formatEnergy(1150.2)).toBe(`${digits(1.15, 2)} MWh`);
  });

  it('shows shares in percent, a tenth of a percent under 10 %', () => {
    const percent = (r: number, f: number) =>
      new Intl.NumberFormat(undefined, {
        style: 'percent',
        minimumFractionDigits: f,
        maximumFractionDigits: f,
      }).format(r);
    expect(format.formatRatio(0.5667)).toBe(percent(0.57, 0));
    expect(format.formatRatio(1.05)).toBe(percent(1.05, 0));
    expect(format.formatRatio(0.045)).toBe(percent(0.045, 1));
    expect(format.formatRatio(0)).toBe(percent(0, 0));
    expect(format.formatRatio(null)).toBe(format.NONE);
    expect(format.formatPercentValue(57)).toBe(percent(0.57, 0));
  });

  it('says how long ago in the largest whole units', () => {
    expect(format.formatDuration(45)).toBe('45 s');
    expect(format.formatDuration(720)).toBe('12 min');
    expect(format.formatDuration(3 * 3600 + 300)).toBe('3 h 5 min');
    expect(format.formatDuration(2 * 86_400 + 4 * 3600)).toBe('2 d 4 h');
    expect(format.formatAgo(10_000, 22_000)).toBe('12 s ago');
    // A browser clock a little behind the service's is not "in the future".
    expect(format.formatAgo(23_000, 22_000)).toBe('just now');
  });

  it('reads an alert value in its rule’s unit', () => {
    expect(format.formatAlertValue('SiteDown', 720)).toBe('12 min');
    expect(format.formatAlertValue('PowerSurplus', 500_000)).toBe(`${digits(500, 0)} kW`);
    expect(format.formatAlertValue('DevicesDown', 0.08)).toBe(format.formatRatio(0.08));
    expect(format.formatAlertValue('HashrateLow', null)).toBe(format.NONE);
  });

  it('names the zone of every instant it shows, and the source of a series', () => {
    const now = Date.parse('2026-12-01T13:20:28Z');
    const zone = new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' })
      .formatToParts(now)
      .find((p) => p.type === 'timeZoneName')!.value;
    expect(format.formatInstant('2026-12-01T13:20:00Z', now)).toContain(zone);
    // Another day carries its date.
    expect(format.formatInstant('2026-11-20T08:00:00Z', now)).toMatch(/2026/);
    expect(format.formatInstant(null, now)).toBe(format.NONE);
    expect(format.describeLocalZone(now)).toMatch(/\(UTC[+−]\d\d:\d\d\)$/);
    expect(format.describeSource('1h')).toBe('from 1-hour rollups');
    expect(format.describeSource('1m')).toBe('from 1-minute rollups');
    expect(format.describeSource('raw')).toBe('from raw readings');
  });
});
