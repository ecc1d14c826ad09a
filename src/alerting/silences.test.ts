import { describe, expect, it } from 'vitest';
import { withAcknowledgement } from './notify.ts';
import { ALERT_NAMES } from './rules.ts';
import {
  type AlertmanagerSilence,
  alertmanagerSilenceBody,
  announcementFate,
  isSilenceActive,
  isSilenced,
  type MirroredSilence,
  mirroredUid,
  planSilenceSync,
  type Silence,
  silenceEndMs,
  silenceState,
  silencesOf,
} from './silences.ts';

const T = 1_800_000_000_000;
const MIN = 60_000;

const silence = (over: Partial<Silence> = {}): Silence => ({
  id: 1,
  siteId: 3,
  alertname: 'SiteDown',
  startsAtMs: T,
  endsAtMs: T + 60 * MIN,
  expiredAtMs: null,
  ...over,
});

describe('a silence in time', () => {
  it('holds from its start (included) to its end (excluded), or to an early expiry', () => {
    const s = silence();
    expect(
      [T - 1, T, T + 59 * MIN, T + 60 * MIN - 1, T + 60 * MIN].map((t) => isSilenceActive(s, t)),
    ).toEqual([false, true, true, true, false]);
    const early = silence({ expiredAtMs: T + 10 * MIN });
    expect(silenceEndMs(early)).toBe(T + 10 * MIN);
    expect(isSilenceActive(early, T + 10 * MIN - 1)).toBe(true);
    expect(isSilenceActive(early, T + 10 * MIN)).toBe(false);
    expect(silenceState(early, T + 10 * MIN)).toBe('expired');
    // An expiry recorded after the planned end changes nothing.
    expect(silenceEndMs(silence({ expiredAtMs: T + 90 * MIN }))).toBe(T + 60 * MIN);
  });
});

describe('is an alert silenced by a set of silences at an instant', () => {
  const alert = { siteId: 3, alertname: 'SiteDown' };
  const cases: [string, Silence[], number, boolean][] = [
    ['no silences', [], T, false],
    ['its site and alert, in force', [silence()], T + MIN, true],
    ['its site and alert, not yet', [silence()], T - 1, false],
    ['its site and alert, ended', [silence()], T + 61 * MIN, false],
    ['its site and alert, expired early', [silence({ expiredAtMs: T + MIN })], T + 2 * MIN, false],
    ['another site', [silence({ siteId: 4 })], T + MIN, false],
    ['another alert', [silence({ alertname: 'PowerSurplus' })], T + MIN, false],
    ['every site, its alert', [silence({ siteId: null })], T + MIN, true],
    ['its site, every alert', [silence({ alertname: null })], T + MIN, true],
    ['every site, every alert', [silence({ siteId: null, alertname: null })], T + MIN, true],
    ['every site, another alert', [silence({ siteId: null, alertname: 'GpuIdle' })], T + MIN, false],
    [
      'one of several, the others elsewhere or over',
      [
        silence({ id: 1, siteId: 4 }),
        silence({ id: 2, endsAtMs: T + 1 }),
        silence({ id: 3, alertname: null }),
      ],
      T + MIN,
      true,
    ],
  ];
  it.each(cases)('%s', (_, silences, at, expected) => {
    expect(isSilenced(alert, silences, at)).toBe(expected);
    expect(silencesOf(alert, silences, at).length > 0).toBe(expected);
  });

  it('names every silence that holds it, in id order', () => {
    const set = [silence({ id: 9, alertname: null }), silence({ id: 2 }), silence({ id: 5, siteId: 8 })];
    expect(silencesOf(alert, set, T + MIN)).toEqual([2, 9]);
  });
});

describe('what a webhook is told (announcementFate)', () => {
  const fate = (over: Partial<Parameters<typeof announcementFate>[0]>) =>
    announcementFate({
      event: 'firing',
      silencedNow: false,
      resolvedWhileSilenced: false,
      firingDropped: false,
      ...over,
    });
  it('holds everything while the silence lasts', () => {
    expect(fate({ silencedNow: true })).toBe('hold');
    expect(fate({ event: 'resolved', silencedNow: true })).toBe('hold');
  });
  it('sends a firing that outlived the silence, and the resolution of a firing the receiver was told', () => {
    expect(fate({})).toBe('send');
    expect(fate({ event: 'resolved' })).toBe('send');
    // Told of the firing before the silence, resolved during it: the receiver must hear it closed.
    expect(fate({ event: 'resolved', resolvedWhileSilenced: true })).toBe('send');
  });
  it('drops an episode that was silenced when it resolved and whose firing the receiver never heard', () => {
    expect(fate({ resolvedWhileSilenced: true })).toBe('drop');
    expect(fate({ event: 'resolved', resolvedWhileSilenced: true, firingDropped: true })).toBe('drop');
  });
});

const mirrored = (over: Partial<MirroredSilence> = {}): MirroredSilence => ({
  ...silence(),
  uid: '0b6f3e1c-6a38-4f5e-9d8c-3c1e2f4a5b6c',
  siteName: 'alpha',
  comment: 'hall B maintenance',
  createdBy: 'ops-alice',
  ...over,
});

describe('the Alertmanager form of a silence', () => {
  it('matches site and alertname, ends when the silence does, and carries its uid', () => {
    const body = alertmanagerSilenceBody(mirrored(), T + MIN);
    expect(body).toEqual({
      matchers: [
        { name: 'site', value: 'alpha', isRegex: false, isEqual: true },
        { name: 'alertname', value: 'SiteDown', isRegex: false, isEqual: true },
      ],
      startsAt: new Date(T + MIN).toISOString(),
      endsAt: new Date(T + 60 * MIN).toISOString(),
      createdBy: 'ops-alice (hashwatt)',
      comment: 'hall B maintenance [hashwatt:0b6f3e1c-6a38-4f5e-9d8c-3c1e2f4a5b6c]',
    });
    expect(mirroredUid(body.comment)).toBe('0b6f3e1c-6a38-4f5e-9d8c-3c1e2f4a5b6c');
    expect(mirroredUid('made by hand')).toBeUndefined();
  });

  it("of every site and every alert, matches only hashwatt's alert names", () => {
    const body = alertmanagerSilenceBody(mirrored({ siteId: null, siteName: null, alertname: null }), T);
    expect(body.matchers).toHaveLength(1);
    const [m] = body.matchers;
    expect(m).toMatchObject({ name: 'alertname', isRegex: true, isEqual: true });
    const re = new RegExp(`^(?:${m!.value})$`);
    for (const name of ALERT_NAMES) expect(re.test(name)).toBe(true);
    expect(re.test('HashwattDown')).toBe(false);
  });
});

describe('mirroring silences in an Alertmanager (planSilenceSync)', () => {
  const uidA = '0b6f3e1c-6a38-4f5e-9d8c-3c1e2f4a5b6c';
  const uidB = '1c7a4f2d-7b49-4a6f-8e9d-4d2f3a5b6c7d';
  const copy = (
    s: MirroredSilence,
    id: string,
    over: Partial<AlertmanagerSilence> = {},
  ): AlertmanagerSilence => {
    const body = alertmanagerSilenceBody(s, T);
    return {
      id,
      status: { state: 'active' },
      matchers: body.matchers,
      endsAt: body.endsAt,
      comment: body.comment,
      ...over,
    };
  };

  it('creates what is missing and leaves what is there', () => {
    const a = mirrored({ uid: uidA });
    const b = mirrored({ id: 2, uid: uidB, alertname: null });
    const plan = planSilenceSync([a, b], [copy(a, 'am-1')], new Set([uidA, uidB]), T);
    expect(plan.expire).toEqual([]);
    expect(plan.create.map((c) => mirroredUid(c.comment))).toEqual([uidB]);
  });

  it('expires the copy of a silence that no longer holds, and leaves others alone', () => {
    const a = mirrored({ uid: uidA });
    const foreign = copy(mirrored({ uid: uidB }), 'am-2');
    const byHand: AlertmanagerSilence = { ...copy(a, 'am-3'), comment: 'by hand' };
    const expiredThere = copy(a, 'am-4', { status: { state: 'expired' } });
    // uidB is not this database's: another hashwatt sharing the Alertmanager made it.
    const plan = planSilenceSync([], [copy(a, 'am-1'), foreign, byHand, expiredThere], new Set([uidA]), T);
    expect(plan).toEqual({ create: [], expire: ['am-1'] });
  });

  it('replaces a copy that no longer matches (a renamed site) and expires duplicates', () => {
    const a = mirrored({ uid: uidA });
    const renamed = mirrored({ uid: uidA, siteName: 'alpha-2' });
    const plan = planSilenceSync([renamed], [copy(a, 'am-1')], new Set([uidA]), T);
    expect(plan.expire).toEqual(['am-1']);
    expect(plan.create[0]!.matchers[0]).toMatchObject({ name: 'site', value: 'alpha-2' });
    const twice = planSilenceSync([a], [copy(a, 'am-1'), copy(a, 'am-2')], new Set([uidA]), T);
    expect(twice).toEqual({ create: [], expire: ['am-2'] });
  });
});

describe('acknowledgements in Alertmanager annotations', () => {
  it('adds who, when and why, and leaves an unacknowledged alert as it was', () => {
    const annotations = { summary: 'Site alpha is down' };
    expect(withAcknowledgement(annotations, null)).toBe(annotations);
    expect(
      withAcknowledgement(annotations, { by: 'ops-alice', byTokenId: 4, atMs: T, comment: 'on it' }),
    ).toEqual({
      summary: 'Site alpha is down',
      acknowledged_by: 'ops-alice',
      acknowledged_at: new Date(T).toISOString(),
      acknowledgement_comment: 'on it',
    });
    expect(
      withAcknowledgement(annotations, { by: 'admin', byTokenId: null, atMs: T, comment: null }),
    ).not.toHaveProperty('acknowledgement_comment');
  });
});
