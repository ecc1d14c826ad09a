// @ts-check
/**
 * A site's page: what it does now (`/status`, every few seconds), its history as charts (power
 * drawn against available with the surplus shaded, hashrate against expected, GPU utilisation,
 * energy per hour or day) over 1 h, 24 h, 7 d or 30 d, its devices (filtered, paged by the API's
 * cursor) with one device's own charts, and its alert history (`GET /api/v1/sites/:id/alerts`, for
 * every token) with the actions of alert-actions.js for the tokens that may act.
 *
 * The step of each range is chosen so long ranges read the rollups (src/history/tiers.ts: whole
 * minutes read the site-minute tier, whole hours the hour tiers); the answer's `source` is shown.
 */
import { alertActionsHtml, mountAlertActions, redrawKeepingFocus } from './alert-actions.js';
import { alertHeadHtml, alertRowHtml } from './alerts.js';
import { ApiError, apiGet, isAbort } from './api.js';
import { alignPoints, createChart } from './charts.js';
import { $, debounce, esc, every } from './dom.js';
import { powerBar } from './fleet.js';
import {
  describeSource,
  formatAgo,
  formatCost,
  formatCount,
  formatCountOf,
  formatDuration,
  formatEnergy,
  formatHashrate,
  formatInstant,
  formatPercentValue,
  formatPower,
  formatRatio,
  formatTemperature,
  NONE,
} from './format.js';

/** @typedef {import('./api-types').SiteView} SiteView */
/** @typedef {import('./api-types').Series} Series */
/** @typedef {import('./api-types').Device} Device */
/** @typedef {import('./charts.js').Chart} Chart */
/** @typedef {import('./charts.js').ChartSpec} ChartSpec */

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const STATUS_REFRESH_MS = 5_000;
const DEVICES_REFRESH_MS = 15_000;
const DEVICES_PER_PAGE = 25;
const ALERT_HISTORY_LIMIT = 50;

/**
 * The ranges and their steps. 60 s reads the site-minute rollup (exactly the fleet rule, docs/
 * read-api.md) and 3600 s the hour rollups; a device has no minute tier, so its 60 s steps read raw
 * readings while raw is kept. Each range stays well under the API's 10 000 points.
 */
export const RANGES = /** @type {const} */ ({
  '1h': {
    label: '1 h',
    ms: HOUR_MS,
    siteStepS: 60,
    deviceStepS: 60,
    energyBucket: 'hour',
    refreshMs: 30_000,
  },
  '24h': {
    label: '24 h',
    ms: DAY_MS,
    siteStepS: 60,
    deviceStepS: 60,
    energyBucket: 'hour',
    refreshMs: 60_000,
  },
  '7d': {
    label: '7 d',
    ms: 7 * DAY_MS,
    siteStepS: 3600,
    deviceStepS: 3600,
    energyBucket: 'day',
    refreshMs: 300_000,
  },
  '30d': {
    label: '30 d',
    ms: 30 * DAY_MS,
    siteStepS: 3600,
    deviceStepS: 3600,
    energyBucket: 'day',
    refreshMs: 300_000,
  },
});
/** @typedef {keyof typeof RANGES} RangeKey */

/**
 * The range, kept while the console is open (moving between sites keeps it); a link's
 * `?range=` sets it.
 */
/** @type {RangeKey} */
let rangeKey = '24h';

/**
 * The site charts, by what the site runs.
 * @param {import('./api-types').SiteKind} kind
 * @returns {(ChartSpec & { metrics: string[] })[]}
 */
function siteChartSpecs(kind) {
  /** @type {(ChartSpec & { metrics: string[] })[]} */
  const specs = [
    {
      name: 'site-power',
      title: 'Power: drawn and available',
      format: formatPower,
      surplusBands: true,
      metrics: ['power_w', 'available_power_w'],
      series: [
        { label: 'Drawn', metric: 'power_w', color: '--chart-drawn' },
        { label: 'Available', metric: 'available_power_w', color: '--chart-available' },
      ],
    },
  ];
  if (kind !== 'ai') {
    specs.push({
      name: 'site-hashrate',
      title: 'Hashrate and expected',
      format: formatHashrate,
      metrics: ['hashrate_ths', 'expected_hashrate_ths'],
      series: [
        { label: 'Hashrate', metric: 'hashrate_ths', color: '--chart-hashrate' },
        { label: 'Expected', metric: 'expected_hashrate_ths', color: '--chart-expected', dash: [5, 4] },
      ],
    });
  }
  if (kind !== 'mining') {
    specs.push({
      name: 'site-gpu',
      title: 'GPU utilisation (mean)',
      format: formatPercentValue,
      metrics: ['gpu_util_pct'],
      series: [{ label: 'Utilisation', metric: 'gpu_util_pct', color: '--chart-gpu' }],
    });
  }
  return specs;
}

/**
 * A device's charts, by its kind.
 * @param {import('./api-types').DeviceKind | null} kind
 * @returns {(ChartSpec & { metrics: string[] })[]}
 */
function deviceChartSpecs(kind) {
  /** @type {(ChartSpec & { metrics: string[] })[]} */
  const specs = [];
  if (kind === 'meter') {
    specs.push({
      name: 'device-power',
      title: 'Power and available power',
      format: formatPower,
      surplusBands: true,
      metrics: ['power_w', 'available_power_w'],
      series: [
        { label: 'Power', metric: 'power_w', color: '--chart-drawn' },
        { label: 'Available', metric: 'available_power_w', color: '--chart-available' },
      ],
    });
    return specs;
  }
  specs.push({
    name: 'device-power',
    title: 'Power',
    format: formatPower,
    metrics: ['power_w'],
    series: [{ label: 'Power', metric: 'power_w', color: '--chart-drawn' }],
  });
  if (kind === 'asic') {
    specs.push({
      name: 'device-hashrate',
      title: 'Hashrate and expected',
      format: formatHashrate,
      metrics: ['hashrate_ths', 'expected_hashrate_ths'],
      series: [
        { label: 'Hashrate', metric: 'hashrate_ths', color: '--chart-hashrate' },
        { label: 'Expected', metric: 'expected_hashrate_ths', color: '--chart-expected', dash: [5, 4] },
      ],
    });
  }
  if (kind === 'gpu') {
    specs.push({
      name: 'device-gpu',
      title: 'GPU utilisation',
      format: formatPercentValue,
      metrics: ['gpu_util_pct'],
      series: [{ label: 'Utilisation', metric: 'gpu_util_pct', color: '--chart-gpu' }],
    });
  }
  specs.push({
    name: 'device-temp',
    title: 'Temperature',
    format: formatTemperature,
    metrics: ['temp_c'],
    series: [{ label: 'Temperature', metric: 'temp_c', color: '--chart-temp' }],
  });
  return specs;
}

/** @type {ChartSpec} */
const ENERGY_SPEC = {
  name: 'site-energy',
  title: 'Energy',
  format: formatEnergy,
  style: 'stacked-bars',
  series: [
    { label: 'Mining', metric: 'mining_kwh', color: '--chart-mining' },
    { label: 'AI', metric: 'ai_kwh', color: '--chart-ai' },
    { label: 'Other', metric: 'other_kwh', color: '--chart-other' },
  ],
};

/** The site's state now, as tiles. */
function summaryHtml(/** @type {SiteView} */ s, /** @type {number} */ nowMs) {
  /** @param {string} label @param {string} value @param {string} sub */
  const tile = (label, value, sub) =>
    `<div class="total"><dt>${esc(label)}</dt><dd><span class="total-value">${value}</span><span class="sub">${sub}</span></dd></div>`;
  const curtailedNote =
    s.available_power_w < s.capacity_w
      ? ` · <strong class="curtailed-note">${esc(formatRatio(1 - s.available_power_w / s.capacity_w))} below capacity</strong>`
      : '';
  return `<dl class="totals">
${tile('Power drawn', esc(formatPower(s.drawn_power_w)), `of ${esc(formatPower(s.available_power_w))} available (${esc(s.available_power_source)})${curtailedNote}`)}
${tile('Surplus', esc(formatPower(s.surplus_w)), `${esc(formatRatio(s.surplus_ratio))} of available · capacity ${esc(formatPower(s.capacity_w))}`)}
${tile('Hashrate', esc(formatHashrate(s.hashrate_ths)), `of ${esc(formatHashrate(s.expected_hashrate_ths))} expected (${esc(formatRatio(s.hashing_ratio))})${s.efficiency_j_per_th === null ? '' : ` · ${esc(s.efficiency_j_per_th.toFixed(1))} J/TH`}`)}
${tile('GPU utilisation', esc(formatRatio(s.gpu_utilisation_ratio)), `${esc(formatCountOf(s.gpus.fresh, 'GPU'))} · ${esc(formatCount(s.gpus.busy))} busy · ${esc(formatCount(s.gpus.idle))} idle`)}
${tile('AI / mining', `${esc(formatPower(s.ai_power_w))} / ${esc(formatPower(s.mining_power_w))}`, `AI share ${esc(formatRatio(s.ai_power_ratio))}`)}
${tile('Devices', esc(formatCount(s.devices.total)), `${esc(formatCount(s.devices.up))} up · ${esc(formatCount(s.devices.down))} down · ${esc(formatCount(s.devices.stale))} stale · <span class="${s.devices.curtailed > 0 ? 'curtailed-note' : ''}">${esc(formatCount(s.devices.curtailed))} curtailed</span>`)}
${tile('Last reading', esc(s.last_reading_at === null ? 'never' : formatAgo(Date.parse(s.last_reading_at), nowMs)), esc(formatInstant(s.last_reading_at, nowMs)))}
</dl>
<div class="site-bar">${powerBar(s)}<p class="legend-line"><span class="swatch swatch-drawn"></span>drawn <span class="swatch swatch-surplus"></span>surplus up to available <span class="swatch swatch-over"></span>over available <span class="swatch swatch-track"></span>capacity</p></div>`;
}

/** One device's row. */
function deviceRowHtml(
  /** @type {Device} */ d,
  /** @type {number} */ siteId,
  /** @type {number | null} */ selected,
  /** @type {number} */ nowMs,
) {
  const m = d.metrics;
  const util = m.gpu_util_pct ?? null;
  return `<tr data-device-id="${d.id}"${d.id === selected ? ' class="is-selected"' : ''}>
<th scope="row" data-label="Device"><a href="#/sites/${siteId}/devices/${d.id}"${d.id === selected ? ' aria-current="true"' : ''}>${esc(d.name)}</a></th>
<td data-label="Kind">${esc(d.kind)}</td>
<td data-label="Model">${esc(d.model ?? NONE)}</td>
<td data-label="State"><span class="chip state-${esc(d.state)}">${esc(d.state)}</span></td>
<td data-label="Status">${esc(d.status ?? NONE)}</td>
<td data-label="Power" class="num-cell">${esc(formatPower(m.power_w))}</td>
<td data-label="Hashrate" class="num-cell">${m.hashrate_ths === null || m.hashrate_ths === undefined ? NONE : esc(formatHashrate(m.hashrate_ths))}</td>
<td data-label="Temp." class="num-cell">${esc(formatTemperature(m.temp_c))}</td>
<td data-label="GPU util." class="num-cell">${esc(formatPercentValue(util))}</td>
<td data-label="Last reading">${esc(formatAgo(Date.parse(d.last_reading_at), nowMs))}</td>
</tr>`;
}

/**
 * @param {HTMLElement} main
 * @param {import('./app.js').PageContext} context
 * @param {{ siteId: number, deviceId: number | null, range: RangeKey | null }} route
 */
export function mountSite(main, context, route) {
  const siteId = route.siteId;
  let deviceId = route.deviceId;
  if (route.range) rangeKey = route.range;
  const { permissions } = context;
  main.innerHTML = `<nav class="crumbs" aria-label="Breadcrumb"><a href="#/">Fleet</a> <span aria-hidden="true">›</span> <span data-crumb>site ${siteId}</span></nav>
<div class="page-head"><h1 tabindex="-1" data-site-name>Site ${siteId}</h1><span data-site-badges></span><p class="updated" data-updated></p></div>
<div class="banner" role="status" data-banner hidden></div>
<section aria-label="Now" data-summary></section>
<section class="history" aria-labelledby="history-h">
  <div class="section-head">
    <h2 id="history-h">History</h2>
    <div class="range" role="group" aria-label="Time range">${Object.entries(RANGES)
      .map(
        ([key, r]) =>
          `<button type="button" data-range="${key}" aria-pressed="${key === rangeKey}">${esc(r.label)}</button>`,
      )
      .join('')}</div>
    <p class="source" data-source-note></p>
  </div>
  <div class="charts" data-charts></div>
  <p class="energy-totals" data-energy-totals></p>
</section>
<section class="devices" aria-labelledby="devices-h">
  <div class="section-head"><h2 id="devices-h">Devices</h2></div>
  <div class="toolbar" role="search">
    <label>Search <input type="search" data-device-q placeholder="name or prefix, e.g. hall-a/" autocomplete="off" maxlength="128"></label>
    <label>State <select data-device-state><option value="">all</option><option value="up">up</option><option value="down">down</option><option value="stale">stale</option><option value="curtailed">curtailed</option></select></label>
    <label>Kind <select data-device-kind><option value="">all</option><option value="asic">asic</option><option value="gpu">gpu</option><option value="meter">meter</option><option value="pdu">pdu</option><option value="other">other</option></select></label>
  </div>
  <div class="table-wrap">
    <table class="devices-table">
      <caption class="sr-only">The site's devices with their latest state; open one for its charts.</caption>
      <thead><tr>${['Device', 'Kind', 'Model', 'State', 'Status', 'Power', 'Hashrate', 'Temp.', 'GPU util.', 'Last reading'].map((c) => `<th scope="col">${c}</th>`).join('')}</tr></thead>
      <tbody data-device-rows></tbody>
    </table>
    <p class="empty" data-device-empty hidden>No device matches.</p>
  </div>
  <div class="pager"><button type="button" data-page-prev>Previous</button><span data-page-label></span><button type="button" data-page-next>Next</button></div>
  <section class="device-detail panel" data-device-detail hidden aria-labelledby="device-h">
    <div class="section-head"><h3 id="device-h" tabindex="-1" data-device-title></h3><a href="#/sites/${siteId}" class="button-quiet">Close</a></div>
    <p class="source" data-device-source></p>
    <div class="charts" data-device-charts></div>
  </section>
</section>
<section class="site-alerts" aria-labelledby="alerts-h">
  <div class="section-head"><h2 id="alerts-h">Alerts</h2><p class="source">the latest ${ALERT_HISTORY_LIMIT}, newest first</p>${permissions.actOnAlerts ? `<button type="button" class="button-small" data-action="new-silence" data-site-id="${siteId}" aria-haspopup="dialog">Silence this site…</button>` : ''}<a class="source" href="#/alerts/silences">Silences</a></div>
  <div class="table-wrap"><table class="alerts-table"><caption class="sr-only">This site's alerts: firing, pending and resolved, with who acknowledged them and the silences holding them.</caption><thead>${alertHeadHtml({ withSite: false, withActions: permissions.actOnAlerts })}</thead><tbody data-alert-rows></tbody></table>
  <p class="empty" data-alerts-empty hidden>No alerts.</p></div>
</section>`;

  const banner = $(main, '[data-banner]');
  const showError = (/** @type {string} */ what, /** @type {unknown} */ error) => {
    banner.hidden = false;
    banner.textContent = `Could not load ${what} (${error instanceof Error ? error.message : String(error)}); retrying.`;
  };
  /** Every request of this page, so leaving it cancels them. */
  const controllers = new Set();
  /**
   * @template T
   * @param {string} path
   * @param {import('./api.js').Query} [query]
   * @returns {Promise<T>}
   */
  const get = async (path, query) => {
    const controller = new AbortController();
    controllers.add(controller);
    try {
      return await apiGet(path, { ...(query && { query }), signal: controller.signal });
    } finally {
      controllers.delete(controller);
    }
  };
  let gone = false;
  const timers = /** @type {{ stop(): void, now(): void }[]} */ ([]);

  function siteMissing() {
    gone = true;
    for (const t of timers) t.stop();
    historyTimer?.stop();
    for (const c of controllers) c.abort();
    main.innerHTML = `<div class="panel"><h1 tabindex="-1">Site ${siteId} not found</h1><p>There is no site ${siteId}, or this token may not read it. <a href="#/">Back to the fleet</a>.</p></div>`;
  }

  // --- now -----------------------------------------------------------------------------------
  /** @type {SiteView | null} */
  let site = null;
  async function loadStatus() {
    try {
      /** @type {import('./api-types').SiteStatusAnswer} */
      const answer = await get(`/api/v1/sites/${siteId}/status`);
      const first = site === null;
      site = answer.site;
      const nowMs = Date.now();
      $(main, '[data-site-name]').textContent = site.name;
      $(main, '[data-crumb]').textContent = site.name;
      document.title = `${site.name} · hashwatt console`;
      $(main, '[data-site-badges]').innerHTML =
        `<span class="kind kind-${esc(site.kind)}">${esc(site.kind)}</span> <span class="status status-${esc(site.status)}" data-site-status>${esc(site.status)}</span>`;
      $(main, '[data-summary]').innerHTML = summaryHtml(site, nowMs);
      $(main, '[data-updated]').textContent =
        `Updated ${formatInstant(answer.as_of, nowMs)} · every ${STATUS_REFRESH_MS / 1000} s`;
      banner.hidden = true;
      if (first) buildCharts(site.kind);
    } catch (error) {
      if (isAbort(error)) return;
      if (error instanceof ApiError && error.status === 404) return siteMissing();
      showError('the site', error);
      throw error;
    }
  }

  // --- history -------------------------------------------------------------------------------
  /** @type {{ spec: ChartSpec & { metrics: string[] }, chart: Chart }[]} */
  let siteCharts = [];
  /** @type {Chart | null} */
  let energyChart = null;
  const chartsEl = $(main, '[data-charts]');
  /** @type {{ stop(): void, now(): void } | null} */
  let historyTimer = null;

  function buildCharts(/** @type {import('./api-types').SiteKind} */ kind) {
    for (const spec of siteChartSpecs(kind)) {
      const figure = document.createElement('figure');
      figure.dataset.chart = spec.name;
      chartsEl.append(figure);
      siteCharts.push({ spec, chart: createChart(figure, spec) });
    }
    const figure = document.createElement('figure');
    figure.dataset.chart = ENERGY_SPEC.name;
    chartsEl.append(figure);
    energyChart = createChart(figure, ENERGY_SPEC);
    restartHistory();
  }

  function restartHistory() {
    historyTimer?.stop();
    historyTimer = every(loadHistory, RANGES[rangeKey].refreshMs);
  }

  /** Requests of a superseded range are abandoned, so a slow 30 d answer never paints over 1 h. */
  let historyGeneration = 0;
  async function loadHistory() {
    if (!site) return;
    const generation = ++historyGeneration;
    const range = RANGES[rangeKey];
    const toMs = Date.now();
    const fromMs = toMs - range.ms;
    const step = range.siteStepS;
    try {
      const [series, energy] = await Promise.all([
        Promise.all(
          siteCharts.map(({ spec }) =>
            Promise.all(
              spec.metrics.map(
                (metric) =>
                  /** @type {Promise<Series>} */ (
                    get(`/api/v1/sites/${siteId}/series`, { metric, from: fromMs, to: toMs, step })
                  ),
              ),
            ),
          ),
        ),
        /** @type {Promise<import('./api-types').Energy>} */ (
          get(`/api/v1/sites/${siteId}/energy`, { from: fromMs, to: toMs, bucket: range.energyBucket })
        ),
      ]);
      if (generation !== historyGeneration || gone) return;
      /** @type {Set<string>} */
      const sources = new Set();
      siteCharts.forEach(({ spec, chart }, i) => {
        const answers = /** @type {Series[]} */ (series[i]);
        for (const a of answers) sources.add(a.source);
        const { xs, values } = alignPoints(answers.map((a) => a.points));
        chart.update({
          fromMs,
          toMs,
          xs,
          values,
          source: answers[0]?.source,
          stepS: answers[0]?.step_s,
          capacityW: spec.name === 'site-power' ? (site?.capacity_w ?? null) : null,
        });
      });
      const note = $(main, '[data-source-note]');
      note.textContent = `step ${formatDuration(step)} · ${[...sources].map(describeSource).join(', ')} · power chart: shaded green is surplus, red is a draw over available, dashed is contracted capacity`;
      note.dataset.source = [...sources].join(',');
      const bucketMs = range.energyBucket === 'hour' ? HOUR_MS : DAY_MS;
      const starts = energy.buckets.map((b) => Date.parse(b.start));
      energyChart?.update({
        fromMs: Math.min(fromMs, starts[0] ?? fromMs),
        toMs: Math.max(toMs, (starts.at(-1) ?? toMs) + bucketMs),
        xs: starts,
        values: [
          energy.buckets.map((b) => b.mining_kwh),
          energy.buckets.map((b) => b.ai_kwh),
          energy.buckets.map((b) => b.other_kwh),
        ],
        timeZone: energy.timezone,
      });
      const total = energy.buckets.reduce((n, b) => n + b.kwh, 0);
      const costs = energy.buckets.filter((b) => b.cost !== null);
      const coverage = energy.buckets.length
        ? energy.buckets.reduce((n, b) => n + b.coverage_ratio, 0) / energy.buckets.length
        : null;
      $(main, '[data-energy-totals]').textContent =
        `Energy in range: ${formatEnergy(total)} per ${range.energyBucket} buckets in ${energy.timezone} (mining ${formatEnergy(energy.buckets.reduce((n, b) => n + b.mining_kwh, 0))}, AI ${formatEnergy(energy.buckets.reduce((n, b) => n + b.ai_kwh, 0))}, other ${formatEnergy(energy.buckets.reduce((n, b) => n + b.other_kwh, 0))}) · data coverage ${formatRatio(coverage)}${costs.length ? ` · cost ${formatCost(costs.reduce((n, b) => n + (b.cost ?? 0), 0))}` : ''}`;
    } catch (error) {
      if (isAbort(error) || gone) return;
      if (error instanceof ApiError && error.status === 404) return siteMissing();
      showError('the history', error);
      throw error;
    }
  }

  function setRange(/** @type {RangeKey} */ key) {
    rangeKey = key;
    for (const b of main.querySelectorAll('[data-range]'))
      b.setAttribute('aria-pressed', String(/** @type {HTMLElement} */ (b).dataset.range === rangeKey));
    restartHistory();
    if (deviceId !== null) loadDeviceCharts();
  }
  for (const button of main.querySelectorAll('[data-range]')) {
    button.addEventListener('click', () => {
      setRange(/** @type {RangeKey} */ (/** @type {HTMLElement} */ (button).dataset.range));
      // The link says the range (a reload keeps it); replaced, not pushed: Back leaves the page.
      history.replaceState(
        null,
        '',
        `#/sites/${siteId}${deviceId === null ? '' : `/devices/${deviceId}`}?range=${rangeKey}`,
      );
    });
  }

  // --- devices -------------------------------------------------------------------------------
  const deviceRows = $(main, '[data-device-rows]');
  const deviceQ = /** @type {HTMLInputElement} */ ($(main, '[data-device-q]'));
  const deviceState = /** @type {HTMLSelectElement} */ ($(main, '[data-device-state]'));
  const deviceKind = /** @type {HTMLSelectElement} */ ($(main, '[data-device-kind]'));
  const prev = /** @type {HTMLButtonElement} */ ($(main, '[data-page-prev]'));
  const next = /** @type {HTMLButtonElement} */ ($(main, '[data-page-next]'));
  /** Cursors of the pages before this one (the first page's is null): "Previous" pops one. */
  /** @type {(string | null)[]} */
  let cursors = [];
  /** @type {string | null} */
  let cursor = null;
  /** @type {string | null} */
  let nextCursor = null;
  /** Devices seen in the listing, for the device panel's title and charts. */
  /** @type {Map<number, Device>} */
  const knownDevices = new Map();
  let devicesHtml = '';

  async function loadDevices() {
    try {
      /** @type {import('./api-types').DevicePage} */
      const page = await get(`/api/v1/sites/${siteId}/devices`, {
        state: deviceState.value,
        kind: deviceKind.value,
        q: deviceQ.value.trim(),
        limit: DEVICES_PER_PAGE,
        cursor,
      });
      const nowMs = Date.now();
      for (const d of page.devices) knownDevices.set(d.id, d);
      const html = page.devices.map((d) => deviceRowHtml(d, siteId, deviceId, nowMs)).join('');
      if (html !== devicesHtml) {
        deviceRows.innerHTML = html;
        devicesHtml = html;
      }
      $(main, '[data-device-empty]').hidden = page.devices.length > 0;
      nextCursor = page.next_cursor;
      prev.disabled = cursors.length === 0;
      next.disabled = nextCursor === null;
      $(main, '[data-page-label]').textContent = `page ${cursors.length + 1}`;
      if (deviceId !== null) {
        titleDevice();
        ensureDeviceCharts();
      }
    } catch (error) {
      if (isAbort(error)) return;
      if (error instanceof ApiError && error.status === 404) return siteMissing();
      showError('the devices', error);
      throw error;
    }
  }
  const fromFirstPage = () => {
    cursors = [];
    cursor = null;
    devicesTimer.now();
  };
  deviceQ.addEventListener('input', debounce(fromFirstPage, 300));
  deviceState.addEventListener('input', fromFirstPage);
  deviceKind.addEventListener('input', fromFirstPage);
  next.addEventListener('click', () => {
    if (nextCursor === null) return;
    cursors.push(cursor);
    cursor = nextCursor;
    devicesTimer.now();
  });
  prev.addEventListener('click', () => {
    if (cursors.length === 0) return;
    cursor = cursors.pop() ?? null;
    devicesTimer.now();
  });

  // --- one device ----------------------------------------------------------------------------
  const detail = $(main, '[data-device-detail]');
  const deviceChartsEl = $(main, '[data-device-charts]');
  /** @type {{ spec: ChartSpec & { metrics: string[] }, chart: Chart }[]} */
  let deviceCharts = [];
  /** The kind the device charts were built for; undefined: none built. */
  /** @type {import('./api-types').DeviceKind | null | undefined} */
  let deviceChartsKind;
  let deviceGeneration = 0;

  function titleDevice() {
    const d = deviceId === null ? undefined : knownDevices.get(deviceId);
    $(main, '[data-device-title]').textContent = d
      ? `${d.name} · ${d.kind}${d.model ? ` ${d.model}` : ''} · ${d.state}`
      : `Device ${deviceId}`;
  }

  /** The charts of the device's kind; a device not (yet) seen in the listing gets power and temperature. */
  function ensureDeviceCharts() {
    const kind = deviceId === null ? null : (knownDevices.get(deviceId)?.kind ?? null);
    if (kind !== deviceChartsKind) {
      deviceChartsKind = kind;
      buildDeviceCharts(kind);
    }
  }

  function buildDeviceCharts(/** @type {import('./api-types').DeviceKind | null} */ kind) {
    for (const { chart } of deviceCharts) chart.destroy();
    deviceChartsEl.replaceChildren();
    deviceCharts = deviceChartSpecs(kind).map((spec) => {
      const figure = document.createElement('figure');
      figure.dataset.chart = spec.name;
      deviceChartsEl.append(figure);
      return { spec, chart: createChart(figure, { ...spec, height: 180 }) };
    });
    loadDeviceCharts();
  }

  async function loadDeviceCharts() {
    if (deviceId === null) return;
    const generation = ++deviceGeneration;
    const range = RANGES[rangeKey];
    const toMs = Date.now();
    const fromMs = toMs - range.ms;
    const step = range.deviceStepS;
    try {
      const answers = await Promise.all(
        deviceCharts.map(({ spec }) =>
          Promise.all(
            spec.metrics.map(
              (metric) =>
                /** @type {Promise<Series>} */ (
                  get(`/api/v1/sites/${siteId}/devices/${deviceId}/series`, {
                    metric,
                    from: fromMs,
                    to: toMs,
                    step,
                  })
                ),
            ),
          ),
        ),
      );
      if (generation !== deviceGeneration || gone) return;
      /** @type {Set<string>} */
      const sources = new Set();
      deviceCharts.forEach(({ chart }, i) => {
        const list = /** @type {Series[]} */ (answers[i]);
        for (const a of list) sources.add(a.source);
        const { xs, values } = alignPoints(list.map((a) => a.points));
        chart.update({ fromMs, toMs, xs, values, source: list[0]?.source, stepS: list[0]?.step_s });
      });
      const note = $(main, '[data-device-source]');
      note.textContent = `${range.label} · step ${formatDuration(step)} · ${[...sources].map(describeSource).join(', ')}`;
      note.dataset.source = [...sources].join(',');
    } catch (error) {
      if (isAbort(error) || gone) return;
      if (error instanceof ApiError && error.status === 404) {
        $(main, '[data-device-title]').textContent = `No device ${deviceId} at this site`;
        return;
      }
      showError('the device history', error);
    }
  }

  function showDevice(/** @type {boolean} */ moveFocus) {
    for (const tr of deviceRows.querySelectorAll('tr')) {
      const selected = Number(/** @type {HTMLElement} */ (tr).dataset.deviceId) === deviceId;
      tr.classList.toggle('is-selected', selected);
      const link = tr.querySelector('a');
      if (selected) link?.setAttribute('aria-current', 'true');
      else link?.removeAttribute('aria-current');
    }
    devicesHtml = '';
    for (const { chart } of deviceCharts) chart.destroy();
    deviceCharts = [];
    deviceChartsEl.replaceChildren();
    deviceChartsKind = undefined;
    if (deviceId === null) {
      detail.hidden = true;
      return;
    }
    detail.hidden = false;
    ensureDeviceCharts();
    titleDevice();
    if (moveFocus) $(main, '[data-device-title]').focus();
  }

  // --- alerts --------------------------------------------------------------------------------
  /** @type {import('./api-types').Alert[]} */
  let alerts = [];
  /** The active silences covering the site (its own and those of every site), by id. */
  /** @type {Map<number, import('./api-types').Silence>} */
  let silences = new Map();
  let alertsHtml = '';
  function renderAlerts() {
    const nowMs = Date.now();
    const html = alerts
      .map((a) =>
        alertRowHtml(a, {
          nowMs,
          withSite: false,
          actions: permissions.actOnAlerts ? alertActionsHtml(a, permissions) : null,
          silences,
        }),
      )
      .join('');
    redrawKeepingFocus($(main, '[data-alert-rows]'), html, alertsHtml);
    alertsHtml = html;
    $(main, '[data-alerts-empty]').hidden = alerts.length > 0;
  }
  async function loadAlertHistory() {
    try {
      /** @type {[import('./api-types').AlertList, import('./api-types').SilenceList]} */
      const [answer, active] = await Promise.all([
        get(`/api/v1/sites/${siteId}/alerts`, { limit: ALERT_HISTORY_LIMIT }),
        get('/api/v1/silences', { site: siteId, state: 'active', limit: 1000 }),
      ]);
      if (gone) return;
      alerts = answer.alerts;
      silences = new Map(active.silences.map((s) => [s.id, s]));
      renderAlerts();
    } catch (error) {
      if (isAbort(error) || gone) return;
      if (error instanceof ApiError && error.status === 404) return siteMissing();
      showError('the alert history', error);
      throw error;
    }
  }
  const alertActions = mountAlertActions(main, context, {
    alertById: (id) => alerts.find((a) => a.id === id),
    sites: async () => (site ? [{ id: site.id, name: site.name }] : []),
    onChanged: () => loadAlertHistory().catch(() => {}),
  });

  timers.push(every(loadStatus, STATUS_REFRESH_MS));
  const devicesTimer = every(loadDevices, DEVICES_REFRESH_MS);
  timers.push(devicesTimer);
  const alertsTimer = every(loadAlertHistory, DEVICES_REFRESH_MS);
  timers.push(alertsTimer);
  if (deviceId !== null) showDevice(false);

  return {
    /** A device opened or closed: the same site, so everything else stays as it is. */
    update(/** @type {import('./app.js').Route} */ next) {
      if (next.page !== 'site' || gone) return;
      const changed = next.deviceId !== deviceId;
      deviceId = next.deviceId;
      if (changed) showDevice(true);
      if (next.range && next.range !== rangeKey) setRange(next.range);
    },
    unmount() {
      gone = true;
      for (const t of timers) t.stop();
      historyTimer?.stop();
      for (const c of controllers) c.abort();
      alertActions.unmount();
      for (const { chart } of siteCharts) chart.destroy();
      for (const { chart } of deviceCharts) chart.destroy();
      energyChart?.destroy();
      siteCharts = [];
      deviceCharts = [];
    },
  };
}
