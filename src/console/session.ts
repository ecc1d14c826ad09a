import { z } from 'zod';
import type { Reader } from '../read/reader.ts';

/**
 * Who the console is talking to, so it can leave out what the API would refuse. The API still
 * decides every request: this only spares a viewer buttons and panels that would answer 401.
 */
export const CONSOLE_ROLES = ['admin', 'operator', 'viewer', 'site'] as const;
export type ConsoleRole = (typeof CONSOLE_ROLES)[number];

/** The answer of `GET /console/session`. */
export const ConsoleSession = z.object({
  role: z.enum(CONSOLE_ROLES),
  /** A named token's name; null for the admin and site tokens. */
  token_name: z.string().nullable(),
  /** The sites the token may read; null: every site. */
  site_ids: z.array(z.number().int()).nullable(),
});
export type ConsoleSession = z.infer<typeof ConsoleSession>;

/** The console's view of a reader (src/read/reader.ts decides who is reading). */
export function sessionOf(reader: Reader): ConsoleSession {
  switch (reader.kind) {
    case 'admin':
      return { role: 'admin', token_name: null, site_ids: null };
    case 'viewer':
    case 'operator':
      return {
        role: reader.kind,
        token_name: reader.name,
        site_ids: reader.siteIds === undefined ? null : [...reader.siteIds].sort((a, b) => a - b),
      };
    case 'site':
      return { role: 'site', token_name: null, site_ids: [reader.siteId] };
  }
}
