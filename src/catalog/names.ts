/** Longest device name (the agent's, or a protocol's labels rendered into one) and model name. */
export const DEVICE_NAME_MAX = 128;
export const MODEL_NAME_MAX = 64;

/**
 * Why a device or model name cannot be stored, or undefined when it can: 1…max UTF-16 units, no
 * control character (Postgres refuses NUL; a tab or newline in a name is a collector's bug), no
 * lone surrogate (it would be stored as U+FFFD, a name the sender never sent). One rule for every
 * transport, so a push protocol cannot register a name the JSON API would refuse.
 */
export function nameProblem(value: string, max: number): { code: string; message: string } | undefined {
  if (value.length === 0 || value.length > max)
    return { code: 'out_of_range', message: `must be 1 to ${max} characters, got ${value.length}` };
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f))
      return { code: 'invalid', message: 'must not contain control characters' };
  }
  if (!value.isWellFormed())
    return { code: 'invalid', message: 'must be well-formed Unicode (no lone surrogates)' };
  return undefined;
}
