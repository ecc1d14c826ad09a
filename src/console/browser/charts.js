// @ts-check
/**
 * Time-series and bar charts on uPlot (served from its npm package). A chart is made once per
 * figure and then given new data with `update`, so a refresh redraws without a flicker. What each
 * chart holds is also published in `window.__console.charts[name]` (the points it was given, per
 * metric): the end-to-end test holds that to the API, and it is handy from devtools.
 */
import { esc } from './dom.js';
import { formatInstant, NONE } from './format.js';
import uPlot from './uPlot.esm.js';

/**
 * @typedef {object} SeriesSpec
 * @property {string} label
 * @property {string} metric  the API metric (or energy field) it draws
 * @property {string} color   a CSS custom property of console.css, e.g. `--chart-drawn`
 * @property {number[]} [dash]
 */

/**
 * @typedef {object} ChartSpec
 * @property {string} name     key in window.__console.charts
 * @property {string} title
 * @property {(value: number) => string} format  a value as the axis and legend show it
 * @property {SeriesSpec[]} series
 * @property {'line' | 'stacked-bars'} [style]
 * @property {boolean} [surplusBands]  shade available − drawn (series 0 drawn, 1 available)
 * @property {number} [height]
 */

/**
 * @typedef {object} ChartData
 * @property {number} fromMs
 * @property {number} toMs
 * @property {number[]} xs  epoch ms
 * @property {(number | null)[][]} values  one array per series, aligned with xs
 * @property {string} [source]
 * @property {number} [stepS]
 * @property {number | null} [capacityW]  a dashed line at the contracted capacity
 * @property {string} [timeZone]  label the time axis in this zone (energy: the site's), else the browser's
 */

/** @returns {import('./api-types').ConsoleHook} */
export function consoleHook() {
  window.__console ??= { charts: {}, fleet: null, fleetRenders: 0, fleetRenderMs: 0 };
  return window.__console;
}

/** A CSS custom property of the page's theme. */
function themeColor(/** @type {string} */ name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

/**
 * Aligns several `[t, v]` series on one time axis (the union of their steps).
 * @param {[number, number | null][][]} seriesPoints
 * @returns {{ xs: number[], values: (number | null)[][] }}
 */
export function alignPoints(seriesPoints) {
  const times = new Set();
  for (const points of seriesPoints) for (const [t] of points) times.add(t);
  const xs = [...times].sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const values = seriesPoints.map((points) => {
    /** @type {(number | null)[]} */
    const column = new Array(xs.length).fill(null);
    for (const [t, v] of points) column[/** @type {number} */ (index.get(t))] = v;
    return column;
  });
  return { xs, values };
}

/**
 * A chart in `figure` (a `<figure>`: its caption, the plot, and a text summary for screen readers).
 * @param {HTMLElement} figure
 * @param {ChartSpec} spec
 */
export function createChart(figure, spec) {
  const height = spec.height ?? 220;
  figure.classList.add('chart');
  figure.innerHTML = `<figcaption><span class="chart-title">${esc(spec.title)}</span><span class="chart-note" data-chart-note></span></figcaption>
    <div class="chart-plot" aria-hidden="true"></div>
    <p class="chart-empty" hidden>No data in this range.</p>
    <p class="sr-only" data-chart-summary></p>`;
  const plot = /** @type {HTMLElement} */ (figure.querySelector('.chart-plot'));
  const empty = /** @type {HTMLElement} */ (figure.querySelector('.chart-empty'));
  const summary = /** @type {HTMLElement} */ (figure.querySelector('[data-chart-summary]'));
  const stacked = spec.style === 'stacked-bars';

  /** @type {ChartData} */
  let current = {
    fromMs: Date.now() - 3_600_000,
    toMs: Date.now(),
    xs: [],
    values: spec.series.map(() => []),
  };
  /** The values as given: stacked bars draw running sums, the legend and the hook show these. */
  let given = current.values;

  const text = themeColor('--text-muted');
  const grid = themeColor('--grid');
  const axis = {
    stroke: text,
    grid: { stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1 },
    font: '12px system-ui, sans-serif',
  };
  const instant = (/** @type {number} */ ms) =>
    current.timeZone
      ? new Intl.DateTimeFormat(undefined, {
          month: 'short',
          day: 'numeric',
          hour: '2-digit',
          minute: '2-digit',
          timeZone: current.timeZone,
          timeZoneName: 'short',
        }).format(ms)
      : formatInstant(ms);

  // Stacked bars are drawn tallest first (the running sum of every series), each later one over it.
  const drawOrder = stacked ? [...spec.series.keys()].reverse() : [...spec.series.keys()];

  /** @type {uPlot.Series[]} */
  const series = [
    { value: (_u, v) => (v === null ? NONE : instant(v)) },
    ...drawOrder.map((i) => {
      const s = /** @type {SeriesSpec} */ (spec.series[i]);
      const color = themeColor(s.color);
      /** @type {uPlot.Series} */
      const out = {
        label: s.label,
        stroke: color,
        width: stacked ? 0 : 2,
        value: (_u, _v, _si, idx) => {
          const v = idx === null ? null : (given[i]?.[idx] ?? null);
          return v === null ? NONE : spec.format(v);
        },
        points: { show: false },
      };
      if (s.dash) out.dash = s.dash;
      if (stacked) {
        out.fill = color;
        out.paths = uPlot.paths.bars?.({ size: [0.7, 64], align: 1 });
      }
      return out;
    }),
  ];

  /** @type {uPlot.Options} */
  const options = {
    width: Math.max(280, plot.clientWidth || 600),
    height,
    ms: 1,
    series,
    scales: {
      x: { time: true, range: () => [current.fromMs, current.toMs] },
      y: {
        range: (_u, min, max) => {
          const top = Math.max(max, current.capacityW ?? 0, 0);
          return [Math.min(0, min), top > 0 ? top * 1.08 : 1];
        },
      },
    },
    axes: [{ ...axis }, { ...axis, size: 72, values: (_u, splits) => splits.map((v) => spec.format(v)) }],
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    hooks: {
      draw: [
        (u) => {
          const capacity = current.capacityW;
          if (capacity === null || capacity === undefined) return;
          const y = u.valToPos(capacity, 'y', true);
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = themeColor('--chart-capacity');
          ctx.lineWidth = Math.max(1, devicePixelRatio);
          ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
          ctx.beginPath();
          ctx.moveTo(u.bbox.left, y);
          ctx.lineTo(u.bbox.left + u.bbox.width, y);
          ctx.stroke();
          ctx.restore();
        },
      ],
    },
  };
  if (spec.surplusBands) {
    // Series 1 is drawn, 2 available: surplus where available is above drawn, a breach below.
    options.bands = [
      { series: [2, 1], fill: themeColor('--chart-surplus-fill'), dir: -1 },
      { series: [1, 2], fill: themeColor('--chart-over-fill'), dir: -1 },
    ];
  }
  options.tzDate = (ts) => (current.timeZone ? uPlot.tzDate(new Date(ts), current.timeZone) : new Date(ts));

  const chart = new uPlot(options, [[], ...spec.series.map(() => [])], plot);
  const resize = new ResizeObserver(() => {
    const width = plot.clientWidth;
    if (width > 0 && width !== chart.width) chart.setSize({ width, height });
  });
  resize.observe(plot);

  return {
    /** @param {ChartData} data */
    update(data) {
      current = data;
      given = data.values;
      let drawn = data.values;
      if (stacked) {
        /** @type {(number | null)[][]} */
        const sums = [];
        let running = data.xs.map(() => 0);
        for (const column of data.values) {
          running = running.map((r, k) => r + (column[k] ?? 0));
          sums.push(running);
        }
        drawn = sums;
      }
      chart.setData(/** @type {uPlot.AlignedData} */ ([data.xs, ...drawOrder.map((i) => drawn[i] ?? [])]));
      const hasData = data.values.some((column) => column.some((v) => v !== null));
      empty.hidden = hasData;
      figure.classList.toggle('is-empty', !hasData);
      summary.textContent = hasData
        ? `${spec.title}, latest: ${spec.series
            .map((s, i) => {
              const column = data.values[i] ?? [];
              const last = column.findLast((v) => v !== null);
              return `${s.label} ${last === undefined || last === null ? NONE : spec.format(last)}`;
            })
            .join(', ')}.`
        : `${spec.title}: no data in this range.`;
      const note = /** @type {HTMLElement} */ (figure.querySelector('[data-chart-note]'));
      note.textContent = data.timeZone ? `times in ${data.timeZone}` : '';
      consoleHook().charts[spec.name] = {
        title: spec.title,
        source: data.source ?? null,
        step_s: data.stepS ?? null,
        from_ms: data.fromMs,
        to_ms: data.toMs,
        series: Object.fromEntries(
          spec.series.map((s, i) => {
            const column = data.values[i] ?? [];
            /** @type {[number, number][]} */
            const points = [];
            column.forEach((v, k) => {
              if (v !== null) points.push([/** @type {number} */ (data.xs[k]), v]);
            });
            return [s.metric, points];
          }),
        ),
      };
    },
    destroy() {
      resize.disconnect();
      chart.destroy();
      delete consoleHook().charts[spec.name];
    },
  };
}

/** @typedef {ReturnType<typeof createChart>} Chart */
