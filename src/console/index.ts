/** The web console: the page, its assets and the session probe it signs in with. */
export { consoleRoutes } from './routes.ts';
export { CONSOLE_ROLES, type ConsoleRole, ConsoleSession, sessionOf } from './session.ts';
