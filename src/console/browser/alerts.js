// @ts-check
/**
 * The alerts page: what is firing and pending across the fleet, with the annotations the engine
 * wrote (docs/alerting.md). The admin reads `GET /api/v1/alerts`; other tokens cannot (it is
 * admin-only), so they see the firing alerts the fleet answer carries for their sites.
 */
import { apiGet, isAbort } from './api.js';
import { $, esc, every } from './dom.js';
import { formatAgo, formatAlertValue, formatCount, formatInstant, NONE } from './format.js';

/** @typedef {import('./api-types').Alert} Alert */

const REFRESH_MS = 10_000;

/**
 * Where an alert's actions go. Acknowledge and silence are being added to the API; once they are,
 * they return their buttons here (the column is laid out for them and shown only to roles that
 * may act, `permissions.actOnAlerts`).
 * @param {Alert} alert
 * @param {import('./app.js').Permissions} _permissions
 */
export function alertActions(alert, _permissions) {
  return `<div class="alert-actions" data-alert-actions="${alert.id}"></div>`;
}

/** Annotations beyond summary and description, as a term list. */
function annotationList(/** @type {Record<string, string>} */ annotations) {
  const rest = Object.entries(annotations).filter(([k]) => k !== 'summary' && k !== 'description');
  if (rest.length === 0) return '';
  return `<details><summary>Annotations (${rest.length})</summary><dl class="annotations">${rest
    .map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`)
    .join('')}</dl></details>`;
}

/**
 * One alert's row; `withSite` false on a site's own page.
 * @param {Alert} a
 * @param {{ nowMs: number, withSite: boolean, actions: string | null }} options
 */
export function alertRowHtml(a, { nowMs, withSite, actions }) {
  const since = a.state === 'firing' ? a.fired_at : a.state === 'resolved' ? a.resolved_at : a.started_at;
  const sinceMs = since ? Date.parse(since) : null;
  return `<tr data-alert-id="${a.id}" data-alertname="${esc(a.alertname)}">
<td data-label="Severity"><span class="chip severity-${esc(a.severity)}">${esc(a.severity)}</span></td>
<th scope="row" data-label="Alert">${esc(a.alertname)}</th>
${withSite ? `<td data-label="Site"><a href="#/sites/${a.site.id}">${esc(a.site.name)}</a> <span class="kind kind-${esc(a.site.kind)}">${esc(a.site.kind)}</span></td>` : ''}
<td data-label="State"><span class="state state-alert-${esc(a.state)}">${esc(a.state)}</span></td>
<td data-label="Since">${sinceMs === null ? NONE : `${esc(formatInstant(sinceMs, nowMs))}<span class="sub">${esc(formatAgo(sinceMs, nowMs))}</span>`}${a.state !== 'pending' ? `<span class="sub">pending from ${esc(formatInstant(a.started_at, nowMs))}</span>` : ''}</td>
<td data-label="Value / threshold" class="num-cell"><span data-field="value">${esc(formatAlertValue(a.alertname, a.value))}</span> / <span data-field="threshold">${esc(formatAlertValue(a.alertname, a.threshold))}</span></td>
<td data-label="Details" class="details-cell">${a.summary ? `<p class="summary">${esc(a.summary)}</p>` : ''}${a.description ? `<p class="description">${esc(a.description)}</p>` : ''}${annotationList(a.annotations)}</td>
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

/**
 * @param {HTMLElement} main
 * @param {import('./app.js').PageContext} context
 */
export function mountAlerts(main, context) {
  const { permissions } = context;
  const full = permissions.readAlertHistory;
  main.innerHTML = `<div class="page-head"><h1 tabindex="-1">Alerts</h1><p class="updated" data-updated></p></div>
<div class="banner" role="status" data-banner hidden></div>
${full ? '' : '<p class="note">Pending alerts and alert history need an admin token; this token sees the firing alerts of its sites.</p>'}
<div class="toolbar" role="search">
  <label>Search <input type="search" data-filter-q placeholder="alert or site" autocomplete="off"></label>
  <label>State <select data-filter-state><option value="">firing and pending</option><option value="firing">firing</option><option value="pending">pending</option></select></label>
  <label>Severity <select data-filter-severity><option value="">all</option><option value="critical">critical</option><option value="warning">warning</option></select></label>
  <span class="shown" data-shown></span>
</div>
<div class="table-wrap">
<table class="alerts-table">
  <caption class="sr-only">Firing and pending alerts, most urgent first.</caption>
  <thead>${alertHeadHtml({ withSite: true, withActions: permissions.actOnAlerts })}</thead>
  <tbody data-rows></tbody>
</table>
<p class="empty" data-empty hidden>Nothing is firing or pending.</p>
</div>`;
  const tbody = $(main, '[data-rows]');
  const banner = $(main, '[data-banner]');
  const updated = $(main, '[data-updated]');
  const shown = $(main, '[data-shown]');
  const empty = $(main, '[data-empty]');
  const q = /** @type {HTMLInputElement} */ ($(main, '[data-filter-q]'));
  const stateFilter = /** @type {HTMLSelectElement} */ ($(main, '[data-filter-state]'));
  const severityFilter = /** @type {HTMLSelectElement} */ ($(main, '[data-filter-severity]'));
  /** @type {Alert[]} */
  let alerts = [];
  let html = '';
  /** @type {AbortController | undefined} */
  let inFlight;

  function render() {
    const nowMs = Date.now();
    const needle = q.value.trim().toLowerCase();
    const list = alerts.filter(
      (a) =>
        (stateFilter.value === '' || a.state === stateFilter.value) &&
        (severityFilter.value === '' || a.severity === severityFilter.value) &&
        (needle === '' ||
          a.alertname.toLowerCase().includes(needle) ||
          a.site.name.toLowerCase().includes(needle)),
    );
    const next = list
      .map((a) =>
        alertRowHtml(a, {
          nowMs,
          withSite: true,
          actions: permissions.actOnAlerts ? alertActions(a, permissions) : null,
        }),
      )
      .join('');
    // Unchanged markup is left alone: an open annotations disclosure stays open across refreshes.
    if (next !== html) {
      tbody.innerHTML = next;
      html = next;
    }
    const firing = alerts.filter((a) => a.state === 'firing').length;
    shown.textContent = `${formatCount(list.length)} shown · ${formatCount(firing)} firing · ${formatCount(alerts.length - firing)} pending`;
    empty.hidden = list.length > 0;
  }
  for (const control of [q, stateFilter, severityFilter]) control.addEventListener('input', render);

  async function load() {
    inFlight?.abort();
    inFlight = new AbortController();
    const signal = inFlight.signal;
    try {
      if (full) {
        /** @type {[import('./api-types').AlertList, import('./api-types').AlertList]} */
        const [firing, pending] = await Promise.all([
          apiGet('/api/v1/alerts', { query: { state: 'firing', limit: 1000 }, signal }),
          apiGet('/api/v1/alerts', { query: { state: 'pending', limit: 1000 }, signal }),
        ]);
        alerts = [...firing.alerts, ...pending.alerts];
      } else {
        /** @type {import('./api-types').Fleet} */
        const fleet = await apiGet('/api/v1/fleet', { signal });
        alerts = fleet.sites.flatMap((s) => s.firing_alerts);
      }
      alerts.sort(byUrgency);
      context.setFiringCount(alerts.filter((a) => a.state === 'firing').length);
      banner.hidden = true;
      updated.textContent = `Updated ${formatInstant(Date.now())} · every ${REFRESH_MS / 1000} s`;
      render();
    } catch (error) {
      if (isAbort(error)) return;
      banner.hidden = false;
      banner.textContent = `Could not refresh the alerts (${error instanceof Error ? error.message : String(error)}); retrying.`;
      throw error;
    }
  }

  const refresher = every(load, REFRESH_MS);
  return {
    unmount() {
      refresher.stop();
      inFlight?.abort();
    },
  };
}
