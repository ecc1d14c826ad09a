/**
 * What the console offers on an alert or a silence, by token (src/console/browser/alert-actions.js):
 * the pure part, as format.test.ts does for the formats. The module is browser code loaded by URL;
 * its shape is declared here. The end-to-end test (tests/e2e/console.test.ts) drives the buttons.
 */
import { describe, expect, it } from 'vitest';
import { ALERT_NAMES } from '../alerting/rules.ts';

interface Alert {
  id: number;
  alertname: string;
  state: 'pending' | 'firing' | 'resolved';
  site: { id: number; name: string };
  acknowledgement: { by: string; at: string; comment: string | null } | null;
  silenced_by: number[];
}
interface Silence {
  id: number;
  state: 'active' | 'expired';
  site: { id: number; name: string } | null;
  effective_ends_at: string;
}
interface Permissions {
  actOnAlerts: boolean;
  silenceEverySite: boolean;
}
interface AlertActionsModule {
  ALERT_NAMES: readonly string[];
  alertActionsHtml(a: Alert, p: Permissions): string;
  handlingHtml(a: Alert, silences: Map<number, Silence>, nowMs: number): string;
  mayExpire(s: Silence, p: Permissions): boolean;
  formatIn(thenMs: number, nowMs: number): string;
}

const actions = (await import(
  new URL('./browser/alert-actions.js', import.meta.url).href
)) as AlertActionsModule;

const ADMIN: Permissions = { actOnAlerts: true, silenceEverySite: true };
const SITE_OPERATOR: Permissions = { actOnAlerts: true, silenceEverySite: false };
const VIEWER: Permissions = { actOnAlerts: false, silenceEverySite: false };
const NOW = Date.parse('2026-12-02T10:00:00Z');

const alert = (over: Partial<Alert> = {}): Alert => ({
  id: 7,
  alertname: 'SiteDown',
  state: 'firing',
  site: { id: 3, name: 'alpha' },
  acknowledgement: null,
  silenced_by: [],
  ...over,
});

/** The actions a row's markup offers, in order. */
const offered = (html: string) => [...html.matchAll(/data-action="([\w-]+)"/g)].map((m) => m[1]);

describe('the actions on an alert', () => {
  it('acknowledge and silence a firing alert; take back an acknowledged one', () => {
    expect(offered(actions.alertActionsHtml(alert(), ADMIN))).toEqual(['ack', 'silence']);
    const acked = alert({
      acknowledgement: { by: 'night shift', at: '2026-12-02T09:00:00Z', comment: null },
    });
    expect(offered(actions.alertActionsHtml(acked, SITE_OPERATOR))).toEqual(['unack', 'silence']);
  });

  it('only silence a pending one (the API acknowledges firing alerts only), nothing on a resolved one', () => {
    expect(offered(actions.alertActionsHtml(alert({ state: 'pending' }), ADMIN))).toEqual(['silence']);
    expect(offered(actions.alertActionsHtml(alert({ state: 'resolved' }), ADMIN))).toEqual([]);
  });

  it('offers a viewer nothing', () => {
    expect(offered(actions.alertActionsHtml(alert(), VIEWER))).toEqual([]);
  });

  it('names the alert and site of each button for screen readers, escaped', () => {
    const html = actions.alertActionsHtml(alert({ site: { id: 3, name: 'a"<b>' } }), ADMIN);
    expect(html).toContain('aria-label="Acknowledge SiteDown at a&quot;&lt;b&gt;"');
    expect(html).not.toContain('<b>');
  });

  it('lets an operator of listed sites expire only the silences of a site', () => {
    const ofSite: Silence = { id: 1, state: 'active', site: { id: 3, name: 'alpha' }, effective_ends_at: '' };
    const ofEvery: Silence = { ...ofSite, id: 2, site: null };
    expect(actions.mayExpire(ofSite, SITE_OPERATOR)).toBe(true);
    expect(actions.mayExpire(ofEvery, SITE_OPERATOR)).toBe(false);
    expect(actions.mayExpire(ofEvery, ADMIN)).toBe(true);
    expect(actions.mayExpire({ ...ofSite, state: 'expired' }, ADMIN)).toBe(false);
    expect(actions.mayExpire(ofSite, VIEWER)).toBe(false);
  });
});

describe('how an alert is handled, shown to every token', () => {
  it('says who acknowledged, when and why, with the comment escaped', () => {
    const html = actions.handlingHtml(
      alert({
        acknowledgement: { by: 'ops', at: '2026-12-02T09:58:00Z', comment: '<img src=x onerror=alert(1)>' },
      }),
      new Map(),
      NOW,
    );
    expect(html).toContain('acknowledged');
    expect(html).toContain('<strong data-ack-by>ops</strong>');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).not.toContain('<img');
  });

  it('marks a silenced alert with its silences and when the last of them ends', () => {
    const silences = new Map<number, Silence>([
      [4, { id: 4, state: 'active', site: null, effective_ends_at: '2026-12-02T11:00:00Z' }],
      [5, { id: 5, state: 'active', site: null, effective_ends_at: '2026-12-02T14:00:00Z' }],
    ]);
    const html = actions.handlingHtml(alert({ silenced_by: [4, 5] }), silences, NOW);
    expect(html).toContain('data-silenced="4,5"');
    expect(html).toContain('#4, #5');
    expect(html).toContain('until');
    expect(html).not.toContain('not acknowledged');
  });

  it('says a firing alert nobody acknowledged is not', () => {
    expect(actions.handlingHtml(alert(), new Map(), NOW)).toContain('not acknowledged');
    expect(actions.handlingHtml(alert({ state: 'pending' }), new Map(), NOW)).not.toContain('acknowledged');
  });

  it('counts down to an end, and says when it has passed', () => {
    expect(actions.formatIn(NOW + 4 * 3_600_000, NOW)).toBe('in 4 h');
    expect(actions.formatIn(NOW - 1, NOW)).toBe('ended');
  });

  it('offers the engine’s alert names to silence, the only ones the API takes', () => {
    expect([...actions.ALERT_NAMES]).toEqual([...ALERT_NAMES]);
  });
});
