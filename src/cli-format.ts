// Pure pieces of the `hashwatt` command (src/cli.ts): how it names sites and draws tables.

/** How a command-line argument names a site: a canonical id (as the API's `site=` parameter), else a name. */
export function parseSiteRef(arg: string): { id: number } | { name: string } {
  return /^[1-9]\d{0,8}$/.test(arg) ? { id: Number(arg) } : { name: arg };
}

/** Columns padded to their widest cell, two spaces apart; numbers right-aligned. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  // A column is numeric when every cell is a number or the "–" of no value, and one is a number.
  const isNumber = (cell: string) => /^-?[\d,.]+$/.test(cell);
  const numeric = header.map(
    (_, i) =>
      rows.some((r) => isNumber(r[i] ?? '')) && rows.every((r) => isNumber(r[i] ?? '') || r[i] === '–'),
  );
  return all
    .map((r) =>
      r
        .map((cell, i) => (numeric[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const number = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

/** The fields of a site `sites list` shows. */
export interface SiteSummary {
  id: number;
  name: string;
  kind: string;
  capacity_kw: number;
  region: string | null;
  timezone: string | null;
}

/** `sites list` as a table, one site a line. */
export function formatSites(sites: readonly SiteSummary[]): string {
  if (sites.length === 0)
    return 'no sites yet: hashwatt sites create --name NAME --kind mining --capacity-kw KW';
  return formatTable(
    ['id', 'name', 'kind', 'capacity_kw', 'region', 'timezone'],
    sites.map((s) => [
      String(s.id),
      s.name,
      s.kind,
      number.format(s.capacity_kw),
      s.region ?? '–',
      s.timezone ?? '–',
    ]),
  );
}

/** The fields of an alert `alerts` shows. */
export interface AlertSummary {
  alertname: string;
  severity: string;
  state: string;
  site: { id: number; name: string };
  value: number | null;
  threshold: number | null;
  started_at: string;
  fired_at: string | null;
  resolved_at: string | null;
  summary: string | null;
  /** Absent from services older than acknowledgements. */
  id?: number;
  acknowledgement?: { by: string; at: string; comment: string | null } | null;
  silenced_by?: number[];
}

/**
 * `alerts` as a table; "since" is when it fired (or started pending, or resolved); "id" is what
 * `alerts ack` takes; "acked by" names who acknowledged it, "silenced" says a silence holds it.
 */
export function formatAlerts(alerts: readonly AlertSummary[], state: string): string {
  if (alerts.length === 0) return `no ${state === 'all' ? '' : `${state} `}alerts`;
  return formatTable(
    [
      'site',
      'alert',
      'severity',
      'state',
      'since',
      'id',
      'value',
      'threshold',
      'acked by',
      'silenced',
      'summary',
    ],
    alerts.map((a) => [
      a.site.name,
      a.alertname,
      a.severity,
      a.state,
      (a.state === 'resolved' ? a.resolved_at : a.state === 'firing' ? a.fired_at : a.started_at) ??
        a.started_at,
      a.id === undefined ? '–' : String(a.id),
      a.value === null ? '–' : number.format(a.value),
      a.threshold === null ? '–' : number.format(a.threshold),
      a.acknowledgement?.by ?? '–',
      a.silenced_by && a.silenced_by.length > 0 ? a.silenced_by.map((id) => `#${id}`).join(',') : '–',
      a.summary ?? '',
    ]),
  );
}

/** The fields of a silence `silences list` shows. */
export interface SilenceSummary {
  id: number;
  state: string;
  site: { id: number; name: string } | null;
  alertname: string | null;
  effective_ends_at: string;
  created_by: string;
  expired_by: string | null;
  comment: string;
}

/** `silences list` as a table. */
export function formatSilences(silences: readonly SilenceSummary[], state: string): string {
  if (silences.length === 0) return `no ${state === 'all' ? '' : `${state} `}silences`;
  return formatTable(
    ['id', 'state', 'site', 'alert', 'until', 'by', 'comment'],
    silences.map((s) => [
      String(s.id),
      s.state,
      s.site?.name ?? 'every site',
      s.alertname ?? 'every alert',
      s.effective_ends_at,
      s.expired_by ? `${s.created_by} (expired by ${s.expired_by})` : s.created_by,
      s.comment,
    ]),
  );
}

const DURATION_UNITS_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * `--until`: a duration from now (`90s`, `30m`, `2h`, `1d`) or an instant as the API takes it
 * (RFC 3339 with its offset, passed on for the service to judge). Undefined when it is neither.
 */
export function parseUntil(arg: string, nowMs: number): string | undefined {
  const duration = /^([1-9]\d{0,5})([smhd])$/.exec(arg);
  if (duration) return new Date(nowMs + Number(duration[1]) * DURATION_UNITS_MS[duration[2]!]!).toISOString();
  return /^\d{4}-\d{2}-\d{2}T/.test(arg) ? arg : undefined;
}
