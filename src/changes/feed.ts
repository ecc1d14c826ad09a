import type { Logger } from '../log.ts';
import type { Storage } from '../storage/database.ts';

/** The channel the triggers of migrations/2026-12-02T02-00-change-feed.ts announce on. */
export const CHANGES_CHANNEL = 'hashwatt_changes';

export type ChangedTable = 'sites' | 'api_tokens' | 'alert_silences';

/** `sites:42` as the triggers send it; undefined for anything else. */
export function parseChange(payload: string): { table: ChangedTable; id: number } | undefined {
  const m = /^(sites|api_tokens|alert_silences):(\d{1,10})$/.exec(payload);
  return m ? { table: m[1] as ChangedTable, id: Number(m[2]) } : undefined;
}

export interface ChangeHandlers {
  changed(table: ChangedTable, id: number): void;
  /** Notifications may have been missed (the listen session was lost): drop every cached grant. */
  gap(): void;
}

/**
 * Listens for committed changes of what replicas cache. When the listen cannot start (the database
 * is down at start), the caches' own expiry is the fallback until it reconnects.
 */
export async function startChangeFeed(
  storage: Storage,
  handlers: ChangeHandlers,
  logger: Logger,
): Promise<() => Promise<void>> {
  try {
    return await storage.listen(
      CHANGES_CHANNEL,
      (payload) => {
        const change = parseChange(payload);
        if (change) handlers.changed(change.table, change.id);
      },
      () => handlers.gap(),
    );
  } catch (error) {
    logger.warn({ err: String(error) }, 'change feed could not start; caches expire on their own meanwhile');
    return async () => {};
  }
}
