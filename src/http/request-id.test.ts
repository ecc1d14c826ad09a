import { describe, expect, it } from 'vitest';
import { acceptRequestId, MAX_REQUEST_ID_LENGTH } from './request-id.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('acceptRequestId', () => {
  it('honours an id of the safe alphabet', () => {
    for (const id of ['abc', 'req-1.2_3:4', 'A'.repeat(MAX_REQUEST_ID_LENGTH), '0']) {
      expect(acceptRequestId(id)).toBe(id);
    }
  });

  it('replaces a missing, empty, overlong or unsafe id with a UUID', () => {
    for (const id of [
      undefined,
      '',
      'A'.repeat(MAX_REQUEST_ID_LENGTH + 1),
      'x'.repeat(8_000),
      'has space',
      'line\r\nbreak',
      'nul\u0000',
      'ümlaut',
      'a/b',
      '<script>',
    ]) {
      const accepted = acceptRequestId(id);
      expect(accepted).toMatch(UUID);
      expect(accepted).not.toBe(id);
    }
  });

  it('gives each replaced id a fresh value', () => {
    expect(acceptRequestId(undefined)).not.toBe(acceptRequestId(undefined));
  });
});
