// @ts-check
/**
 * The console's entry: sign-in, the header, and hash routing between the pages
 * (`#/` fleet, `#/sites/ID`, `#/sites/ID/devices/ID`, either with `?range=1h|24h|7d|30d`,
 * `#/alerts`, `#/alerts/resolved`, `#/alerts/silences`). The token lives in
 * sessionStorage and goes out only as `Authorization: Bearer`; any 401 comes back to sign-in.
 */
import { mountAlerts } from './alerts.js';
import { ApiError, apiGet, forgetToken, storedToken, storeToken, whenUnauthorized } from './api.js';
import { $, esc } from './dom.js';
import { mountFleet } from './fleet.js';
import { describeLocalZone, formatCount } from './format.js';
import { mountSite } from './site.js';

/** @typedef {import('./api-types').Session} Session */
/** @typedef {'open' | 'resolved' | 'silences'} AlertsView */
/** @typedef {'1h' | '24h' | '7d' | '30d'} HistoryRange */
/**
 * @typedef {{ page: 'fleet' } | { page: 'alerts', view: AlertsView } | { page: 'site', siteId: number, deviceId: number | null, range: HistoryRange | null } | { page: 'missing' }} Route
 */
/**
 * @typedef {object} Permissions
 * @property {boolean} actOnAlerts  may acknowledge the alerts of its sites, and silence them
 * @property {boolean} silenceEverySite  may create and expire a silence of every site
 */
/**
 * @typedef {object} PageContext
 * @property {Session} session
 * @property {Permissions} permissions
 * @property {(count: number) => void} setFiringCount  the badge beside "Alerts" in the header
 */
/** @typedef {{ update?: (route: Route) => void, unmount(): void }} MountedPage */

/**
 * What a token may do here. The API decides every request; this only leaves out what it would
 * refuse, so a viewer never meets a button that answers 403. Every token reads the alerts and
 * silences of its sites (docs/alerting.md); acting takes the admin or an operator token, and a
 * silence of every site an operator token of every site.
 * @param {Session} session
 * @returns {Permissions}
 */
export function permissionsOf(session) {
  const operates = session.role === 'admin' || session.role === 'operator';
  return {
    actOnAlerts: operates,
    silenceEverySite: session.role === 'admin' || (operates && session.site_ids === null),
  };
}

/** @returns {Route} */
export function parseRoute(/** @type {string} */ hash) {
  const path = hash.replace(/^#/, '') || '/';
  if (path === '/') return { page: 'fleet' };
  if (path === '/alerts') return { page: 'alerts', view: 'open' };
  if (path === '/alerts/resolved') return { page: 'alerts', view: 'resolved' };
  if (path === '/alerts/silences') return { page: 'alerts', view: 'silences' };
  // A history range in the link (the range buttons keep it there), so a reload or a shared link
  // opens the same view.
  const site = /^\/sites\/([1-9]\d{0,9})(?:\/devices\/([1-9]\d{0,9}))?(?:\?range=(1h|24h|7d|30d))?$/.exec(
    path,
  );
  if (site) {
    return {
      page: 'site',
      siteId: Number(site[1]),
      deviceId: site[2] ? Number(site[2]) : null,
      range: /** @type {HistoryRange | undefined} */ (site[3]) ?? null,
    };
  }
  return { page: 'missing' };
}

/**
 * Pages that are the same page with other details (a site and one of its devices, the alerts and
 * the silences) update in place.
 */
function pageKey(/** @type {Route} */ route) {
  return route.page === 'site' ? `site:${route.siteId}` : route.page;
}

const main = /** @type {HTMLElement} */ (document.getElementById('main'));
const topbar = $(document, '.topbar');
const footer = $(document, '[data-footer]');
const alertCount = $(document, '[data-alert-count]');

/** @type {{ key: string, page: MountedPage } | undefined} */
let mounted;
/** @type {PageContext | undefined} */
let context;

function unmountPage() {
  mounted?.page.unmount();
  mounted = undefined;
}

function describeSession(/** @type {Session} */ s) {
  const scope =
    s.site_ids === null
      ? 'all sites'
      : `${formatCount(s.site_ids.length)} site${s.site_ids.length === 1 ? '' : 's'}`;
  switch (s.role) {
    case 'admin':
      return 'admin';
    case 'site':
      return `site token · ${scope}`;
    default:
      return `${s.role}${s.token_name ? ` “${s.token_name}”` : ''} · ${scope}`;
  }
}

function showSignIn(/** @type {string} */ message = '') {
  unmountPage();
  context = undefined;
  topbar.hidden = true;
  footer.hidden = true;
  document.title = 'Sign in · hashwatt console';
  // method="post" and the CSP's form-action 'none': should the script ever not run, the browser
  // neither puts the token in a URL nor sends it anywhere.
  main.innerHTML = `<form class="signin panel" method="post" novalidate>
  <h1 tabindex="-1">hashwatt console</h1>
  <p>Sign in with an access token: an admin, operator or viewer token (<code>hwr_…</code>), or a site's ingest token.</p>
  <label for="signin-token">Access token</label>
  <input id="signin-token" name="token" type="password" autocomplete="off" spellcheck="false" required aria-describedby="signin-hint signin-error">
  <p class="hint" id="signin-hint">Kept in this browser tab only (session storage) and sent as <code>Authorization: Bearer</code>; closing the tab forgets it.</p>
  <p class="error" id="signin-error" role="alert" data-signin-error>${esc(message)}</p>
  <button type="submit" class="button-primary">Sign in</button>
</form>`;
  const form = /** @type {HTMLFormElement} */ ($(main, 'form'));
  const input = /** @type {HTMLInputElement} */ ($(main, '#signin-token'));
  const error = $(main, '[data-signin-error]');
  const submit = /** @type {HTMLButtonElement} */ ($(main, 'button[type=submit]'));
  input.focus();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      error.textContent = 'Enter a token.';
      input.focus();
      return;
    }
    submit.disabled = true;
    error.textContent = '';
    try {
      /** @type {Session} */
      const session = await apiGet('/console/session', { token });
      input.value = '';
      storeToken(token);
      start(session);
    } catch (e) {
      error.textContent =
        e instanceof ApiError && e.status === 401
          ? 'The service did not accept this token.'
          : `Could not reach the service: ${e instanceof Error ? e.message : String(e)}`;
      submit.disabled = false;
      input.select();
    }
  });
}

function start(/** @type {Session} */ session) {
  context = {
    session,
    permissions: permissionsOf(session),
    setFiringCount: (count) => {
      alertCount.hidden = count === 0;
      alertCount.textContent = formatCount(count);
      alertCount.setAttribute('aria-label', `${formatCount(count)} firing`);
    },
  };
  $(document, '[data-whoami]').textContent = describeSession(session);
  document.body.dataset.role = session.role;
  footer.innerHTML = `Times are local: ${esc(describeLocalZone())}. <a href="/docs">API reference</a>`;
  topbar.hidden = false;
  footer.hidden = false;
  route(false);
}

const TITLES = { fleet: 'Fleet', alerts: 'Alerts', site: 'Site', missing: 'Not found' };

/** Shows the page of the current hash; `moveFocus` after a navigation, for keyboard and screen-reader users. */
function route(/** @type {boolean} */ moveFocus) {
  if (!context) return;
  const next = parseRoute(location.hash);
  const key = pageKey(next);
  for (const link of document.querySelectorAll('[data-nav]')) {
    const nav = /** @type {HTMLElement} */ (link).dataset.nav;
    if (nav === next.page || (nav === 'fleet' && next.page === 'site'))
      link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (mounted && mounted.key === key && mounted.page.update) {
    mounted.page.update(next);
    return;
  }
  unmountPage();
  document.title = `${TITLES[next.page]} · hashwatt console`;
  main.replaceChildren();
  /** @type {MountedPage} */
  let page;
  switch (next.page) {
    case 'fleet':
      page = mountFleet(main, context);
      break;
    case 'alerts':
      page = mountAlerts(main, context, next.view);
      break;
    case 'site':
      page = mountSite(main, context, next);
      break;
    default:
      main.innerHTML = `<div class="panel"><h1 tabindex="-1">Not found</h1><p>No page here. <a href="#/">Back to the fleet</a>.</p></div>`;
      page = { unmount() {} };
  }
  mounted = { key, page };
  if (moveFocus) /** @type {HTMLElement | null} */ (main.querySelector('h1'))?.focus();
}

whenUnauthorized(() => {
  // A page's requests fail together; the first 401 signs out, the rest find it done.
  if (!context) return;
  forgetToken();
  showSignIn('The service no longer accepts this token (revoked, rotated or wrong). Sign in again.');
});

$(document, '[data-sign-out]').addEventListener('click', () => {
  forgetToken();
  showSignIn();
});

window.addEventListener('hashchange', () => route(true));

async function boot() {
  const token = storedToken();
  if (!token) return showSignIn();
  try {
    /** @type {Session} */
    const session = await apiGet('/console/session', { token });
    start(session);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      forgetToken();
      return showSignIn('The service no longer accepts this token. Sign in again.');
    }
    showSignIn(`Could not reach the service: ${e instanceof Error ? e.message : String(e)}`);
  }
}

boot();
