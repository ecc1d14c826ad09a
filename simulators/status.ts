import type { DeliveryCounters } from '../src/agent/delivery/counters.ts';
import type { FleetCounters, FleetStatus } from './fleet.ts';

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function clock(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${String(Math.floor(s / 3600)).padStart(2, '0')}:${String(Math.floor(s / 60) % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** One line for the live status: totals over all sites and the offered rate. */
export function formatStatusLine(status: FleetStatus): string {
  const t = status.total;
  const rate = `${int.format(status.offeredPerS)}/s offered${status.targetPerS !== null ? ` (target ${int.format(status.targetPerS)}/s)` : ''}`;
  const line = [
    clock(status.elapsedMs),
    `gen ${int.format(t.generated)}`,
    `sent ${int.format(t.sent)}`,
    `ack ${int.format(t.acknowledged)}`,
    `dup ${int.format(t.duplicates)}`,
    `rej ${int.format(t.rejected)}`,
    `retry ${int.format(t.retried)}`,
    `buf ${int.format(t.buffered)}`,
    `drop ${int.format(t.dropped)}`,
    rate,
  ].join('  ');
  const errors = Object.entries(status.errors);
  return errors.length > 0 ? `${line}  | ${errors[0]![0]}: ${errors[0]![1]}` : line;
}

const COLUMNS: (keyof DeliveryCounters)[] = [
  'generated',
  'sent',
  'acknowledged',
  'duplicates',
  'rejected',
  'retried',
  'buffered',
  'dropped',
  'failures',
];

/** The final summary: one row per site and a total, plus the achieved rates. */
export function formatSummary(counters: FleetCounters, elapsedMs: number, targetPerS: number | null): string {
  const rows: string[][] = [['site', ...COLUMNS]];
  for (const [site, c] of Object.entries(counters.sites))
    rows.push([site, ...COLUMNS.map((k) => int.format(c[k]))]);
  rows.push(['total', ...COLUMNS.map((k) => int.format(counters.total[k]))]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) =>
    r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '),
  );
  const seconds = elapsedMs / 1000;
  const offered = seconds > 0 ? counters.total.generated / seconds : 0;
  const acked = seconds > 0 ? counters.total.acknowledged / seconds : 0;
  table.push(
    '',
    `ran ${seconds.toFixed(1)} s; offered ${int.format(offered)} readings/s${targetPerS !== null ? ` (target ${int.format(targetPerS)}/s)` : ''}; acknowledged ${int.format(acked)} readings/s`,
  );
  return table.join('\n');
}
