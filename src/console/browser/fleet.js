// @ts-check
/**
 * The fleet page: every site the token may read, one row each, with fleet totals above. It reads
 * `GET /api/v1/fleet` every few seconds and redraws in place: rows are kept per site and only
 * those whose markup changed are rewritten, so sorting, filters, scroll and keyboard focus survive
 * a refresh, and a thousand sites cost one string per row, not a framework per cell.
 */
import { apiGet, isAbort } from './api.js';
import { consoleHook } from './charts.js';
import { $, esc, every } from './dom.js';
import {
  formatAgo,
  formatClock,
  formatCount,
  formatCountOf,
  formatDuration,
  formatHashrate,
  formatInstant,
  formatPower,
  formatRatio,
  NONE,
} from './format.js';

/** @typedef {import('./api-types').SiteView} SiteView */
/** @typedef {import('./api-types').Fleet} Fleet */

const REFRESH_MS = 5_000;

/** @typedef {'name' | 'status' | 'drawn' | 'surplus' | 'hashrate' | 'gpu' | 'ai' | 'devices' | 'alerts'} SortKey */

/** @type {Record<SortKey, { label: string, value: (s: SiteView) => number | string }>} */
const SORTS = {
  name: { label: 'Site', value: (s) => s.name.toLowerCase() },
  // Down first when ascending: it is what an operator looks for.
  status: { label: 'Status', value: (s) => ({ down: 0, unknown: 1, up: 2 })[s.status] },
  drawn: { label: 'Power drawn', value: (s) => s.drawn_power_w },
  surplus: { label: 'Surplus', value: (s) => s.surplus_w },
  hashrate: { label: 'Hashrate', value: (s) => s.hashrate_ths },
  gpu: { label: 'GPU utilisation', value: (s) => s.gpu_utilisation_ratio ?? -1 },
  ai: { label: 'AI share', value: (s) => s.ai_power_ratio ?? -1 },
  devices: { label: 'Devices down', value: (s) => s.devices.down + s.devices.stale },
  alerts: { label: 'Firing alerts', value: (s) => s.firing_alerts.length },
};

/** Filters and sort, kept while the console is open: leaving for a site and coming back keeps them. */
const view = {
  q: '',
  status: '',
  kind: '',
  /** @type {SortKey} */
  sort: 'name',
  /** 1 ascending, −1 descending */
  dir: 1,
  paused: false,
};

/** The columns: sort key (if sortable) and header. */
const COLUMNS = /** @type {const} */ ([
  ['name', 'Site'],
  ['status', 'Status'],
  ['drawn', 'Power drawn / available'],
  ['surplus', 'Surplus'],
  ['hashrate', 'Hashrate'],
  ['gpu', 'GPU util.'],
  ['ai', 'AI / mining'],
  ['devices', 'Devices'],
  ['alerts', 'Firing alerts'],
]);

/**
 * Drawn against available as a bar: the track is the contracted capacity, the drawn power fills
 * from the left, the surplus up to available is hatched green, and a draw past available is red.
 * An SVG (attributes, not inline styles: the page's CSP allows no inline style).
 * @param {SiteView} s
 */
export function powerBar(s) {
  const scale = Math.max(s.capacity_w, s.available_power_w, s.drawn_power_w, 1);
  const pct = (/** @type {number} */ w) => Math.max(0, Math.min(100, (w / scale) * 100)).toFixed(2);
  const drawn = Math.min(s.drawn_power_w, s.available_power_w);
  const parts = [
    `<rect class="bar-track" x="0" y="0" width="100" height="10"/>`,
    `<rect class="bar-drawn" x="0" y="0" width="${pct(drawn)}" height="10"/>`,
  ];
  if (s.available_power_w > s.drawn_power_w) {
    parts.push(
      `<rect class="bar-surplus" x="${pct(s.drawn_power_w)}" y="0" width="${(Number(pct(s.available_power_w)) - Number(pct(s.drawn_power_w))).toFixed(2)}" height="10"/>`,
    );
  } else if (s.drawn_power_w > s.available_power_w) {
    parts.push(
      `<rect class="bar-over" x="${pct(s.available_power_w)}" y="0" width="${(Number(pct(s.drawn_power_w)) - Number(pct(s.available_power_w))).toFixed(2)}" height="10"/>`,
    );
  }
  parts.push(`<rect class="bar-available" x="${pct(s.available_power_w)}" y="-2" width="0.8" height="14"/>`);
  const label = `Drawn ${formatPower(s.drawn_power_w)} of ${formatPower(s.available_power_w)} available (capacity ${formatPower(s.capacity_w)})`;
  return `<svg class="power-bar" viewBox="0 -2 100 14" preserveAspectRatio="none" role="img" aria-label="${esc(label)}"><title>${esc(label)}</title>${parts.join('')}</svg>`;
}

/** AI against mining power as a two-part bar. */
function splitBar(/** @type {SiteView} */ s) {
  const total = s.ai_power_w + s.mining_power_w;
  if (total <= 0) return '';
  const ai = ((s.ai_power_w / total) * 100).toFixed(2);
  return `<svg class="split-bar" viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true"><rect class="bar-mining" x="0" y="0" width="100" height="6"/><rect class="bar-ai" x="0" y="0" width="${ai}" height="6"/></svg>`;
}

/**
 * Since when, as far as the API tells: a down site has been silent since its last reading; an up
 * one says how fresh it is. The zone is named once, beside "Updated" and in the footer.
 */
function statusSince(/** @type {SiteView} */ s, /** @type {number} */ nowMs) {
  if (s.last_reading_at === null) return 'never reported';
  const last = Date.parse(s.last_reading_at);
  if (s.status === 'down')
    return `silent ${esc(formatDuration((nowMs - last) / 1000))}, since ${esc(formatClock(last, nowMs))}`;
  return `read ${esc(formatAgo(last, nowMs))}`;
}

/**
 * The site's firing alerts as chips; one a silence holds is drawn dashed and one someone
 * acknowledged ticked, both said in its title (the chip's text stays the alert's name).
 * @param {import('./api-types').Alert[]} alerts
 */
function alertChips(alerts) {
  if (alerts.length === 0) return `<span class="muted">${NONE}</span>`;
  return alerts
    .map((a) => {
      const handling = [
        a.acknowledgement ? `acknowledged by ${a.acknowledgement.by}` : '',
        a.silenced_by.length > 0 ? 'silenced' : '',
      ].filter(Boolean);
      const classes = `chip severity-${esc(a.severity)}${a.silenced_by.length > 0 ? ' is-silenced' : ''}${a.acknowledgement ? ' is-acknowledged' : ''}`;
      return `<span class="${classes}" title="${esc([a.summary ?? a.alertname, ...handling].join(' · '))}">${esc(a.alertname)}</span>`;
    })
    .join(' ');
}

/** Devices by state: a chip per state that has any, so a healthy site reads "12 up of 12". */
function deviceChips(/** @type {SiteView['devices']} */ d) {
  /** @type {['up' | 'down' | 'stale' | 'curtailed', number][]} */
  const states = [
    ['up', d.up],
    ['down', d.down],
    ['stale', d.stale],
    ['curtailed', d.curtailed],
  ];
  const chips = states
    .filter(([, n]) => n > 0)
    .map(
      ([state, n]) =>
        `<span class="chip state-${state}"><span data-field="devices.${state}">${esc(formatCount(n))}</span> ${state}</span>`,
    )
    .join(' ');
  return `${chips} <span class="muted">of <span data-field="devices.total">${esc(formatCount(d.total))}</span></span>`;
}

/** One site's cells. */
export function rowHtml(/** @type {SiteView} */ s, /** @type {number} */ nowMs) {
  const expects = s.expected_hashrate_ths > 0 || s.hashrate_ths > 0;
  const surplusClass = s.surplus_w < 0 ? 'is-over' : s.surplus_ratio >= 0.1 ? 'is-surplus' : '';
  return `<th scope="row" data-label="Site"><a href="#/sites/${s.id}" data-field="name">${esc(s.name)}</a> <span class="kind kind-${esc(s.kind)}">${esc(s.kind)}</span></th>
<td data-label="Status" class="status-cell"><span class="status status-${esc(s.status)}" data-field="status">${esc(s.status)}</span><span class="sub">${statusSince(s, nowMs)}</span></td>
<td data-label="Power" class="num-cell"><span class="nums"><span data-field="drawn_power_w">${esc(formatPower(s.drawn_power_w))}</span> / <span data-field="available_power_w">${esc(formatPower(s.available_power_w))}</span></span>${powerBar(s)}</td>
<td data-label="Surplus" class="num-cell ${surplusClass}"><span data-field="surplus_w">${esc(formatPower(s.surplus_w))}</span><span class="sub" data-field="surplus_ratio">${esc(formatRatio(s.surplus_ratio))}</span></td>
<td data-label="Hashrate" class="num-cell">${
    expects
      ? `<span class="nums" data-field="hashrate_ths">${esc(formatHashrate(s.hashrate_ths))}</span><span class="sub nums">of <span data-field="expected_hashrate_ths">${esc(formatHashrate(s.expected_hashrate_ths))}</span> · <span data-field="hashing_ratio">${esc(formatRatio(s.hashing_ratio))}</span></span>`
      : `<span class="muted">no ASICs hashing</span>`
  }</td>
<td data-label="GPU util." class="num-cell"><span data-field="gpu_utilisation_ratio">${esc(formatRatio(s.gpu_utilisation_ratio))}</span><span class="sub">${esc(formatCountOf(s.gpus.fresh, 'GPU'))}</span></td>
<td data-label="AI / mining" class="num-cell"><span class="line"><span class="swatch swatch-ai"></span>AI <span data-field="ai_power_w">${esc(formatPower(s.ai_power_w))}</span></span><span class="line"><span class="swatch swatch-mining"></span>mining <span data-field="mining_power_w">${esc(formatPower(s.mining_power_w))}</span></span>${splitBar(s)}</td>
<td data-label="Devices">${deviceChips(s.devices)}</td>
<td data-label="Alerts" data-field="firing_alerts">${alertChips(s.firing_alerts)}</td>`;
}

/**
 * Fleet-wide totals. GPU utilisation is the mean over sites weighted by their fresh GPUs, so a
 * site of 2 GPUs does not weigh as much as one of 2,000.
 * @param {SiteView[]} sites
 */
export function fleetTotals(sites) {
  const t = {
    sites: sites.length,
    up: 0,
    down: 0,
    unknown: 0,
    drawn_power_w: 0,
    available_power_w: 0,
    surplus_w: 0,
    hashrate_ths: 0,
    expected_hashrate_ths: 0,
    gpus: 0,
    gpu_weighted: 0,
    ai_power_w: 0,
    mining_power_w: 0,
    devices: { up: 0, down: 0, stale: 0, curtailed: 0, total: 0 },
    firing_alerts: 0,
  };
  for (const s of sites) {
    t[s.status]++;
    t.drawn_power_w += s.drawn_power_w;
    t.available_power_w += s.available_power_w;
    t.surplus_w += s.surplus_w;
    t.hashrate_ths += s.hashrate_ths;
    t.expected_hashrate_ths += s.expected_hashrate_ths;
    if (s.gpu_utilisation_ratio !== null) {
      t.gpus += s.gpus.fresh;
      t.gpu_weighted += s.gpu_utilisation_ratio * s.gpus.fresh;
    }
    t.ai_power_w += s.ai_power_w;
    t.mining_power_w += s.mining_power_w;
    for (const k of /** @type {const} */ (['up', 'down', 'stale', 'curtailed', 'total']))
      t.devices[k] += s.devices[k];
    t.firing_alerts += s.firing_alerts.length;
  }
  return {
    ...t,
    gpu_utilisation_ratio: t.gpus > 0 ? t.gpu_weighted / t.gpus : null,
    hashing_ratio: t.expected_hashrate_ths > 0 ? t.hashrate_ths / t.expected_hashrate_ths : null,
    surplus_ratio: t.available_power_w > 0 ? t.surplus_w / t.available_power_w : null,
  };
}

function totalsHtml(/** @type {ReturnType<typeof fleetTotals>} */ t) {
  /** @param {string} label @param {string} value @param {string} sub @param {string} field */
  const card = (label, value, sub, field) =>
    `<div class="total"><dt>${esc(label)}</dt><dd><span class="total-value" data-total="${field}">${value}</span><span class="sub">${sub}</span></dd></div>`;
  return `<dl class="totals">
${card('Sites', esc(formatCount(t.sites)), `<span class="status-text-up">${esc(formatCount(t.up))} up</span> · <span class="status-text-down">${esc(formatCount(t.down))} down</span> · ${esc(formatCount(t.unknown))} unknown`, 'sites')}
${card('Power drawn', esc(formatPower(t.drawn_power_w)), `of <span data-total="available_power_w">${esc(formatPower(t.available_power_w))}</span> available`, 'drawn_power_w')}
${card('Surplus', esc(formatPower(t.surplus_w)), `${esc(formatRatio(t.surplus_ratio))} of available`, 'surplus_w')}
${card('Hashrate', esc(formatHashrate(t.hashrate_ths)), `of <span data-total="expected_hashrate_ths">${esc(formatHashrate(t.expected_hashrate_ths))}</span> expected (${esc(formatRatio(t.hashing_ratio))})`, 'hashrate_ths')}
${card('GPU utilisation', esc(formatRatio(t.gpu_utilisation_ratio)), `${esc(formatCountOf(t.gpus, 'GPU'))} reporting`, 'gpu_utilisation_ratio')}
${card('AI / mining', `${esc(formatPower(t.ai_power_w))} / <span data-total="mining_power_w">${esc(formatPower(t.mining_power_w))}</span>`, 'AI / mining power', 'ai_power_w')}
${card('Devices', esc(formatCount(t.devices.total)), `${esc(formatCount(t.devices.up))} up · ${esc(formatCount(t.devices.down))} down · ${esc(formatCount(t.devices.stale))} stale · ${esc(formatCount(t.devices.curtailed))} curtailed`, 'devices')}
${card('Firing alerts', esc(formatCount(t.firing_alerts)), '<a href="#/alerts">see alerts</a>', 'firing_alerts')}
</dl>`;
}

/** The sites that pass the filters, sorted (ties by name, so the order is stable between refreshes). */
export function visibleSites(/** @type {SiteView[]} */ sites, /** @type {typeof view} */ v = view) {
  const q = v.q.trim().toLowerCase();
  const sort = SORTS[v.sort];
  return sites
    .filter(
      (s) =>
        (q === '' || s.name.toLowerCase().includes(q)) &&
        (v.status === '' || s.status === v.status) &&
        (v.kind === '' || s.kind === v.kind),
    )
    .sort((a, b) => {
      const x = sort.value(a);
      const y = sort.value(b);
      const c = x < y ? -1 : x > y ? 1 : 0;
      return c * v.dir || a.name.localeCompare(b.name) || a.id - b.id;
    });
}

/**
 * @param {HTMLElement} main
 * @param {import('./app.js').PageContext} context
 */
export function mountFleet(main, context) {
  main.innerHTML = `<div class="page-head"><h1 tabindex="-1">Fleet</h1><p class="updated" data-updated></p></div>
<div class="banner" role="status" data-banner hidden></div>
<section aria-label="Fleet totals" data-totals></section>
<div class="toolbar" role="search">
  <label>Search <input type="search" data-filter="q" placeholder="site name" autocomplete="off"></label>
  <label>Status <select data-filter="status"><option value="">all</option><option value="up">up</option><option value="down">down</option><option value="unknown">unknown</option></select></label>
  <label>Kind <select data-filter="kind"><option value="">all</option><option value="mining">mining</option><option value="ai">ai</option><option value="mixed">mixed</option></select></label>
  <label class="sort-picker">Sort by <select data-sort-select>${Object.entries(SORTS)
    .map(([key, s]) => `<option value="${key}">${esc(s.label)}</option>`)
    .join('')}</select></label>
  <button type="button" class="button-quiet sort-picker" data-sort-dir></button>
  <span class="shown" data-shown></span>
  <button type="button" class="button-quiet" data-pause aria-pressed="false">Pause updates</button>
</div>
<div class="table-wrap">
<table class="fleet-table">
  <caption class="sr-only">Sites, one row each; column headers sort.</caption>
  <thead><tr>${COLUMNS.map(([key, label]) => `<th scope="col" data-col="${key}"><button type="button" data-sort="${key}">${esc(label)}<span class="sort-mark" aria-hidden="true"></span></button></th>`).join('')}</tr></thead>
  <tbody data-rows></tbody>
</table>
<p class="empty" data-empty hidden>No site matches these filters.</p>
</div>`;

  const tbody = $(main, '[data-rows]');
  const totals = $(main, '[data-totals]');
  const banner = $(main, '[data-banner]');
  const shown = $(main, '[data-shown]');
  const updated = $(main, '[data-updated]');
  const empty = $(main, '[data-empty]');
  const pause = $(main, '[data-pause]');
  const sortSelect = /** @type {HTMLSelectElement} */ ($(main, '[data-sort-select]'));
  const sortDir = $(main, '[data-sort-dir]');
  /** @type {Fleet | null} */
  let fleet = null;
  /** Each site's row and the markup it holds: unchanged markup is never rewritten. */
  /** @type {Map<number, { tr: HTMLTableRowElement, html: string }>} */
  const rows = new Map();
  /** @type {AbortController | undefined} */
  let inFlight;

  for (const input of main.querySelectorAll('[data-filter]')) {
    const field = /** @type {'q' | 'status' | 'kind'} */ (/** @type {HTMLElement} */ (input).dataset.filter);
    const control = /** @type {HTMLInputElement | HTMLSelectElement} */ (input);
    control.value = view[field];
    control.addEventListener('input', () => {
      view[field] = control.value;
      render();
    });
  }

  const setSort = (/** @type {SortKey} */ key, /** @type {number} */ dir) => {
    view.sort = key;
    view.dir = dir;
    render();
  };
  for (const button of main.querySelectorAll('[data-sort]')) {
    button.addEventListener('click', () => {
      const key = /** @type {SortKey} */ (/** @type {HTMLElement} */ (button).dataset.sort);
      setSort(key, view.sort === key ? -view.dir : key === 'name' || key === 'status' ? 1 : -1);
    });
  }
  sortSelect.addEventListener('input', () => setSort(/** @type {SortKey} */ (sortSelect.value), view.dir));
  sortDir.addEventListener('click', () => setSort(view.sort, -view.dir));
  pause.addEventListener('click', () => {
    view.paused = !view.paused;
    pause.setAttribute('aria-pressed', String(view.paused));
    pause.textContent = view.paused ? 'Resume updates' : 'Pause updates';
    if (!view.paused) refresher.now();
  });
  pause.setAttribute('aria-pressed', String(view.paused));
  pause.textContent = view.paused ? 'Resume updates' : 'Pause updates';

  function renderHeaders() {
    for (const th of main.querySelectorAll('th[data-col]')) {
      const key = /** @type {HTMLElement} */ (th).dataset.col;
      if (key === view.sort) th.setAttribute('aria-sort', view.dir === 1 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
    sortSelect.value = view.sort;
    sortDir.textContent = view.dir === 1 ? 'Ascending' : 'Descending';
  }

  function render() {
    renderHeaders();
    if (!fleet) return;
    const started = performance.now();
    const nowMs = Date.now();
    const sites = visibleSites(fleet.sites);
    totals.innerHTML = totalsHtml(fleetTotals(fleet.sites));
    shown.textContent = `${formatCount(sites.length)} of ${formatCount(fleet.sites.length)} sites`;
    empty.hidden = sites.length > 0 || fleet.sites.length === 0;

    // Keyboard focus inside a row survives its redraw: remember the row, put it back after.
    const active = document.activeElement;
    const focusedSite = active && tbody.contains(active) ? active.closest('tr')?.dataset.siteId : undefined;

    /** @type {HTMLTableRowElement[]} */
    const wanted = [];
    const seen = new Set();
    for (const site of sites) {
      let row = rows.get(site.id);
      if (!row) {
        const tr = document.createElement('tr');
        tr.dataset.siteId = String(site.id);
        row = { tr, html: '' };
        rows.set(site.id, row);
      }
      const html = rowHtml(site, nowMs);
      if (row.html !== html) {
        row.tr.innerHTML = html;
        row.html = html;
      }
      row.tr.dataset.status = site.status;
      wanted.push(row.tr);
      seen.add(site.id);
    }
    for (const id of rows.keys()) if (!seen.has(id)) rows.delete(id);
    const current = tbody.children;
    const inOrder = current.length === wanted.length && wanted.every((tr, i) => current[i] === tr);
    if (!inOrder) tbody.replaceChildren(...wanted);
    if (focusedSite !== undefined && !tbody.contains(document.activeElement)) {
      /** @type {HTMLElement | null} */ (tbody.querySelector(`tr[data-site-id="${focusedSite}"] a`))?.focus();
    }
    const hook = consoleHook();
    hook.fleet = fleet;
    hook.fleetRenders++;
    hook.fleetRenderMs = performance.now() - started;
  }

  async function load() {
    if (view.paused) return;
    inFlight?.abort();
    inFlight = new AbortController();
    try {
      /** @type {Fleet} */
      const answer = await apiGet('/api/v1/fleet', { signal: inFlight.signal });
      fleet = answer;
      banner.hidden = true;
      updated.textContent = `Updated ${formatInstant(answer.as_of)} · every ${REFRESH_MS / 1000} s`;
      context.setFiringCount(answer.sites.reduce((n, s) => n + s.firing_alerts.length, 0));
      render();
    } catch (error) {
      if (isAbort(error)) return;
      banner.hidden = false;
      banner.textContent = `Could not refresh the fleet (${error instanceof Error ? error.message : String(error)}); showing the last answer, retrying.`;
      throw error;
    }
  }

  renderHeaders();
  const refresher = every(load, REFRESH_MS);
  return {
    unmount() {
      refresher.stop();
      inFlight?.abort();
    },
  };
}
