import { z } from 'zod';
import type { Batch } from './buffer.ts';

/** One per-reading rejection, as the service reports it (index into the batch). */
export const RejectedReading = z.looseObject({
  index: z.int().min(0),
  field: z.string().nullish(),
  code: z.string(),
  message: z.string().nullish(),
});
export type RejectedReading = z.infer<typeof RejectedReading>;

/** The service's answer to a committed batch: HTTP 200 body, or a WebSocket ack without its `ack` field. */
export const IngestResult = z.looseObject({
  accepted: z.int().min(0),
  duplicates: z.int().min(0),
  rejected: z.array(RejectedReading).default([]),
});
export type IngestResult = z.infer<typeof IngestResult>;

/** What became of one send. */
export type SendOutcome =
  | { kind: 'ack'; accepted: number; duplicates: number; rejected: RejectedReading[] }
  /**
   * Refused as a whole (4xx other than 429, malformed frame): never retried. `connectFailed`: the
   * WebSocket upgrade itself was refused, so nothing of the batch reached the service.
   */
  | {
      kind: 'rejected';
      status: number | null;
      code: string;
      message: string;
      tooLarge?: boolean;
      connectFailed?: boolean;
    }
  /**
   * Not stored; send again later. `retryAfterMs` is the server's hint; `maxBatchBytesHint` asks for
   * smaller batches; `connectFailed`: the connection could not be opened (nothing was sent).
   */
  | {
      kind: 'retry';
      reason: string;
      retryAfterMs?: number;
      maxBatchBytesHint?: number;
      connectFailed?: boolean;
    };

/** A way to deliver batches to the service: HTTP requests or WebSocket frames. */
export interface Transport {
  /** Sends one batch and resolves once the service has answered it (or the attempt failed). Never rejects. */
  send(batch: Batch): Promise<SendOutcome>;
  /** Drops open connections, as a network flap does; sends in flight resolve as retry. */
  disconnect(reason: string): void;
  /** Closes for good; sends in flight resolve as retry. */
  close(): Promise<void>;
}

/** Joins a base URL and an API path, keeping any path prefix of the base (e.g. behind a proxy). */
export function apiUrl(base: string, path: string): URL {
  const url = new URL(base);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return new URL(path.replace(/^\//, ''), url);
}

/** The error envelope's code and message, when a body has one. */
export function readErrorEnvelope(
  body: string,
): { code: string; message: string; retryAfterMs: number | undefined } | null {
  try {
    const parsed = z
      .looseObject({
        error: z.looseObject({
          code: z.string(),
          message: z.string().optional(),
          retry_after_ms: z.number().nonnegative().optional(),
        }),
      })
      .safeParse(JSON.parse(body));
    if (parsed.success) {
      const { code, message, retry_after_ms } = parsed.data.error;
      return { code, message: message ?? '', retryAfterMs: retry_after_ms };
    }
  } catch {
    // not JSON: the caller falls back to the status line
  }
  return null;
}
