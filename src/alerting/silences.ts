import { ALERT_NAMES } from './rules.ts';

/**
 * Silences, as pure rules over plain data (times in epoch ms): which alerts a silence covers, when
 * it is in force, what a webhook is told about a silenced alert, and how hashwatt's silences are
 * mirrored in an Alertmanager. The SQL in src/storage/alerts.ts asks the same question of the
 * database (`coveringSilences`); tests/alerting-silences.test.ts holds the two to agreement.
 */

/** A silence: every alert of `alertname` (null: any) of `siteId` (null: any site) from start to end. */
export interface Silence {
  id: number;
  siteId: number | null;
  alertname: string | null;
  startsAtMs: number;
  /** The end it was created with. */
  endsAtMs: number;
  /** When it was expired early; null when it was not. */
  expiredAtMs: number | null;
}

/** What a silence is matched against: an alert of a site. */
export interface SilenceTarget {
  siteId: number;
  alertname: string;
}

export const SILENCE_STATES = ['active', 'expired'] as const;
export type SilenceState = (typeof SILENCE_STATES)[number];

/** The longest silence: one that outlives a maintenance window by months is a rule switched off. */
export const MAX_SILENCE_MS = 90 * 86_400_000;

/** When the silence stops holding: its end, or its early expiry when that came first. */
export function silenceEndMs(s: Silence): number {
  return s.expiredAtMs === null ? s.endsAtMs : Math.min(s.endsAtMs, s.expiredAtMs);
}

/** In force at `atMs`: from its start (included) to its end (excluded). */
export function isSilenceActive(s: Silence, atMs: number): boolean {
  return s.startsAtMs <= atMs && atMs < silenceEndMs(s);
}

export function silenceState(s: Silence, atMs: number): SilenceState {
  // Silences start when they are created, so one not yet in force has ended.
  return isSilenceActive(s, atMs) ? 'active' : 'expired';
}

/** True when the silence's scope takes in the alert, whenever it is in force. */
export function silenceCovers(s: Silence, alert: SilenceTarget): boolean {
  return (
    (s.siteId === null || s.siteId === alert.siteId) &&
    (s.alertname === null || s.alertname === alert.alertname)
  );
}

/** Ids of the silences holding the alert at `atMs`, ascending. */
export function silencesOf(alert: SilenceTarget, silences: readonly Silence[], atMs: number): number[] {
  return silences
    .filter((s) => isSilenceActive(s, atMs) && silenceCovers(s, alert))
    .map((s) => s.id)
    .sort((a, b) => a - b);
}

/** Is the alert silenced by any of `silences` at `atMs`? */
export function isSilenced(alert: SilenceTarget, silences: readonly Silence[], atMs: number): boolean {
  return silences.some((s) => isSilenceActive(s, atMs) && silenceCovers(s, alert));
}

/** What a webhook is told about one queued announcement now. */
export type AnnouncementFate = 'hold' | 'drop' | 'send';

/**
 * The webhook policy: nothing about a silenced alert is sent while the silence lasts (`hold`: the
 * announcement waits in the outbox). Once it no longer holds, the receiver is brought up to date:
 * an episode that was still silenced when it resolved, and whose firing this receiver was never
 * told, is dropped with its resolution (it began and ended out of earshot); everything else is
 * sent, in order (a firing that outlived the silence; the resolution of a firing it was told).
 */
export function announcementFate(announcement: {
  event: 'firing' | 'resolved';
  /** A silence holds the alert now. */
  silencedNow: boolean;
  /** The episode resolved, and a silence held it at that instant. */
  resolvedWhileSilenced: boolean;
  /** This receiver's firing announcement of the episode was dropped. */
  firingDropped: boolean;
}): AnnouncementFate {
  if (announcement.silencedNow) return 'hold';
  if (announcement.event === 'firing') return announcement.resolvedWhileSilenced ? 'drop' : 'send';
  return announcement.firingDropped ? 'drop' : 'send';
}

// --- Alertmanager ---------------------------------------------------------------------------

/** A matcher of Alertmanager's silences API (v2). */
export interface AlertmanagerMatcher {
  name: string;
  value: string;
  isRegex: boolean;
  isEqual: boolean;
}

/** An active hashwatt silence with what Alertmanager needs to match it: the site's name. */
export interface MirroredSilence extends Silence {
  uid: string;
  /** Null for a silence of every site. */
  siteName: string | null;
  comment: string;
  createdBy: string;
}

/** The body of `POST /api/v2/silences`. */
export interface AlertmanagerSilenceBody {
  matchers: AlertmanagerMatcher[];
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
}

/** A silence as `GET /api/v2/silences` lists it (the fields used here). */
export interface AlertmanagerSilence {
  id: string;
  status: { state: string };
  matchers: AlertmanagerMatcher[];
  endsAt: string;
  comment: string;
}

const MARKER = /\[hashwatt:([0-9a-f-]{36})\]$/;

/** The uid an Alertmanager silence's comment names, when hashwatt made it. */
export function mirroredUid(comment: string): string | undefined {
  return MARKER.exec(comment)?.[1];
}

function escapeRegex(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The Alertmanager form of a silence: labels `site` (by the site's name, as hashwatt's alerts
 * carry it) and `alertname`. Alertmanager refuses a silence without a matcher, and one of every
 * site and alert must still not silence alerts hashwatt does not raise: `alertname` then matches
 * hashwatt's six names. The comment ends with the silence's uid, which is how hashwatt finds its
 * own silences again (after a restart, a failover, or an Alertmanager that lost its state).
 */
export function alertmanagerSilenceBody(s: MirroredSilence, nowMs: number): AlertmanagerSilenceBody {
  const matchers: AlertmanagerMatcher[] = [];
  if (s.siteName !== null) matchers.push({ name: 'site', value: s.siteName, isRegex: false, isEqual: true });
  matchers.push(
    s.alertname === null
      ? { name: 'alertname', value: ALERT_NAMES.map(escapeRegex).join('|'), isRegex: true, isEqual: true }
      : { name: 'alertname', value: s.alertname, isRegex: false, isEqual: true },
  );
  return {
    matchers,
    startsAt: new Date(Math.max(s.startsAtMs, nowMs)).toISOString(),
    endsAt: new Date(silenceEndMs(s)).toISOString(),
    createdBy: `${s.createdBy} (hashwatt)`,
    comment: `${s.comment} [hashwatt:${s.uid}]`,
  };
}

const matcherKey = (ms: readonly AlertmanagerMatcher[]) =>
  ms
    .map((m) => `${m.name}${m.isEqual ? '=' : '!'}${m.isRegex ? '~' : ''}${m.value}`)
    .sort()
    .join(',');

/** What to do in one Alertmanager so that its hashwatt silences are exactly the active ones here. */
export interface SilenceSyncPlan {
  create: AlertmanagerSilenceBody[];
  /** Alertmanager silence ids to expire. */
  expire: string[];
}

/**
 * Reconciles one Alertmanager's silences with hashwatt's active ones: a hashwatt silence with no
 * live copy (same matchers, same end) is created; a live copy of a hashwatt silence that no longer
 * holds (expired early here) or no longer matches (the site was renamed) is expired. A copy whose
 * uid is not one of `knownUids` belongs to another hashwatt sharing the Alertmanager and is left
 * alone, as is every silence a person made there.
 */
export function planSilenceSync(
  desired: readonly MirroredSilence[],
  actual: readonly AlertmanagerSilence[],
  knownUids: ReadonlySet<string>,
  nowMs: number,
): SilenceSyncPlan {
  const wanted = new Map(desired.map((s) => [s.uid, alertmanagerSilenceBody(s, nowMs)]));
  const satisfied = new Set<string>();
  const expire: string[] = [];
  for (const am of actual) {
    if (am.status.state === 'expired') continue;
    const uid = mirroredUid(am.comment);
    if (uid === undefined) continue;
    const body = wanted.get(uid);
    const same =
      body !== undefined &&
      matcherKey(body.matchers) === matcherKey(am.matchers) &&
      Math.abs(Date.parse(body.endsAt) - Date.parse(am.endsAt)) < 1_000;
    if (same && !satisfied.has(uid)) satisfied.add(uid);
    else if (body !== undefined || knownUids.has(uid)) expire.push(am.id);
  }
  const create = [...wanted].filter(([uid]) => !satisfied.has(uid)).map(([, body]) => body);
  return { create, expire };
}
