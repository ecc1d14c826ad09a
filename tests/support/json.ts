/**
 * JSON text with every object's keys sorted: jsonb keeps keys and values, not their order, so a
 * stored document is compared with what was sent in this form. Keeps own `__proto__` keys
 * (Object.keys sees them), which a rebuild through an object literal would drop.
 */
export function sortedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${sortedJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}
