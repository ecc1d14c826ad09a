// @ts-check
/**
 * The alerts page, three views under one heading: what is open (firing and pending), what has
 * resolved (the history), and the silences. Every token reads the alerts and silences of its
 * sites (`GET /api/v1/alerts`, `GET /api/v1/silences`, docs/alerting.md) and sees who
 * acknowledged an alert and which silence holds it; the admin and operator tokens also get the
 * buttons to acknowledge, silence and expire (alert-actions.js).
 */
import {
  alertActionsHtml,
  formatIn,
  handlingHtml,
  mayExpire,
  mountAlertActions,
  redrawKeepingFocus,
} from './alert-actions.js';
import { apiGet, isAbort } from './api.js';
import { $, esc, every } from './dom.js';
import { formatAgo, formatAlertValue, formatCount, formatInstant, NONE } from './format.js';

/** @typedef {import('./api-types').Alert} Alert */
/** @typedef {import('./api-types').Silence} Silence */
/** @typedef {import('./app.js').AlertsView} AlertsView */

const REFRESH_MS = 10_000;
/** How many resolved alerts and silences the history views ask for (the API's limit is 1,000). */
const HISTORY_LIMIT = 200;

/** Annotations beyond summary and description, as a term list. */
function annotationList(/** @type {Record<string, string>} */ annotations) {
  const rest = Object.entries(annotations).filter(([k]) => k !== 'summary' && k !== 'description');
  if (rest.length === 0) return '';
  return `<details><summary>Annotations (${rest.length})</summary><dl class="annotations">${rest
    .map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`)
    .join('')}</dl></details>`;
}

/**
 * One alert's row; `withSite` false on a site's own page, `actions` null for a token that may not act.
 * @param {Alert} a
 * @param {{ nowMs: number, withSite: boolean, actions: string | null, silences: Map<number, Silence> }} options
 */
export function alertRowHtml(a, { nowMs, withSite, actions, silences }) {
  const since = a.state === 'firing' ? a.fired_at : a.state === 'resolved' ? a.resolved_at : a.started_at;
  const sinceMs = since ? Date.parse(since) : null;
  return `<tr data-alert-id="${a.id}" data-alertname="${esc(a.alertname)}" data-state="${esc(a.state)}">
<td data-label="Severity"><span class="chip severity-${esc(a.severity)}">${esc(a.severity)}</span></td>
<th scope="row" data-label="Alert">${esc(a.alertname)}</th>
${withSite ? `<td data-label="Site"><a href="#/sites/${a.site.id}">${esc(a.site.name)}</a> <span class="kind kind-${esc(a.site.kind)}">${esc(a.site.kind)}</span></td>` : ''}
<td data-label="State"><span class="state state-alert-${esc(a.state)}">${esc(a.state)}</span></td>
<td data-label="Since">${sinceMs === null ? NONE : `${esc(formatInstant(sinceMs, nowMs))}<span class="sub">${esc(formatAgo(sinceMs, nowMs))}</span>`}${a.state !== 'pending' ? `<span class="sub">pending from ${esc(formatInstant(a.started_at, nowMs))}</span>` : ''}</td>
<td data-label="Value / threshold" class="num-cell"><span data-field="value">${esc(formatAlertValue(a.alertname, a.value))}</span> / <span data-field="threshold">${esc(formatAlertValue(a.alertname, a.threshold))}</span></td>
<td data-label="Details" class="details-cell">${a.summary ? `<p class="summary">${esc(a.summary)}</p>` : ''}${a.description ? `<p class="description">${esc(a.description)}</p>` : ''}${annotationList(a.annotations)}</td>
<td data-label="Handling" class="handling-cell">${handlingHtml(a, silences, nowMs)}</td>
${actions === null ? '' : `<td data-label="Actions">${actions}</td>`}
</tr>`;
}

/** The table's head, matching alertRowHtml's cells. */
export function alertHeadHtml(/** @type {{ withSite: boolean, withActions: boolean }} */ o) {
  const cols = [
    'Severity',
    'Alert',
    ...(o.withSite ? ['Site'] : []),
    'State',
    'Since',
    'Value / threshold',
    'Details',
    'Handling',
  ];
  if (o.withActions) cols.push('Actions');
  return `<tr>${cols.map((c) => `<th scope="col">${c}</th>`).join('')}</tr>`;
}

/** Firing first, then critical before warning, then newest. */
function byUrgency(/** @type {Alert} */ a, /** @type {Alert} */ b) {
  const state = (/** @type {Alert} */ x) => (x.state === 'firing' ? 0 : 1);
  const severity = (/** @type {Alert} */ x) => (x.severity === 'critical' ? 0 : 1);
  return state(a) - state(b) || severity(a) - severity(b) || b.started_at.localeCompare(a.started_at);
}

/** Most recently resolved first. */
function byResolved(/** @type {Alert} */ a, /** @type {Alert} */ b) {
  return (b.resolved_at ?? '').localeCompare(a.resolved_at ?? '') || b.id - a.id;
}

/** One silence's row. */
function silenceRowHtml(
  /** @type {Silence} */ s,
  /** @type {import('./app.js').Permissions} */ permissions,
  /** @type {number} */ nowMs,
) {
  const endMs = Date.parse(s.effective_ends_at);
  const ended =
    s.state === 'active'
      ? `${esc(formatInstant(endMs, nowMs))}<span class="sub">${esc(formatIn(endMs, nowMs))}</span>`
      : s.expired_at !== null && Date.parse(s.expired_at) < Date.parse(s.ends_at)
        ? `${esc(formatInstant(s.expired_at, nowMs))}<span class="sub">expired early by ${esc(s.expired_by ?? 'someone')}; was until ${esc(formatInstant(s.ends_at, nowMs))}</span>`
        : `${esc(formatInstant(endMs, nowMs))}<span class="sub">ran its course</span>`;
  const scope = s.site
    ? `<a href="#/sites/${s.site.id}">${esc(s.site.name)}</a>`
    : '<strong>every site</strong>';
  const what = s.alertname ? esc(s.alertname) : '<strong>every alert</strong>';
  const actions = permissions.actOnAlerts
    ? `<td data-label="Actions"><div class="alert-actions">${
        mayExpire(s, permissions)
          ? `<button type="button" class="button-small" data-action="expire" data-silence-id="${s.id}" aria-label="Expire silence #${s.id} (${esc(s.alertname ?? 'every alert')} at ${esc(s.site?.name ?? 'every site')})">Expire</button>`
          : ''
      }</div></td>`
    : '';
  return `<tr data-silence-id="${s.id}" data-state="${esc(s.state)}">
<th scope="row" data-label="Silence">#${s.id}</th>
<td data-label="State"><span class="state silence-${esc(s.state)}">${esc(s.state)}</span></td>
<td data-label="Site">${scope}</td>
<td data-label="Alert">${what}</td>
<td data-label="From">${esc(formatInstant(s.starts_at, nowMs))}</td>
<td data-label="Until">${ended}</td>
<td data-label="Created by">${esc(s.created_by)}</td>
<td data-label="Comment" class="details-cell" data-field="comment">${esc(s.comment)}</td>
${actions}
</tr>`;
}

const VIEWS = /** @type {const} */ ({
  open: { tab: 'Firing and pending', title: 'Alerts' },
  resolved: { tab: 'Resolved', title: 'Resolved alerts' },
  silences: { tab: 'Silences', title: 'Silences' },
});

/**
 * @param {HTMLElement} main
 * @param {import('./app.js').PageContext} context
 * @param {AlertsView} initialView
 */
export function mountAlerts(main, context, initialView) {
  const { permissions } = context;
  /** @type {AlertsView} */
  let view = initialView;
  main.innerHTML = `<div class="page-head"><h1 tabindex="-1" data-alerts-title>Alerts</h1><p class="updated" data-updated></p></div>
<nav class="tabs" aria-label="Alert views"><ul>${Object.entries(VIEWS)
    .map(
      ([key, v]) =>
        `<li><a href="#/alerts${key === 'open' ? '' : `/${key}`}" data-view="${key}">${esc(v.tab)}</a></li>`,
    )
    .join('')}</ul></nav>
<div class="banner" role="status" data-banner hidden></div>
<section data-panel="alerts" aria-labelledby="alerts-caption">
<div class="toolbar" role="search">
  <label>Search <input type="search" data-filter-q placeholder="alert, site or who acknowledged" autocomplete="off"></label>
  <label data-open-only>State <select data-filter-state><option value="">firing and pending</option><option value="firing">firing</option><option value="pending">pending</option></select></label>
  <label>Severity <select data-filter-severity><option value="">all</option><option value="critical">critical</option><option value="warning">warning</option></select></label>
  <label data-open-only>Handling <select data-filter-handling><option value="">all</option><option value="attention">needs attention</option><option value="acknowledged">acknowledged</option><option value="silenced">silenced</option></select></label>
  <span class="shown" data-shown></span>
</div>
<div class="table-wrap">
<table class="alerts-table">
  <caption class="sr-only" id="alerts-caption" data-alerts-caption></caption>
  <thead>${alertHeadHtml({ withSite: true, withActions: permissions.actOnAlerts })}</thead>
  <tbody data-rows></tbody>
</table>
<p class="empty" data-empty hidden></p>
</div>
</section>
<section data-panel="silences" aria-labelledby="silences-caption" hidden>
<div class="toolbar">
  <label>Show <select data-silence-state><option value="active">active</option><option value="expired">expired</option><option value="all">all</option></select></label>
  <span class="shown" data-silences-shown></span>
  ${permissions.actOnAlerts ? '<button type="button" data-action="new-silence" aria-haspopup="dialog">New silence…</button>' : ''}
</div>
<div class="table-wrap">
<table class="silences-table">
  <caption class="sr-only" id="silences-caption">Silences, newest first. An active silence stops the notifications of the alerts it covers until it ends.</caption>
  <thead><tr>${['Silence', 'State', 'Site', 'Alert', 'From', 'Until', 'Created by', 'Comment', ...(permissions.actOnAlerts ? ['Actions'] : [])].map((c) => `<th scope="col">${c}</th>`).join('')}</tr></thead>
  <tbody data-silence-rows></tbody>
</table>
<p class="empty" data-silences-empty hidden>No silences.</p>
</div>
</section>`;
  const tbody = $(main, '[data-rows]');
  const banner = $(main, '[data-banner]');
  const updated = $(main, '[data-updated]');
  const shown = $(main, '[data-shown]');
  const empty = $(main, '[data-empty]');
  const q = /** @type {HTMLInputElement} */ ($(main, '[data-filter-q]'));
  const stateFilter = /** @type {HTMLSelectElement} */ ($(main, '[data-filter-state]'));
  const severityFilter = /** @type {HTMLSelectElement} */ ($(main, '[data-filter-severity]'));
  const handlingFilter = /** @type {HTMLSelectElement} */ ($(main, '[data-filter-handling]'));
  const silenceState = /** @type {HTMLSelectElement} */ ($(main, '[data-silence-state]'));
  const silenceRows = $(main, '[data-silence-rows]');
  /** The alerts of the open or resolved view, as last loaded. */
  /** @type {Alert[]} */
  let alerts = [];
  /** The active silences (open view), or those of the silences view. */
  /** @type {Map<number, Silence>} */
  let silences = new Map();
  let html = '';
  let silencesHtml = '';
  /** @type {AbortController | undefined} */
  let inFlight;

  const actions = mountAlertActions(main, context, {
    alertById: (id) => alerts.find((a) => a.id === id),
    silenceById: (id) => silences.get(id),
    sites: async () => {
      /** @type {import('./api-types').Fleet} */
      const fleet = await apiGet('/api/v1/fleet');
      return fleet.sites.map((s) => ({ id: s.id, name: s.name }));
    },
    onChanged: () => load().catch(() => {}),
  });

  /** @param {Alert} a */
  const needsAttention = (a) => a.state === 'firing' && !a.acknowledgement && a.silenced_by.length === 0;

  function render() {
    if (view === 'silences') return renderSilences();
    const nowMs = Date.now();
    const needle = q.value.trim().toLowerCase();
    const open = view === 'open';
    const list = alerts.filter(
      (a) =>
        (!open || stateFilter.value === '' || a.state === stateFilter.value) &&
        (severityFilter.value === '' || a.severity === severityFilter.value) &&
        (!open ||
          handlingFilter.value === '' ||
          (handlingFilter.value === 'attention' && needsAttention(a)) ||
          (handlingFilter.value === 'acknowledged' && a.acknowledgement !== null) ||
          (handlingFilter.value === 'silenced' && a.silenced_by.length > 0)) &&
        (needle === '' ||
          a.alertname.toLowerCase().includes(needle) ||
          a.site.name.toLowerCase().includes(needle) ||
          (a.acknowledgement?.by.toLowerCase().includes(needle) ?? false)),
    );
    const next = list
      .map((a) =>
        alertRowHtml(a, {
          nowMs,
          withSite: true,
          actions: permissions.actOnAlerts ? alertActionsHtml(a, permissions) : null,
          silences,
        }),
      )
      .join('');
    // Unchanged markup is left alone: an open annotations disclosure stays open across refreshes.
    redrawKeepingFocus(tbody, next, html);
    html = next;
    if (open) {
      const firing = alerts.filter((a) => a.state === 'firing');
      shown.textContent = `${formatCount(list.length)} shown · ${formatCount(firing.length)} firing (${formatCount(firing.filter((a) => a.acknowledgement).length)} acknowledged, ${formatCount(firing.filter((a) => a.silenced_by.length > 0).length)} silenced) · ${formatCount(alerts.length - firing.length)} pending`;
    } else {
      shown.textContent = `${formatCount(list.length)} shown of the ${formatCount(alerts.length)} most recently started`;
    }
    empty.hidden = list.length > 0;
  }

  function renderSilences() {
    const nowMs = Date.now();
    const list = [...silences.values()];
    const next = list.map((s) => silenceRowHtml(s, permissions, nowMs)).join('');
    redrawKeepingFocus(silenceRows, next, silencesHtml);
    silencesHtml = next;
    $(main, '[data-silences-empty]').hidden = list.length > 0;
    $(main, '[data-silences-shown]').textContent =
      `${formatCount(list.length)} ${silenceState.value === 'all' ? '' : `${silenceState.value} `}silence${list.length === 1 ? '' : 's'}`;
  }

  for (const control of [q, stateFilter, severityFilter, handlingFilter])
    control.addEventListener('input', render);
  silenceState.addEventListener('input', () => refresher.now());

  /** Shows `next`'s panel, tab and wording; the data comes with the next load. */
  function showView(/** @type {AlertsView} */ next) {
    const changed = next !== view;
    view = next;
    for (const link of main.querySelectorAll('[data-view]')) {
      if (/** @type {HTMLElement} */ (link).dataset.view === view) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    $(main, '[data-panel="alerts"]').hidden = view === 'silences';
    $(main, '[data-panel="silences"]').hidden = view !== 'silences';
    for (const el of main.querySelectorAll('[data-open-only]')) {
      /** @type {HTMLElement} */ (el).hidden = view !== 'open';
    }
    $(main, '[data-alerts-title]').textContent = VIEWS[view].title;
    document.title = `${VIEWS[view].title} · hashwatt console`;
    $(main, '[data-alerts-caption]').textContent =
      view === 'open'
        ? 'Firing and pending alerts, most urgent first, with who acknowledged them and the silences holding them.'
        : 'Resolved alerts, most recently resolved first.';
    empty.textContent = view === 'open' ? 'Nothing is firing or pending.' : 'No resolved alerts.';
    if (changed) {
      alerts = [];
      html = '';
      tbody.replaceChildren();
      shown.textContent = '';
    }
  }

  async function load() {
    inFlight?.abort();
    inFlight = new AbortController();
    const signal = inFlight.signal;
    const loading = view;
    try {
      if (loading === 'open') {
        /** @type {[import('./api-types').AlertList, import('./api-types').AlertList, import('./api-types').SilenceList]} */
        const [firing, pending, active] = await Promise.all([
          apiGet('/api/v1/alerts', { query: { state: 'firing', limit: 1000 }, signal }),
          apiGet('/api/v1/alerts', { query: { state: 'pending', limit: 1000 }, signal }),
          // For when the silences holding an alert end.
          apiGet('/api/v1/silences', { query: { state: 'active', limit: 1000 }, signal }),
        ]);
        alerts = [...firing.alerts, ...pending.alerts].sort(byUrgency);
        silences = new Map(active.silences.map((s) => [s.id, s]));
        context.setFiringCount(firing.alerts.length);
      } else if (loading === 'resolved') {
        /** @type {import('./api-types').AlertList} */
        const resolved = await apiGet('/api/v1/alerts', {
          query: { state: 'resolved', limit: HISTORY_LIMIT },
          signal,
        });
        alerts = resolved.alerts.sort(byResolved);
      } else {
        /** @type {import('./api-types').SilenceList} */
        const answer = await apiGet('/api/v1/silences', {
          query: { state: silenceState.value, limit: HISTORY_LIMIT },
          signal,
        });
        silences = new Map(answer.silences.map((s) => [s.id, s]));
      }
      if (loading !== view) return;
      banner.hidden = true;
      updated.textContent = `Updated ${formatInstant(Date.now())} · every ${REFRESH_MS / 1000} s`;
      render();
    } catch (error) {
      if (isAbort(error)) return;
      banner.hidden = false;
      banner.textContent = `Could not refresh the ${view === 'silences' ? 'silences' : 'alerts'} (${error instanceof Error ? error.message : String(error)}); retrying.`;
      throw error;
    }
  }

  showView(view);
  const refresher = every(load, REFRESH_MS);
  return {
    /** Another view of the same page: switch panels and load it now. */
    update(/** @type {import('./app.js').Route} */ next) {
      if (next.page !== 'alerts' || next.view === view) return;
      showView(next.view);
      refresher.now();
    },
    unmount() {
      refresher.stop();
      inFlight?.abort();
      actions.unmount();
    },
  };
}
