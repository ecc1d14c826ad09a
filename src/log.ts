import { pino } from 'pino';

export type Logger = pino.Logger;

/** JSON logs on stdout; tokens and bodies never reach them (redacted where a header could slip in). */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'hashwatt' },
    redact: { paths: ['req.headers.authorization', '*.token', 'token'], censor: '[redacted]' },
  });
}

/** A logger that writes nothing, for tests and tools. */
export const silentLogger: Logger = pino({ level: 'silent' });
