/** Named API tokens (viewers for now): who, besides the admin and a site's own token, may read. */
export { apiTokenRoutes } from './routes.ts';
export { type ApiTokenGrant, type ApiTokenView, authenticateApiToken } from './service.ts';
