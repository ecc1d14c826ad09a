import { z } from 'zod';
import { HashwattError } from '../errors.ts';
import { canonicalId, countParam, idParam, MAX_ID, storableString } from '../http/validate.ts';
import { parseRfc3339 } from '../ingest/reading.ts';
import { actorOf, mayOperate, mayRead, type Reader, readableSiteIds } from '../read/reader.ts';
import {
  expireSilence as expireSilenceRow,
  findAlert,
  findSilence,
  insertSilence,
  listSilences as listSilenceRows,
  setAlertAcknowledgement,
} from '../storage/alerts.ts';
import type { Storage } from '../storage/database.ts';
import { findSite, findSiteByName } from '../storage/sites.ts';
import { ALERT_NAMES } from './rules.ts';
import { MAX_SILENCE_MS, SILENCE_STATES } from './silences.ts';
import { type AlertView, type SilenceView, viewAlert, viewSilence } from './view.ts';

/**
 * Acknowledging and silencing alerts (docs/alerting.md): services of the form verbEntity({ ... }),
 * deciding who may do what with `mayRead` and `mayOperate` (src/read/reader.ts). A site the caller
 * may not read answers exactly as one that does not exist (404); one it reads but may not act on,
 * 403 `forbidden`.
 */

/** Longest comment on an acknowledgement or a silence. */
const MAX_COMMENT = 1000;

export const AlertIdParams = z.strictObject({ id: idParam });
export const SilenceIdParams = z.strictObject({ id: idParam });

/** Body of `POST /api/v1/alerts/:id/ack`. */
export const AcknowledgeRequest = z.strictObject({
  /** Why, or what is being done about it. */
  comment: storableString(MAX_COMMENT).optional(),
});
export type AcknowledgeRequest = z.infer<typeof AcknowledgeRequest>;

const comment = storableString(MAX_COMMENT).regex(/\S/, 'a comment says why: it cannot be blank');

/** An RFC 3339 instant with its offset (the ingest's strict parser), as epoch ms. */
const instant = z
  .string()
  .max(64)
  .transform((raw, ctx) => {
    const parsed = parseRfc3339(raw);
    if (!parsed.ok) {
      ctx.addIssue({ code: 'custom', message: `an RFC 3339 timestamp with its offset: ${parsed.message}` });
      return z.NEVER;
    }
    return Math.floor(parsed.value / 1000);
  });

/** Body of `POST /api/v1/silences`: `site` and `alertname` are required, `null` meaning every. */
export const NewSilenceRequest = z.strictObject({
  /** A site id, or null for every site. */
  site: z.number().int().min(1).max(MAX_ID).nullable(),
  /** One of the engine's alert names, or null for every alert. */
  alertname: z.enum(ALERT_NAMES).nullable(),
  /** When the silence ends: RFC 3339 with its offset, in the future, at most 90 days ahead. */
  ends_at: instant,
  comment,
});
export type NewSilenceRequest = z.infer<typeof NewSilenceRequest>;

/** A site named in a query: its id, or its name (site names are this pattern, so nothing else can match). */
export const siteRef = z
  .string()
  .min(1)
  .max(100)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9 ._-]*$/,
    'a site id or name (letters, digits, space, dot, underscore, dash)',
  );

/** Query of `GET /api/v1/silences`. */
export const SilencesQuery = z.strictObject({
  /** `active` (default), `expired` or `all`. */
  state: z.enum([...SILENCE_STATES, 'all']).default('active'),
  /** Silences that cover this site (id or name): its own and those of every site. */
  site: siteRef.optional(),
  limit: countParam(1, 1000).default(100),
});
export type SilencesQuery = z.infer<typeof SilencesQuery>;

const alertNotFound = (id: number) => new HashwattError('not_found', `no alert with id ${id}`);
const silenceNotFound = (id: number) => new HashwattError('not_found', `no silence with id ${id}`);
const siteNotFound = (ref: string | number, field: string) =>
  new HashwattError('not_found', `no site ${typeof ref === 'number' ? `with id ${ref}` : `"${ref}"`}`, {
    field,
  });

function forbidden(reader: Reader, everySite: boolean): HashwattError {
  if (reader.kind === 'operator' && everySite) {
    return new HashwattError(
      'forbidden',
      'a silence of every site takes the admin token or an operator token of every site',
    );
  }
  return new HashwattError(
    'forbidden',
    'this token may read alerts but not act on them: acknowledging and silencing take an operator token or the admin token',
  );
}

function actor(reader: Reader): { name: string; tokenId: number | null } {
  const who = actorOf(reader);
  // mayOperate has let only the admin and operators through, and both have a name.
  if (!who) throw forbidden(reader, false);
  return who;
}

interface AlertAction {
  storage: Storage;
  reader: Reader;
  id: number;
  nowMs: number;
}

/** The alert, when the reader may see it (else the answer a missing alert gets) and act on it. */
async function actionableAlert({ storage, reader, id, nowMs }: AlertAction) {
  const row = await findAlert(storage.db, id, nowMs);
  if (!row || !mayRead(reader, row.site_id)) throw alertNotFound(id);
  if (!mayOperate(reader, row.site_id)) throw forbidden(reader, false);
  return row;
}

/** Acknowledges (`acknowledge` set) or takes the acknowledgement back (null). */
async function setAcknowledgement(
  action: AlertAction,
  acknowledge: { comment: string | null } | null,
): Promise<AlertView> {
  const { storage, reader, id, nowMs } = action;
  const row = await actionableAlert(action);
  const who = actor(reader);
  const ack = acknowledge && {
    by: who.name,
    byTokenId: who.tokenId,
    atMs: nowMs,
    comment: acknowledge.comment,
  };
  const outcome = await setAlertAcknowledgement(storage.db, id, ack);
  if (outcome === 'not_found') throw alertNotFound(id);
  if (outcome === 'not_firing') {
    throw new HashwattError(
      'alert_not_firing',
      `alert ${id} is ${row.state === 'firing' ? 'no longer firing' : row.state}: only a firing alert is acknowledged`,
    );
  }
  const updated = await findAlert(storage.db, id, nowMs);
  if (!updated) throw alertNotFound(id);
  return viewAlert(updated);
}

/**
 * Acknowledges a firing episode: by the caller ("admin" or the token's name), now, with the
 * comment. Acknowledging again replaces the acknowledgement. The episode stays firing.
 */
export async function acknowledgeAlert(
  action: AlertAction & { input: AcknowledgeRequest },
): Promise<AlertView> {
  // An empty comment is no comment.
  return setAcknowledgement(action, { comment: action.input.comment || null });
}

/** Takes an episode's acknowledgement back (nothing to take back is no error). Firing episodes only. */
export async function unacknowledgeAlert(action: AlertAction): Promise<AlertView> {
  return setAcknowledgement(action, null);
}

/** Creates a silence from now to `ends_at`, by the caller. */
export async function createSilence({
  storage,
  reader,
  input,
  nowMs,
}: {
  storage: Storage;
  reader: Reader;
  input: NewSilenceRequest;
  nowMs: number;
}): Promise<SilenceView> {
  if (input.site !== null) {
    if (!mayRead(reader, input.site) || !(await findSite(storage.db, input.site)))
      throw siteNotFound(input.site, 'site');
  }
  if (!mayOperate(reader, input.site)) throw forbidden(reader, input.site === null);
  if (input.ends_at <= nowMs) {
    throw new HashwattError('invalid_body', 'ends_at: the silence would already have ended', {
      field: 'ends_at',
    });
  }
  if (input.ends_at - nowMs > MAX_SILENCE_MS) {
    throw new HashwattError(
      'invalid_body',
      `ends_at: at most ${MAX_SILENCE_MS / 86_400_000} days ahead (a longer silence is a rule switched off)`,
      { field: 'ends_at' },
    );
  }
  const who = actor(reader);
  const row = await insertSilence(storage.db, {
    siteId: input.site,
    alertname: input.alertname,
    startsAtMs: nowMs,
    endsAtMs: input.ends_at,
    comment: input.comment,
    createdBy: who.name,
    createdByTokenId: who.tokenId,
  });
  return viewSilence(row, nowMs);
}

/** A silence the reader may see: its site's, or one of every site. */
async function visibleSilence(storage: Storage, reader: Reader, id: number) {
  const row = await findSilence(storage.db, id);
  if (!row || (row.site_id !== null && !mayRead(reader, row.site_id))) throw silenceNotFound(id);
  return row;
}

export async function getSilence({
  storage,
  reader,
  id,
  nowMs,
}: {
  storage: Storage;
  reader: Reader;
  id: number;
  nowMs: number;
}): Promise<SilenceView> {
  return viewSilence(await visibleSilence(storage, reader, id), nowMs);
}

/** Ends a silence now (one that has already ended is returned as it is). */
export async function expireSilence({
  storage,
  reader,
  id,
  nowMs,
}: {
  storage: Storage;
  reader: Reader;
  id: number;
  nowMs: number;
}): Promise<SilenceView> {
  const row = await visibleSilence(storage, reader, id);
  if (!mayOperate(reader, row.site_id)) throw forbidden(reader, row.site_id === null);
  await expireSilenceRow(storage.db, id, actor(reader).name, nowMs);
  return viewSilence(await visibleSilence(storage, reader, id), nowMs);
}

/** The silences the reader may see, newest first. */
export async function listSilences({
  storage,
  reader,
  query,
  nowMs,
}: {
  storage: Storage;
  reader: Reader;
  query: SilencesQuery;
  nowMs: number;
}): Promise<SilenceView[]> {
  let coveringSiteId: number | undefined;
  if (query.site !== undefined) {
    // A canonical id names a site by id; anything else (`007`, `North Hall`) by name.
    const id = canonicalId(query.site);
    const site =
      id !== undefined ? await findSite(storage.db, id) : await findSiteByName(storage.db, query.site);
    if (!site || !mayRead(reader, site.id)) throw siteNotFound(query.site, 'site');
    coveringSiteId = site.id;
  }
  const visibleSiteIds = readableSiteIds(reader);
  const rows = await listSilenceRows(storage.db, {
    ...(query.state !== 'all' && { state: query.state }),
    ...(coveringSiteId !== undefined && { coveringSiteId }),
    ...(visibleSiteIds !== undefined && { visibleSiteIds }),
    nowMs,
    limit: query.limit,
  });
  return rows.map((r) => viewSilence(r, nowMs));
}
