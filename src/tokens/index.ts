/** Named API tokens: who, besides the admin and a site's own token, may read (viewers) and act on alerts (operators). */
export { apiTokenRoutes } from './routes.ts';
export { type ApiTokenGrant, type ApiTokenView, authenticateApiToken } from './service.ts';
