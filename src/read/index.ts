/** The read side: what every site and device is doing now, for the admin and for each site's own token. */
export { decodeCursor, encodeCursor } from './cursor.ts';
export { mayRead, type Reader, readerAuthenticator } from './reader.ts';
export { DevicesQuery, type ReadRoutesDeps, readRoutes } from './routes.ts';
export type { DeviceView, SiteStatus, SiteStatusView } from './view.ts';
