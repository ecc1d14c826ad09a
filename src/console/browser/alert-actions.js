// @ts-check
/**
 * Acting on alerts, for the admin and operator tokens (docs/alerting.md): acknowledging a firing
 * alert with a comment, taking the acknowledgement back, silencing a site's alert (or every alert,
 * or every site) for a while, and expiring a silence early. The alerts page and a site's page share
 * it. The forms are `<dialog>`s outside the tables: a refresh redrawing the rows never takes a
 * half-written comment with it, and focus goes back to the button that opened them, or to its
 * redrawn twin. What each token sees is read-only for everyone else: who acknowledged, and that a
 * silence holds an alert.
 */
import { ApiError, apiSend } from './api.js';
import { $, esc } from './dom.js';
import { formatDuration, formatInstant, NONE } from './format.js';

/** @typedef {import('./api-types').Alert} Alert */
/** @typedef {import('./api-types').Silence} Silence */
/** @typedef {{ id: number, name: string }} SiteRef */

/** The engine's alert names, the only ones a silence may name (docs/alerting.md). */
export const ALERT_NAMES = /** @type {const} */ ([
  'SiteDown',
  'PowerOverAvailable',
  'PowerSurplus',
  'DevicesDown',
  'HashrateLow',
  'GpuIdle',
]);

const HOUR_MS = 3_600_000;
/** The API refuses a silence ending further ahead: a longer one is a rule switched off. */
const MAX_SILENCE_MS = 90 * 24 * HOUR_MS;
const MAX_COMMENT = 1000;

/** The durations offered, and "until" an instant of the user's choosing. */
const DURATIONS = /** @type {const} */ ([
  ['1h', '1 hour', HOUR_MS],
  ['4h', '4 hours', 4 * HOUR_MS],
  ['24h', '24 hours', 24 * HOUR_MS],
]);

/** "in 3 h 59 min" for an instant ahead, "ended" for one past. */
export function formatIn(/** @type {number} */ thenMs, /** @type {number} */ nowMs) {
  return thenMs <= nowMs ? 'ended' : `in ${formatDuration((thenMs - nowMs) / 1000)}`;
}

/**
 * Who acknowledged an alert and whether a silence holds it, for every token. `silences` gives
 * the end of the silences it knows (the active ones); an unknown id is shown by its number only.
 * @param {Alert} a
 * @param {Map<number, Silence>} silences
 * @param {number} nowMs
 */
export function handlingHtml(a, silences, nowMs) {
  const parts = [];
  const ack = a.acknowledgement;
  if (ack) {
    parts.push(
      `<div class="ack" data-ack><span class="chip chip-ack">acknowledged</span> <span class="ack-by">by <strong data-ack-by>${esc(ack.by)}</strong></span><span class="sub" data-ack-at>${esc(formatInstant(ack.at, nowMs))}</span>${ack.comment ? `<q class="ack-comment" data-ack-comment>${esc(ack.comment)}</q>` : ''}</div>`,
    );
  }
  if (a.silenced_by.length > 0) {
    const ends = a.silenced_by
      .map((id) => silences.get(id))
      .filter((s) => s !== undefined)
      .map((s) => Date.parse(s.effective_ends_at));
    const until = ends.length > 0 ? Math.max(...ends) : null;
    parts.push(
      `<div class="silenced" data-silenced="${a.silenced_by.join(',')}"><span class="chip chip-silenced">silenced</span>${until === null ? '' : `<span class="sub">until ${esc(formatInstant(until, nowMs))}</span>`}<a class="sub" href="#/alerts/silences">by silence ${a.silenced_by.map((id) => `#${id}`).join(', ')}</a></div>`,
    );
  }
  if (parts.length > 0) return parts.join('');
  return a.state === 'firing'
    ? '<span class="muted">not acknowledged</span>'
    : `<span class="muted">${NONE}</span>`;
}

/**
 * The buttons of one alert, for a token that may act: acknowledge (firing) or take it back, and
 * silence (firing or pending). A resolved alert has none. Each button names its alert for screen
 * readers, where a column of "Acknowledge…" would otherwise all sound alike.
 * @param {Alert} a
 * @param {import('./app.js').Permissions} permissions
 */
export function alertActionsHtml(a, permissions) {
  const target = esc(`${a.alertname} at ${a.site.name}`);
  const buttons = [];
  if (permissions.actOnAlerts && a.state === 'firing') {
    buttons.push(
      a.acknowledgement
        ? `<button type="button" class="button-small" data-action="unack" data-alert-id="${a.id}" aria-label="Un-acknowledge ${target}">Un-acknowledge</button>`
        : `<button type="button" class="button-small" data-action="ack" data-alert-id="${a.id}" aria-haspopup="dialog" aria-label="Acknowledge ${target}">Acknowledge…</button>`,
    );
  }
  if (permissions.actOnAlerts && a.state !== 'resolved') {
    buttons.push(
      `<button type="button" class="button-small" data-action="silence" data-alert-id="${a.id}" aria-haspopup="dialog" aria-label="Silence ${target}">Silence…</button>`,
    );
  }
  return `<div class="alert-actions" data-alert-actions="${a.id}">${buttons.join('')}</div>`;
}

/** Whether this token may expire `s` (the API would refuse the others). */
export function mayExpire(/** @type {Silence} */ s, /** @type {import('./app.js').Permissions} */ p) {
  return p.actOnAlerts && s.state === 'active' && (s.site !== null || p.silenceEverySite);
}

/** `value` for an `<input type="datetime-local">`: the browser's local wall time, to the minute. */
function localInputValue(/** @type {number} */ ms) {
  const d = new Date(ms);
  const pad = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

const DIALOGS_HTML = `<dialog class="dialog" data-ack-dialog aria-labelledby="ack-title" aria-describedby="ack-target">
  <form method="post" novalidate data-ack-form>
    <h2 id="ack-title">Acknowledge alert</h2>
    <p id="ack-target" data-ack-target></p>
    <label for="ack-comment">Comment <span class="muted">(optional)</span></label>
    <textarea id="ack-comment" rows="3" maxlength="${MAX_COMMENT}" aria-describedby="ack-hint ack-error"></textarea>
    <p class="hint" id="ack-hint">Tells everyone that someone is on it, with your token's name. Notifications go on; a silence stops them. Ctrl+Enter sends.</p>
    <p class="error" id="ack-error" role="alert" data-dialog-error></p>
    <div class="dialog-buttons"><button type="submit" class="button-primary">Acknowledge</button><button type="button" data-dialog-cancel>Cancel</button></div>
  </form>
</dialog>
<dialog class="dialog" data-silence-dialog aria-labelledby="silence-title" aria-describedby="silence-hint">
  <form method="post" novalidate data-silence-form>
    <h2 id="silence-title">Silence notifications</h2>
    <p class="hint" id="silence-hint">Alerts a silence holds still fire and are listed, marked silenced; webhooks and Alertmanager hear nothing of them until it ends.</p>
    <div class="field-row">
      <div class="field"><label for="silence-site">Site</label><select id="silence-site" data-silence-site></select></div>
      <div class="field"><label for="silence-alertname">Alert</label><select id="silence-alertname" data-silence-alertname><option value="">every alert</option>${ALERT_NAMES.map((n) => `<option value="${n}">${n}</option>`).join('')}</select></div>
    </div>
    <fieldset class="durations">
      <legend>For</legend>
      ${DURATIONS.map(([key, label]) => `<label class="choice"><input type="radio" name="silence-duration" value="${key}"${key === '4h' ? ' checked' : ''}> ${label}</label>`).join('')}
      <label class="choice"><input type="radio" name="silence-duration" value="until" data-silence-until-choice> until</label>
      <label class="until-label" for="silence-until">Until (your local time)</label>
      <input type="datetime-local" id="silence-until" data-silence-until>
    </fieldset>
    <p class="ends" data-silence-ends aria-live="polite"></p>
    <label for="silence-comment">Comment <span class="muted">(required: why)</span></label>
    <textarea id="silence-comment" rows="3" maxlength="${MAX_COMMENT}" required aria-required="true" aria-describedby="silence-error"></textarea>
    <p class="error" id="silence-error" role="alert" data-dialog-error></p>
    <div class="dialog-buttons"><button type="submit" class="button-primary">Silence</button><button type="button" data-dialog-cancel>Cancel</button></div>
  </form>
</dialog>
<div class="action-status" role="status" data-action-status hidden></div>`;

/**
 * @typedef {object} ActionHost
 * @property {(id: number) => Alert | undefined} alertById  the alert of a row's button
 * @property {(id: number) => Silence | undefined} [silenceById]  the silence of a row's button
 * @property {() => Promise<SiteRef[]>} [sites]  every site the token reads, for a new silence
 * @property {() => Promise<void>} onChanged  reloads what the page shows after an action
 */

/**
 * The dialogs and the buttons' behaviour on `main` (the page's root): call once per mounted page,
 * `unmount()` when it goes.
 * @param {HTMLElement} main
 * @param {import('./app.js').PageContext} context
 * @param {ActionHost} host
 */
export function mountAlertActions(main, context, host) {
  const { permissions } = context;
  const holder = document.createElement('div');
  holder.innerHTML = DIALOGS_HTML;
  main.append(holder);
  const status = $(holder, '[data-action-status]');
  const ackDialog = /** @type {HTMLDialogElement} */ ($(holder, '[data-ack-dialog]'));
  const ackForm = /** @type {HTMLFormElement} */ ($(ackDialog, 'form'));
  const ackComment = /** @type {HTMLTextAreaElement} */ ($(ackDialog, '#ack-comment'));
  const silenceDialog = /** @type {HTMLDialogElement} */ ($(holder, '[data-silence-dialog]'));
  const silenceForm = /** @type {HTMLFormElement} */ ($(silenceDialog, 'form'));
  const siteSelect = /** @type {HTMLSelectElement} */ ($(silenceDialog, '[data-silence-site]'));
  const alertSelect = /** @type {HTMLSelectElement} */ ($(silenceDialog, '[data-silence-alertname]'));
  const untilInput = /** @type {HTMLInputElement} */ ($(silenceDialog, '[data-silence-until]'));
  const silenceComment = /** @type {HTMLTextAreaElement} */ ($(silenceDialog, '#silence-comment'));
  const endsNote = $(silenceDialog, '[data-silence-ends]');
  let gone = false;

  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let statusTimer;
  /** Says what an action did (or why it failed) in a live region, for a while. */
  function announce(/** @type {string} */ text, /** @type {boolean} */ failed = false) {
    clearTimeout(statusTimer);
    status.hidden = false;
    status.textContent = text;
    status.classList.toggle('is-error', failed);
    statusTimer = setTimeout(() => {
      status.hidden = true;
      status.textContent = '';
    }, 8000);
  }

  /**
   * Focus back where the user was: `selector` (the button or its redrawn twin), else the page's
   * heading, so a keyboard user is never dropped at the top of the document.
   */
  function refocus(/** @type {string[]} */ selectors) {
    if (gone) return;
    const active = document.activeElement;
    if (active && active !== document.body && main.contains(active) && active.isConnected) return;
    for (const selector of selectors) {
      const target = /** @type {HTMLElement | null} */ (main.querySelector(selector));
      if (target) return target.focus();
    }
    /** @type {HTMLElement | null} */ (main.querySelector('h1'))?.focus();
  }

  /** What to focus after an action on alert `id`: a button of its row, else the row's name. */
  const alertFocus = (/** @type {number} */ id) => [
    `[data-alert-actions="${id}"] button`,
    `tr[data-alert-id="${id}"] th`,
  ];

  const describeError = (/** @type {unknown} */ error) =>
    error instanceof ApiError ? error.message : error instanceof Error ? error.message : String(error);

  /** @type {{ selectors: string[] }} */
  let opener = { selectors: [] };
  for (const dialog of [ackDialog, silenceDialog]) {
    $(dialog, '[data-dialog-cancel]').addEventListener('click', () => dialog.close());
    // Enter in a comment is a new line; Ctrl+Enter (⌘+Enter) sends, as in most comment boxes.
    dialog.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey))
        /** @type {HTMLFormElement} */ ($(dialog, 'form')).requestSubmit();
    });
    // Escape closes it too (the browser's `cancel`); either way focus returns to the opener.
    dialog.addEventListener('close', () => refocus(opener.selectors));
  }

  // --- acknowledge ----------------------------------------------------------------------------
  /** @type {Alert | undefined} */
  let acking;
  function openAck(/** @type {Alert} */ alert) {
    acking = alert;
    $(ackDialog, '[data-ack-target]').textContent =
      `${alert.alertname} at ${alert.site.name}, firing since ${formatInstant(alert.fired_at ?? alert.started_at)}.`;
    ackComment.value = '';
    $(ackDialog, '[data-dialog-error]').textContent = '';
    ackDialog.showModal();
    ackComment.focus();
  }
  ackForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const alert = acking;
    if (!alert) return;
    const submit = /** @type {HTMLButtonElement} */ ($(ackForm, 'button[type=submit]'));
    const comment = ackComment.value.trim();
    submit.disabled = true;
    try {
      await apiSend('POST', `/api/v1/alerts/${alert.id}/ack`, comment ? { comment } : {});
      opener = { selectors: alertFocus(alert.id) };
      ackDialog.close();
      announce(`Acknowledged ${alert.alertname} at ${alert.site.name}.`);
      await host.onChanged();
      refocus(opener.selectors);
    } catch (error) {
      $(ackDialog, '[data-dialog-error]').textContent = `Not acknowledged: ${describeError(error)}`;
    } finally {
      submit.disabled = false;
    }
  });

  async function unacknowledge(/** @type {Alert} */ alert, /** @type {HTMLButtonElement} */ button) {
    button.disabled = true;
    try {
      await apiSend('DELETE', `/api/v1/alerts/${alert.id}/ack`);
      announce(`Took back the acknowledgement of ${alert.alertname} at ${alert.site.name}.`);
    } catch (error) {
      announce(`Could not un-acknowledge ${alert.alertname}: ${describeError(error)}`, true);
    } finally {
      button.disabled = false;
    }
    await host.onChanged();
    refocus(alertFocus(alert.id));
  }

  // --- silence --------------------------------------------------------------------------------
  const durationChoice = () =>
    /** @type {HTMLInputElement | null} */ (
      silenceForm.querySelector('input[name="silence-duration"]:checked')
    )?.value ?? '4h';

  /** The end the form describes, in epoch ms; NaN when "until" holds no valid instant. */
  function chosenEndMs(/** @type {number} */ nowMs) {
    const choice = durationChoice();
    const fixed = DURATIONS.find(([key]) => key === choice);
    if (fixed) return nowMs + fixed[2];
    // datetime-local has no zone: the Date constructor reads it as local time, as the label says.
    return untilInput.value ? new Date(untilInput.value).getTime() : Number.NaN;
  }

  function showEnds() {
    const nowMs = Date.now();
    const endMs = chosenEndMs(nowMs);
    endsNote.textContent = Number.isFinite(endMs)
      ? `Ends ${formatInstant(endMs, nowMs)} (${formatIn(endMs, nowMs)}).`
      : 'Pick the instant it ends.';
  }
  silenceForm.addEventListener('input', showEnds);
  // Choosing an instant is choosing "until".
  const untilChoice = /** @type {HTMLInputElement} */ ($(silenceDialog, '[data-silence-until-choice]'));
  for (const type of ['focus', 'input']) {
    untilInput.addEventListener(type, () => {
      untilChoice.checked = true;
      showEnds();
    });
  }

  /**
   * Opens the silence form, prefilled: an alert's site and name, a site and every alert, or
   * (`site` undefined) a blank one for any site the token reads.
   * @param {{ site?: SiteRef, alertname?: string | null, sites?: SiteRef[] }} prefill
   */
  function openSilence(prefill) {
    const choices = new Map((prefill.sites ?? []).map((s) => [s.id, s]));
    if (prefill.site) choices.set(prefill.site.id, prefill.site);
    const sorted = [...choices.values()].sort((a, b) => a.name.localeCompare(b.name));
    siteSelect.innerHTML = [
      ...sorted.map((s) => `<option value="${s.id}">${esc(s.name)}</option>`),
      ...(permissions.silenceEverySite ? ['<option value="">every site</option>'] : []),
    ].join('');
    siteSelect.value = prefill.site ? String(prefill.site.id) : (siteSelect.options[0]?.value ?? '');
    alertSelect.value = prefill.alertname ?? '';
    untilInput.value = localInputValue(Date.now() + 8 * HOUR_MS);
    untilInput.min = localInputValue(Date.now());
    untilInput.max = localInputValue(Date.now() + MAX_SILENCE_MS);
    silenceComment.value = '';
    $(silenceDialog, '[data-dialog-error]').textContent = '';
    showEnds();
    silenceDialog.showModal();
    silenceComment.focus();
  }

  silenceForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const error = $(silenceDialog, '[data-dialog-error]');
    const nowMs = Date.now();
    const endMs = chosenEndMs(nowMs);
    const comment = silenceComment.value.trim();
    if (siteSelect.options.length === 0) {
      error.textContent = 'This token reads no site to silence.';
      return siteSelect.focus();
    }
    if (!Number.isFinite(endMs) || endMs <= nowMs) {
      error.textContent = 'Pick an end in the future.';
      return untilInput.focus();
    }
    if (endMs - nowMs > MAX_SILENCE_MS) {
      error.textContent = 'A silence lasts at most 90 days.';
      return untilInput.focus();
    }
    if (!comment) {
      error.textContent = 'Say why in the comment: it is what the next person on shift reads.';
      return silenceComment.focus();
    }
    const site = siteSelect.value === '' ? null : Number(siteSelect.value);
    const alertname = alertSelect.value === '' ? null : alertSelect.value;
    const submit = /** @type {HTMLButtonElement} */ ($(silenceForm, 'button[type=submit]'));
    submit.disabled = true;
    try {
      /** @type {{ silence: Silence }} */
      const answer = await apiSend('POST', '/api/v1/silences', {
        site,
        alertname,
        ends_at: new Date(endMs).toISOString(),
        comment,
      });
      silenceDialog.close();
      const s = answer.silence;
      announce(
        `Silence #${s.id}: ${s.alertname ?? 'every alert'} at ${s.site?.name ?? 'every site'} until ${formatInstant(s.effective_ends_at)}.`,
      );
      await host.onChanged();
      refocus(opener.selectors);
    } catch (e) {
      error.textContent = `Not silenced: ${describeError(e)}`;
    } finally {
      submit.disabled = false;
    }
  });

  async function expire(/** @type {Silence} */ silence, /** @type {HTMLButtonElement} */ button) {
    button.disabled = true;
    try {
      await apiSend('DELETE', `/api/v1/silences/${silence.id}`);
      announce(`Silence #${silence.id} expired: its alerts notify again.`);
    } catch (error) {
      announce(`Could not expire silence #${silence.id}: ${describeError(error)}`, true);
    } finally {
      button.disabled = false;
    }
    await host.onChanged();
    refocus([`tr[data-silence-id="${silence.id}"] button`, '[data-action="new-silence"]']);
  }

  // One listener for every button of the page's tables, which are redrawn as the data changes.
  /** @param {MouseEvent} event */
  const onClick = async (event) => {
    const button = /** @type {HTMLElement | null} */ (event.target)?.closest?.('button[data-action]');
    if (!(button instanceof HTMLButtonElement) || !main.contains(button)) return;
    const action = button.dataset.action;
    const alert = button.dataset.alertId ? host.alertById(Number(button.dataset.alertId)) : undefined;
    // Back to this very button after its form closes, else to what its row has then.
    if (alert)
      opener = {
        selectors: [`[data-action="${action}"][data-alert-id="${alert.id}"]`, ...alertFocus(alert.id)],
      };
    if (action === 'ack' && alert) openAck(alert);
    else if (action === 'unack' && alert) await unacknowledge(alert, button);
    else if (action === 'silence' && alert) openSilence({ site: alert.site, alertname: alert.alertname });
    else if (action === 'new-silence') {
      opener = { selectors: ['[data-action="new-silence"]'] };
      button.disabled = true;
      try {
        const sites = host.sites ? await host.sites() : [];
        // A site's own "Silence this site…" names it; the silences view's button names none.
        const site = sites.find((s) => String(s.id) === button.dataset.siteId);
        openSilence({ sites, ...(site && { site, alertname: null }) });
      } catch (error) {
        announce(`Could not list the sites: ${describeError(error)}`, true);
      } finally {
        button.disabled = false;
      }
    } else if (action === 'expire') {
      const silence = host.silenceById?.(Number(button.dataset.silenceId));
      if (silence) await expire(silence, button);
    }
  };
  main.addEventListener('click', onClick);

  return {
    unmount() {
      gone = true;
      clearTimeout(statusTimer);
      main.removeEventListener('click', onClick);
      holder.remove();
    },
  };
}

/**
 * Redraws `container` with `html` unless it already holds it, keeping keyboard focus on the same
 * button (by its action and alert or silence) when the button was inside and is drawn again.
 * @param {HTMLElement} container
 * @param {string} html
 * @param {string} previous  what the container held
 */
export function redrawKeepingFocus(container, html, previous) {
  if (html === previous) return;
  const active = /** @type {HTMLElement | null} */ (document.activeElement);
  const within = active && container.contains(active) ? active : null;
  const key = within?.dataset.action
    ? `[data-action="${within.dataset.action}"]${within.dataset.alertId ? `[data-alert-id="${within.dataset.alertId}"]` : ''}${within.dataset.silenceId ? `[data-silence-id="${within.dataset.silenceId}"]` : ''}`
    : null;
  container.innerHTML = html;
  if (key) /** @type {HTMLElement | null} */ (container.querySelector(key))?.focus();
}
