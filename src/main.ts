import { setFlagsFromString } from 'node:v8';
import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './log.ts';
import { startService } from './service.ts';
import { describeListenError } from './startup-errors.ts';

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`hashwatt: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}

// At ingest rates V8 let the heap grow to several times the live data between collections: ~60 MB
// live, ~1 GB RSS under WebSocket load. A fixed growth factor of 1.5 held RSS to ~500 MB at the same
// rate (docs/performance.md). Node refuses this flag in NODE_OPTIONS, and V8 reads it at each
// collection, so it is set here, before the service allocates, and only for the service process.
if (config.heapGrowingPercent > 0) setFlagsFromString(`--heap-growing-percent=${config.heapGrowingPercent}`);

const logger = createLogger(config.logLevel);
const service = await startService(config, logger).catch((error: unknown) => {
  const problem = describeListenError(error, { host: config.host, port: config.port, command: 'npm start' });
  if (problem) process.stderr.write(`hashwatt: ${problem}\n`);
  else logger.fatal({ err: error }, 'hashwatt failed to start');
  process.exit(1);
});

let signalled = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (signalled) return;
    signalled = true;
    logger.info({ signal }, 'shutting down');
    service.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
