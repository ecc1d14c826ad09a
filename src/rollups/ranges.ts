/**
 * The rollup job's bookkeeping, pure: which minutes a write marks, how claimed marks merge into
 * runs, how much of them one transaction builds, and which hours are ready to build.
 */

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;

/** Whole buckets [fromMs, toMs) of one site. */
export interface SiteRange {
  siteId: number;
  fromMs: number;
  toMs: number;
}

/** The minutes a batch of readings touches, as runs of consecutive minutes per site. */
export function minuteMarks(records: ArrayLike<{ site_id: number; ts_us: number }>): SiteRange[] {
  const minutes = new Map<number, Set<number>>();
  let lastSite = -1;
  let lastMinute = Number.NaN;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const minute = Math.floor(r.ts_us / 60_000_000);
    // Batches arrive sorted or near it: skip the map for the common repeat.
    if (r.site_id === lastSite && minute === lastMinute) continue;
    lastSite = r.site_id;
    lastMinute = minute;
    let set = minutes.get(r.site_id);
    if (!set) {
      set = new Set();
      minutes.set(r.site_id, set);
    }
    set.add(minute);
  }
  const marks: SiteRange[] = [];
  for (const [siteId, set] of minutes) {
    for (const range of runs([...set].sort((a, b) => a - b)))
      marks.push({ siteId, fromMs: range[0] * MINUTE_MS, toMs: (range[1] + 1) * MINUTE_MS });
  }
  return marks;
}

/** Consecutive integers as [first, last] pairs. */
function runs(sorted: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const n of sorted) {
    const last = out.at(-1);
    if (last && n <= last[1] + 1) last[1] = Math.max(last[1], n);
    else out.push([n, n]);
  }
  return out;
}

/** Overlapping or touching ranges of a site merged; sorted by site, then start. */
export function mergeRanges(ranges: readonly SiteRange[]): SiteRange[] {
  const sorted = [...ranges].sort((a, b) => a.siteId - b.siteId || a.fromMs - b.fromMs);
  const out: SiteRange[] = [];
  for (const r of sorted) {
    const last = out.at(-1);
    if (last && last.siteId === r.siteId && r.fromMs <= last.toMs) last.toMs = Math.max(last.toMs, r.toMs);
    else out.push({ ...r });
  }
  return out;
}

export interface MinuteWork {
  /** Closed minutes to build now. */
  build: SiteRange[];
  /** What goes back on the log: minutes not yet closed, and what is past this transaction's budget. */
  keep: SiteRange[];
}

/**
 * Splits claimed marks into this transaction's work and the rest: only minutes before `closedMs`
 * are built, the oldest first across sites, at most `budgetSiteMinutes` of them, no range longer
 * than `maxRangeMinutes` (a bigger statement costs more per reading: its sort outgrows work_mem).
 */
export function planMinutes(
  claimed: readonly SiteRange[],
  closedMs: number,
  budgetSiteMinutes: number,
  maxRangeMinutes = 10,
): MinuteWork {
  const keep: SiteRange[] = [];
  const candidates: SiteRange[] = [];
  for (const r of mergeRanges(claimed)) {
    if (r.toMs > closedMs)
      keep.push({ siteId: r.siteId, fromMs: Math.max(r.fromMs, closedMs), toMs: r.toMs });
    if (r.fromMs < closedMs) {
      const end = Math.min(r.toMs, closedMs);
      for (let t = r.fromMs; t < end; t += maxRangeMinutes * MINUTE_MS)
        candidates.push({
          siteId: r.siteId,
          fromMs: t,
          toMs: Math.min(end, t + maxRangeMinutes * MINUTE_MS),
        });
    }
  }
  candidates.sort((a, b) => a.fromMs - b.fromMs || a.siteId - b.siteId);
  const build: SiteRange[] = [];
  let budget = budgetSiteMinutes;
  for (const c of candidates) {
    const minutes = (c.toMs - c.fromMs) / MINUTE_MS;
    if (budget <= 0) keep.push(c);
    else if (minutes <= budget) {
      build.push(c);
      budget -= minutes;
    } else {
      const split = c.fromMs + budget * MINUTE_MS;
      build.push({ siteId: c.siteId, fromMs: c.fromMs, toMs: split });
      keep.push({ siteId: c.siteId, fromMs: split, toMs: c.toMs });
      budget = 0;
    }
  }
  return { build: mergeRanges(build), keep: mergeRanges(keep) };
}

/** The hours (as one-hour ranges) that some range touches, one per site and hour. */
export function hoursOf(ranges: readonly SiteRange[]): SiteRange[] {
  const seen = new Set<string>();
  const out: SiteRange[] = [];
  for (const r of ranges) {
    for (let h = Math.floor(r.fromMs / HOUR_MS) * HOUR_MS; h < r.toMs; h += HOUR_MS) {
      const key = `${r.siteId}:${h}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ siteId: r.siteId, fromMs: h, toMs: h + HOUR_MS });
    }
  }
  return out;
}

/**
 * Which hours to build now: closed ones (ending by `closedMs`) none of whose minutes still wait on
 * the log; the rest wait for their close or their minutes.
 */
export function planHours(
  hours: readonly SiteRange[],
  closedMs: number,
  pendingMinutes: readonly SiteRange[],
): { build: SiteRange[]; wait: SiteRange[] } {
  const build: SiteRange[] = [];
  const wait: SiteRange[] = [];
  for (const h of hoursOf(hours)) {
    const pending = pendingMinutes.some(
      (m) => m.siteId === h.siteId && m.fromMs < h.toMs && m.toMs > h.fromMs,
    );
    (h.toMs <= closedMs && !pending ? build : wait).push(h);
  }
  return { build, wait };
}
