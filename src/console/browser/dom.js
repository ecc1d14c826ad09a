// @ts-check
/**
 * Small DOM helpers. Pages build their markup as strings (one innerHTML per table, not a node per
 * cell): every value that came from the API goes through `esc`, which is what keeps a site or
 * device name from becoming markup.
 */

const ESCAPES = /** @type {Record<string, string>} */ ({
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
});

/** Text safe inside markup and inside a quoted attribute. */
export function esc(/** @type {unknown} */ value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/**
 * The one element matching `selector` under `root`; a missing one is a bug in the page's own markup.
 * @template {Element} [E=HTMLElement]
 * @param {ParentNode} root
 * @param {string} selector
 * @returns {E}
 */
export function $(root, selector) {
  const found = root.querySelector(selector);
  if (!found) throw new Error(`console: no ${selector}`);
  return /** @type {E} */ (/** @type {unknown} */ (found));
}

/** Calls `fn` once input has paused for `ms`. */
export function debounce(/** @type {() => void} */ fn, /** @type {number} */ ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

/**
 * Runs `load` now and then every `intervalMs` after each run ends (never two at once), skipping
 * runs while the tab is hidden. `stop()` ends it.
 * @param {() => Promise<void>} load
 * @param {number} intervalMs
 */
export function every(load, intervalMs) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  let stopped = false;
  const run = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await load();
      } catch {
        // `load` reports its own failures on the page; the next run tries again.
      }
    }
    if (!stopped) timer = setTimeout(run, intervalMs);
  };
  const onVisible = () => {
    if (!document.hidden && !stopped) {
      clearTimeout(timer);
      run();
    }
  };
  document.addEventListener('visibilitychange', onVisible);
  run();
  return {
    /** Runs once more now (after a filter change, say), then on the usual rhythm. */
    now() {
      clearTimeout(timer);
      run();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    },
  };
}
