/**
 * JSON as miner firmware writes it by hand (sprintf): the serialiser the fake miners use, with the
 * mistakes real replies carry switched on per miner. The agent must read all of them (or say it
 * cannot); these are the cases its repair is tested against.
 */

/** Mistakes firmware makes in well-formed replies. */
export const REPLY_QUIRKS = [
  /** A NUL after the reply (bmminer, cgminer, LuxOS). */
  'nul',
  /** A comma before the closing brace of each payload object: `"x":1,}` (bmminer). */
  'trailing_comma',
  /** No comma between the objects of a payload array: `}{` (bmminer's STATS). */
  'missing_comma',
  /** A comma opening a payload array: `[,{` (seen in pools replies). */
  'leading_comma',
  /** NaN and infinities as bare `nan` / `inf` (a percentage divided by zero). */
  'non_finite',
  /** A raw newline inside a string (a Description built from a log line). */
  'control_char',
] as const;
export type ReplyQuirk = (typeof REPLY_QUIRKS)[number];

function writeString(s: string, quirks: ReadonlySet<ReplyQuirk>): string {
  const json = JSON.stringify(s);
  return quirks.has('control_char') ? json.replaceAll('\\n', '\n') : json;
}

function writeNumber(n: number, quirks: ReadonlySet<ReplyQuirk>): string {
  if (Number.isFinite(n)) return String(n);
  if (!quirks.has('non_finite')) return 'null';
  return Number.isNaN(n) ? 'nan' : n > 0 ? 'inf' : '-inf';
}

/**
 * Serialises a reply. Quirks touch the payload arrays (top-level keys other than STATUS and id,
 * e.g. STATS, POOLS) and their objects, where real firmware goes wrong; the envelope stays clean.
 */
export function writeReply(reply: Record<string, unknown>, quirks: ReadonlySet<ReplyQuirk>): string {
  const value = (v: unknown, inPayload: boolean): string => {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'number') return writeNumber(v, quirks);
    if (typeof v === 'string') return writeString(v, quirks);
    if (typeof v === 'boolean') return String(v);
    if (Array.isArray(v)) return `[${v.map((x) => value(x, inPayload)).join(',')}]`;
    const members = Object.entries(v as Record<string, unknown>).map(
      ([k, x]) => `${JSON.stringify(k)}:${value(x, inPayload)}`,
    );
    return `{${members.join(',')}${inPayload && quirks.has('trailing_comma') && members.length > 0 ? ',' : ''}}`;
  };
  const top = Object.entries(reply).map(([key, raw]) => {
    // A Description built from a log line, raw newline and all.
    const v =
      key === 'STATUS' && quirks.has('control_char') && Array.isArray(raw)
        ? raw.map((s) => ({
            ...(s as object),
            Description: `${(s as { Description?: string }).Description ?? ''}\nbuilt 2023-07-10`,
          }))
        : raw;
    const payload = key !== 'STATUS' && key !== 'id' && Array.isArray(v);
    if (!payload) return `${JSON.stringify(key)}:${value(v, false)}`;
    const items = (v as unknown[]).map((x) => value(x, true));
    const joined =
      quirks.has('missing_comma') && items.length > 1 && (v as unknown[]).every((x) => typeof x === 'object')
        ? items.join('')
        : items.join(',');
    return `${JSON.stringify(key)}:[${quirks.has('leading_comma') && items.length > 0 ? ',' : ''}${joined}]`;
  });
  return `{${top.join(',')}}${quirks.has('nul') ? '\0' : ''}`;
}
