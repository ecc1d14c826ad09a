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
  /** Readings written in it (marks carry it so the job can size its transactions); 0 unknown. */
  readings?: number;
}

/**
 * The minutes a batch of readings touches, as runs of consecutive minutes per site; the batch as
 * its site-id and time columns (src/storage/reading-columns.ts).
 */
export function minuteMarks(siteIds: ArrayLike<number>, tsUs: ArrayLike<number>): SiteRange[] {
  // Per site, readings per minute.
  const minutes = new Map<number, Map<number, number>>();
  // Batches arrive grouped by site: look the site's map up only when the site changes.
  let lastSite = -1;
  let counts: Map<number, number> | undefined;
  for (let i = 0; i < siteIds.length; i++) {
    const siteId = siteIds[i]!;
    const minute = Math.floor(tsUs[i]! / 60_000_000);
    if (siteId !== lastSite) {
      counts = minutes.get(siteId);
      if (!counts) {
        counts = new Map();
        minutes.set(siteId, counts);
      }
      lastSite = siteId;
    }
    counts!.set(minute, (counts!.get(minute) ?? 0) + 1);
  }
  const marks: SiteRange[] = [];
  for (const [siteId, perMinute] of minutes) {
    const sorted = [...perMinute.keys()].sort((a, b) => a - b);
    let run: SiteRange | undefined;
    for (const m of sorted) {
      const n = perMinute.get(m)!;
      if (run && run.toMs === m * MINUTE_MS) {
        run.toMs += MINUTE_MS;
        run.readings! += n;
      } else {
        run = { siteId, fromMs: m * MINUTE_MS, toMs: (m + 1) * MINUTE_MS, readings: n };
        marks.push(run);
      }
    }
  }
  return marks;
}

/** Overlapping or touching ranges of a site merged; sorted by site, then start. */
export function mergeRanges(ranges: readonly SiteRange[]): SiteRange[] {
  const sorted = [...ranges].sort((a, b) => a.siteId - b.siteId || a.fromMs - b.fromMs);
  const out: SiteRange[] = [];
  for (const r of sorted) {
    const last = out.at(-1);
    if (last && last.siteId === r.siteId && r.fromMs <= last.toMs) {
      last.toMs = Math.max(last.toMs, r.toMs);
      last.readings = (last.readings ?? 0) + (r.readings ?? 0);
    } else out.push({ ...r, readings: r.readings ?? 0 });
  }
  return out;
}

export interface MinuteWork {
  /** Closed minutes to build now. */
  build: SiteRange[];
  /** What goes back on the log: minutes not yet closed, and what is past this transaction's budget. */
  keep: SiteRange[];
}

/** A range cut at `atMs`, its readings shared out by time (marks hold no finer count). */
function cut(r: SiteRange, atMs: number): [SiteRange, SiteRange] {
  const share = (r.readings ?? 0) * ((atMs - r.fromMs) / (r.toMs - r.fromMs));
  const before = Math.round(share);
  return [
    { siteId: r.siteId, fromMs: r.fromMs, toMs: atMs, readings: before },
    { siteId: r.siteId, fromMs: atMs, toMs: r.toMs, readings: (r.readings ?? 0) - before },
  ];
}

/**
 * Splits claimed marks into this transaction's work and the rest: only minutes before `closedMs`
 * are built, the oldest first across sites, up to about `budgetReadings` raw readings (a site
 * minute may hold ten readings or two million: the marks' counts size the work, and at least one
 * minute is always built), no range longer than `maxRangeMinutes` (a bigger statement costs more
 * per reading: its sort outgrows work_mem).
 */
export function planMinutes(
  claimed: readonly SiteRange[],
  closedMs: number,
  budgetReadings: number,
  maxRangeMinutes = 10,
): MinuteWork {
  const keep: SiteRange[] = [];
  const candidates: SiteRange[] = [];
  for (const merged of mergeRanges(claimed)) {
    let r = merged;
    if (r.toMs > closedMs) {
      if (r.fromMs >= closedMs) {
        keep.push(r);
        continue;
      }
      const [closed, open] = cut(r, closedMs);
      keep.push(open);
      r = closed;
    }
    while (r.toMs - r.fromMs > maxRangeMinutes * MINUTE_MS) {
      const [head, tail] = cut(r, r.fromMs + maxRangeMinutes * MINUTE_MS);
      candidates.push(head);
      r = tail;
    }
    candidates.push(r);
  }
  candidates.sort((a, b) => a.fromMs - b.fromMs || a.siteId - b.siteId);
  const build: SiteRange[] = [];
  let budget = budgetReadings;
  for (const c of candidates) {
    const readings = c.readings ?? 0;
    const minutes = (c.toMs - c.fromMs) / MINUTE_MS;
    // Whole minutes of it that fit the budget left; the first minute of a transaction always does.
    const fit =
      readings <= budget
        ? minutes
        : Math.max(build.length === 0 ? 1 : 0, Math.floor(budget / Math.max(readings / minutes, 1)));
    if (fit >= minutes) {
      build.push(c);
      budget -= readings;
    } else if (fit === 0) {
      keep.push(c);
      budget = 0;
    } else {
      const [head, tail] = cut(c, c.fromMs + fit * MINUTE_MS);
      build.push(head);
      keep.push(tail);
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
