import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './log.ts';
import { openDatabase } from './storage/database.ts';
import { migrateToLatest } from './storage/migrate.ts';

const USAGE = `hashwatt — telemetry ingest and monitoring for mining and AI sites

Usage:
  hashwatt serve                                   run the service (same as npm start)
  hashwatt migrate                                 apply pending database migrations and exit
  hashwatt sites list
  hashwatt sites create --name NAME --kind mining|ai|mixed --capacity-kw KW [--region R] [--timezone TZ]
  hashwatt sites show ID
  hashwatt sites update ID [--capacity-kw KW] [--name NAME] [--kind K] [--region R] [--timezone TZ]
  hashwatt sites rotate-token ID
  hashwatt sites delete ID [--purge]

Site commands call the admin API:
  --url URL            the service (default $HASHWATT_URL or http://localhost:8080)
  --admin-token TOKEN  default $HASHWATT_ADMIN_TOKEN
`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    'admin-token': { type: 'string' },
    name: { type: 'string' },
    kind: { type: 'string' },
    'capacity-kw': { type: 'string' },
    region: { type: 'string' },
    timezone: { type: 'string' },
    purge: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});

function fail(message: string): never {
  process.stderr.write(`hashwatt: ${message}\n`);
  process.exit(2);
}

function config() {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
}

async function admin(method: string, path: string, body?: unknown): Promise<unknown> {
  const url = values.url ?? process.env.HASHWATT_URL ?? 'http://localhost:8080';
  const token = values['admin-token'] ?? process.env.HASHWATT_ADMIN_TOKEN;
  if (!token) fail('an admin token is needed: --admin-token or HASHWATT_ADMIN_TOKEN');
  let response: Response;
  try {
    response = await fetch(new URL(path, url), {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
  } catch (error) {
    fail(`cannot reach ${url}: ${(error as Error).cause ?? (error as Error).message}`);
  }
  const text = await response.text();
  const parsed: unknown = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const e = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
    fail(`${response.status} ${e?.code ?? ''}: ${e?.message ?? text}`);
  }
  return parsed;
}

function siteFields(): Record<string, unknown> {
  const capacity = values['capacity-kw'];
  if (capacity !== undefined && !Number.isFinite(Number(capacity))) fail('--capacity-kw must be a number');
  return Object.fromEntries(
    Object.entries({
      name: values.name,
      kind: values.kind,
      capacity_kw: capacity === undefined ? undefined : Number(capacity),
      region: values.region,
      timezone: values.timezone,
    }).filter(([, v]) => v !== undefined),
  );
}

const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);

const [command, sub, id] = positionals;
if (values.help || !command) {
  process.stdout.write(USAGE);
} else if (command === 'serve') {
  await import('./main.ts');
} else if (command === 'migrate') {
  const c = config();
  const storage = await openDatabase({
    databaseUrl: c.databaseUrl,
    dataDir: c.dataDir,
    logger: createLogger('warn'),
  });
  const applied = await migrateToLatest(storage.db);
  await storage.close();
  process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n');
} else if (command === 'sites') {
  const needId = () => id ?? fail(`sites ${sub} needs a site id`);
  switch (sub) {
    case 'list':
      print(await admin('GET', '/api/v1/sites'));
      break;
    case 'create': {
      const created = (await admin('POST', '/api/v1/sites', siteFields())) as {
        site: unknown;
        token: string;
      };
      print(created.site);
      process.stdout.write(`\ningest token (shown only this once; store it now):\n${created.token}\n`);
      break;
    }
    case 'show':
      print(await admin('GET', `/api/v1/sites/${needId()}`));
      break;
    case 'update':
      print(await admin('PATCH', `/api/v1/sites/${needId()}`, siteFields()));
      break;
    case 'rotate-token': {
      const { token } = (await admin('POST', `/api/v1/sites/${needId()}/token`)) as { token: string };
      process.stdout.write(`new ingest token (the old one no longer works):\n${token}\n`);
      break;
    }
    case 'delete':
      await admin('DELETE', `/api/v1/sites/${needId()}${values.purge ? '?purge=true' : ''}`);
      process.stdout.write('deleted\n');
      break;
    default:
      fail(`unknown command "sites ${sub ?? ''}"\n\n${USAGE}`);
  }
} else {
  fail(`unknown command "${command}"\n\n${USAGE}`);
}
