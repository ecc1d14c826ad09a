/** What replicas cache and how they hear it changed: a token cache and the Postgres change feed. */
export {
  CHANGES_CHANNEL,
  type ChangedTable,
  type ChangeHandlers,
  parseChange,
  startChangeFeed,
} from './feed.ts';
export { TokenCache } from './token-cache.ts';
