import { z } from 'zod';
import { unstorableText } from '../http/validate.ts';

/**
 * The device listing's cursor: the name of the last device of a page, as base64url of a small JSON
 * object. Opaque to clients (the shape may change), checked strictly on the way back in: a cursor
 * that does not decode to exactly what `encodeCursor` writes is refused, never half-read.
 */
const CursorSchema = z.strictObject({
  after: z
    .string()
    .min(1)
    .max(128)
    .refine((name) => unstorableText(name) === undefined, 'not a device name'),
});

/** A cursor bigger than this cannot hold a device name (128 UTF-16 units, 4 bytes each at most). */
const CURSOR_MAX_CHARS = 1024;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The cursor of the page after the device named `lastName`. */
export function encodeCursor(lastName: string): string {
  return Buffer.from(JSON.stringify({ after: lastName }), 'utf8').toString('base64url');
}

/** The device name a cursor continues after, or undefined when it is not one this API wrote. */
export function decodeCursor(cursor: string): string | undefined {
  if (cursor.length > CURSOR_MAX_CHARS || !/^[A-Za-z0-9_-]+$/.test(cursor)) return undefined;
  const bytes = Buffer.from(cursor, 'base64url');
  // Buffer skips what it cannot read; only the canonical encoding of the bytes is accepted.
  if (bytes.toString('base64url') !== cursor) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch {
    return undefined;
  }
  const parsed = CursorSchema.safeParse(value);
  return parsed.success ? parsed.data.after : undefined;
}

/** The `cursor` query parameter: the name it continues after. */
export const cursorParam = z.string().transform((raw, ctx) => {
  const after = decodeCursor(raw);
  if (after === undefined) {
    ctx.addIssue({ code: 'custom', message: 'not a cursor this API returned (pass next_cursor as given)' });
    return z.NEVER;
  }
  return after;
});
