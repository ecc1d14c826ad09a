import type { z } from 'zod';
import { HashwattError } from '../errors.ts';

/** Parses a request body with a zod schema, or throws a 400 naming the first bad field. */
export function parseBody<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field =
    issue.code === 'unrecognized_keys' ? (issue.keys[0] ?? '') : issue.path.map(String).join('.') || '(body)';
  const message =
    issue.code === 'unrecognized_keys' ? `unknown field "${field}"` : `${field}: ${issue.message}`;
  throw new HashwattError('invalid_body', message, { field });
}
