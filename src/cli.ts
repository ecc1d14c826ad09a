import { parseArgs } from 'node:util';
import {
  type AlertSummary,
  formatAlerts,
  formatSilences,
  formatSites,
  parseSiteRef,
  parseUntil,
  type SilenceSummary,
  type SiteSummary,
} from './cli-format.ts';
import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './log.ts';
import { openDatabase } from './storage/database.ts';
import { migrateToLatest } from './storage/migrate.ts';

// The site agent has its own options (--config …), which the service's parseArgs below would refuse.
if (process.argv[2] === 'agent') {
  const { runAgentCli } = await import('./agent/main.ts');
  process.exit(await runAgentCli(process.argv.slice(3)));
}

const USAGE = `hashwatt — telemetry ingest and monitoring for mining and AI sites

Usage:
  hashwatt serve                                   run the service (same as npm start)
  hashwatt migrate                                 apply pending database migrations and exit
  hashwatt sites list [--json]
  hashwatt sites create --name NAME --kind mining|ai|mixed --capacity-kw KW [--region R] [--timezone TZ]
                        [--token-only]             print only the ingest token (for $(...))
  hashwatt sites show SITE
  hashwatt sites update SITE [--capacity-kw KW] [--name NAME] [--kind K] [--region R] [--timezone TZ]
  hashwatt sites rotate-token SITE [--token-only]
  hashwatt sites delete SITE [--purge]           --purge also deletes its devices and readings
  hashwatt alerts [--state firing|pending|resolved|all] [--site SITE] [--json]
                                                   alerts of the built-in engine (default: firing)
  hashwatt alerts ack ID [--comment TEXT]          acknowledge a firing alert (it stays firing)
  hashwatt alerts unack ID                         take the acknowledgement back
  hashwatt silences create (--site SITE | --all-sites) [--alert NAME] --until WHEN --comment TEXT
                                                   no notifications for it until WHEN (30m, 2h, 1d or
                                                   RFC 3339); without --alert, every alert
  hashwatt silences list [--state active|expired|all] [--site SITE] [--json]
  hashwatt silences expire ID                      end a silence now
  hashwatt tokens create --name NAME --role viewer|operator [--site SITE]... [--token-only]
                                                   a named token (all sites, or each --site); an
                                                   operator may also acknowledge and silence
  hashwatt tokens list [--json]
  hashwatt tokens revoke ID                        the token stops working at once
  hashwatt agent --config site.yaml [--check]      run the site agent (docs/agent.md)
  hashwatt agent discover [--range R]... [--yaml]  find miners on ports 4028 / 4433

SITE is a site's id or its name.

Site and alert commands call the admin API:
  --url URL            the service (default $HASHWATT_URL or http://localhost:8080)
  --admin-token TOKEN  default $HASHWATT_ADMIN_TOKEN
Acknowledging and silencing may use an operator token instead, which they are then recorded by:
  --token TOKEN        default $HASHWATT_TOKEN, else the admin token ("admin")
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
    'token-only': { type: 'boolean' },
    json: { type: 'boolean' },
    state: { type: 'string' },
    // Several for `tokens create`; `alerts` takes the last one.
    site: { type: 'string', multiple: true },
    role: { type: 'string' },
    comment: { type: 'string' },
    alert: { type: 'string' },
    until: { type: 'string' },
    'all-sites': { type: 'boolean' },
    token: { type: 'string' },
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

/** An error answer of the admin API, so a command can say it in its own words. */
class ApiError extends Error {
  readonly status: number;
  readonly code: string | undefined;
  constructor(status: number, code: string | undefined, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function admin(method: string, path: string, body?: unknown): Promise<unknown> {
  const token = values['admin-token'] ?? process.env.HASHWATT_ADMIN_TOKEN;
  if (!token) fail('an admin token is needed: --admin-token or HASHWATT_ADMIN_TOKEN');
  return call(token, method, path, body);
}

/**
 * Acknowledging and silencing: as the operator token given (recorded by its name), else as the
 * admin ("admin").
 */
async function operate(method: string, path: string, body?: unknown): Promise<unknown> {
  const token = values.token ?? process.env.HASHWATT_TOKEN;
  return token ? call(token, method, path, body) : admin(method, path, body);
}

async function call(token: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const url = values.url ?? process.env.HASHWATT_URL ?? 'http://localhost:8080';
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
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // Not hashwatt answering (a proxy's HTML page, say): the status and the text say what it was.
  }
  if (!response.ok) {
    const e = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(
      response.status,
      e?.code,
      `${response.status} ${e?.code ?? ''}: ${e?.message ?? text}`,
    );
  }
  return parsed;
}

/** The API path of a site named by id or name; a name is looked up in the site list. */
async function sitePath(arg: string | undefined, command: string): Promise<string> {
  if (arg === undefined) fail(`${command} needs a site id or name`);
  const ref = parseSiteRef(arg);
  if ('id' in ref) return `/api/v1/sites/${ref.id}`;
  const { sites } = (await admin('GET', '/api/v1/sites')) as { sites: SiteSummary[] };
  const site = sites.find((s) => s.name === ref.name);
  if (!site) fail(`no site named "${ref.name}" (hashwatt sites list shows them)`);
  return `/api/v1/sites/${site.id}`;
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
const ALERT_STATES = ['firing', 'pending', 'resolved', 'all'];

async function run(command: string | undefined, sub: string | undefined, arg: string | undefined) {
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
  } else if (command === 'alerts' && (sub === 'ack' || sub === 'unack')) {
    await acknowledgeCommand(sub, arg);
  } else if (command === 'alerts') {
    if (sub !== undefined) fail(`unknown command "alerts ${sub}"\n\n${USAGE}`);
    const state = values.state ?? 'firing';
    if (!ALERT_STATES.includes(state)) fail(`--state must be one of ${ALERT_STATES.join(', ')}`);
    const query = new URLSearchParams({
      ...(state !== 'all' && { state }),
      ...(values.site !== undefined && { site: values.site.at(-1)! }),
    });
    const { alerts } = (await admin('GET', `/api/v1/alerts?${query}`)) as { alerts: AlertSummary[] };
    if (values.json) print(alerts);
    else process.stdout.write(`${formatAlerts(alerts, state)}\n`);
  } else if (command === 'sites') {
    const siteCommand = `sites ${sub}`;
    switch (sub) {
      case 'list': {
        const { sites } = (await admin('GET', '/api/v1/sites')) as { sites: SiteSummary[] };
        if (values.json) print(sites);
        else process.stdout.write(`${formatSites(sites)}\n`);
        break;
      }
      case 'create': {
        const created = (await admin('POST', '/api/v1/sites', siteFields())) as {
          site: unknown;
          token: string;
        };
        if (values['token-only']) {
          process.stdout.write(`${created.token}\n`);
          break;
        }
        print(created.site);
        process.stdout.write(`\ningest token (shown only this once; store it now):\n${created.token}\n`);
        break;
      }
      case 'show':
        print(await admin('GET', await sitePath(arg, siteCommand)));
        break;
      case 'update':
        print(await admin('PATCH', await sitePath(arg, siteCommand), siteFields()));
        break;
      case 'rotate-token': {
        const { token } = (await admin('POST', `${await sitePath(arg, siteCommand)}/token`)) as {
          token: string;
        };
        if (values['token-only']) process.stdout.write(`${token}\n`);
        else process.stdout.write(`new ingest token (the old one no longer works):\n${token}\n`);
        break;
      }
      case 'delete': {
        const path = await sitePath(arg, siteCommand);
        try {
          await admin('DELETE', `${path}${values.purge ? '?purge=true' : ''}`);
        } catch (error) {
          // The API's own hint names its query parameter; on the command line it is a flag.
          if (error instanceof ApiError && error.code === 'site_has_data')
            fail(
              `site ${arg} has devices or readings; to delete them with it: hashwatt sites delete ${arg} --purge`,
            );
          throw error;
        }
        process.stdout.write('deleted\n');
        break;
      }
      default:
        fail(`unknown command "sites ${sub ?? ''}"\n\n${USAGE}`);
    }
  } else if (command === 'tokens') {
    await tokensCommand(sub, arg);
  } else if (command === 'silences') {
    await silencesCommand(sub, arg);
  } else {
    fail(`unknown command "${command}"\n\n${USAGE}`);
  }
}

interface TokenSummary {
  id: number;
  name: string;
  role: string;
  sites: number[] | null;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

async function tokensCommand(sub: string | undefined, arg: string | undefined): Promise<void> {
  switch (sub) {
    case 'create': {
      if (!values.name) fail('tokens create needs --name');
      const sites: number[] = [];
      for (const ref of values.site ?? []) {
        const path = await sitePath(ref, 'tokens create');
        sites.push(Number(path.split('/').at(-1)));
      }
      const created = (await admin('POST', '/api/v1/tokens', {
        name: values.name,
        role: values.role ?? 'viewer',
        ...(sites.length > 0 && { sites }),
      })) as { api_token: TokenSummary; token: string };
      if (values['token-only']) {
        process.stdout.write(`${created.token}\n`);
        break;
      }
      print(created.api_token);
      process.stdout.write(`\ntoken (shown only this once; store it now):\n${created.token}\n`);
      break;
    }
    case 'list': {
      const { tokens } = (await admin('GET', '/api/v1/tokens')) as { tokens: TokenSummary[] };
      if (values.json) print(tokens);
      else
        process.stdout.write(
          `${tokens
            .map((t) =>
              [
                t.id,
                t.name,
                t.role,
                t.sites?.join(',') ?? 'all sites',
                t.revoked_at ? 'revoked' : `last used ${t.last_used_at ?? 'never'}`,
              ].join('  '),
            )
            .join('\n')}\n`,
        );
      break;
    }
    case 'revoke':
      if (arg === undefined || !/^[1-9][0-9]*$/.test(arg))
        fail('tokens revoke needs a token id (hashwatt tokens list)');
      await admin('DELETE', `/api/v1/tokens/${arg}`);
      process.stdout.write('revoked\n');
      break;
    default:
      fail(`unknown command "tokens ${sub ?? ''}"\n\n${USAGE}`);
  }
}

const isId = (arg: string | undefined): arg is string => arg !== undefined && /^[1-9][0-9]{0,9}$/.test(arg);

async function acknowledgeCommand(sub: 'ack' | 'unack', arg: string | undefined): Promise<void> {
  if (!isId(arg)) fail(`alerts ${sub} needs an alert id (hashwatt alerts shows them)`);
  const path = `/api/v1/alerts/${arg}/ack`;
  const { alert } = (
    sub === 'ack'
      ? await operate('POST', path, values.comment === undefined ? {} : { comment: values.comment })
      : await operate('DELETE', path)
  ) as { alert: AlertSummary };
  if (values.json) print(alert);
  else
    process.stdout.write(
      sub === 'ack'
        ? `acknowledged ${alert.alertname} of ${alert.site.name} (alert ${arg}) as ${alert.acknowledgement?.by ?? '?'}\n`
        : `acknowledgement of ${alert.alertname} of ${alert.site.name} (alert ${arg}) taken back\n`,
    );
}

/** A site id for a silence: an id as is, a name looked up among the sites the token reads. */
async function silenceSiteId(ref: string): Promise<number> {
  const parsed = parseSiteRef(ref);
  if ('id' in parsed) return parsed.id;
  // The fleet lists every site the acting token reads (the sites list is the admin's alone).
  const { sites } = (await operate('GET', '/api/v1/fleet')) as { sites: { id: number; name: string }[] };
  const site = sites.find((s) => s.name === parsed.name);
  if (!site) fail(`no site named "${parsed.name}" that this token reads`);
  return site.id;
}

const SILENCE_STATES = ['active', 'expired', 'all'];

async function silencesCommand(sub: string | undefined, arg: string | undefined): Promise<void> {
  switch (sub) {
    case 'create': {
      const site = values.site?.at(-1);
      if ((site === undefined) === !values['all-sites'])
        fail('silences create needs --site SITE, or --all-sites for every site');
      if (values.until === undefined) fail('silences create needs --until (30m, 2h, 1d, or RFC 3339)');
      const endsAt = parseUntil(values.until, Date.now());
      if (endsAt === undefined)
        fail(`--until "${values.until}": a duration (90s, 30m, 2h, 1d) or an RFC 3339 time with its offset`);
      if (!values.comment) fail('silences create needs --comment: why (a maintenance window, a ticket)');
      const { silence } = (await operate('POST', '/api/v1/silences', {
        site: site === undefined ? null : await silenceSiteId(site),
        alertname: values.alert ?? null,
        ends_at: endsAt,
        comment: values.comment,
      })) as { silence: SilenceSummary };
      if (values.json) print(silence);
      else
        process.stdout.write(
          `silence ${silence.id}: ${silence.alertname ?? 'every alert'} of ${silence.site?.name ?? 'every site'} until ${silence.effective_ends_at}\n`,
        );
      break;
    }
    case 'list': {
      const state = values.state ?? 'active';
      if (!SILENCE_STATES.includes(state)) fail(`--state must be one of ${SILENCE_STATES.join(', ')}`);
      const query = new URLSearchParams({
        state,
        ...(values.site !== undefined && { site: values.site.at(-1)! }),
      });
      const { silences } = (await operate('GET', `/api/v1/silences?${query}`)) as {
        silences: SilenceSummary[];
      };
      if (values.json) print(silences);
      else process.stdout.write(`${formatSilences(silences, state)}\n`);
      break;
    }
    case 'expire': {
      if (!isId(arg)) fail('silences expire needs a silence id (hashwatt silences list)');
      const { silence } = (await operate('DELETE', `/api/v1/silences/${arg}`)) as { silence: SilenceSummary };
      process.stdout.write(`silence ${arg} expired (ended ${silence.effective_ends_at})\n`);
      break;
    }
    default:
      fail(`unknown command "silences ${sub ?? ''}"\n\n${USAGE}`);
  }
}

const [command, sub, arg] = positionals;
await run(command, sub, arg).catch((error: unknown) => {
  if (error instanceof ApiError) fail(error.message);
  throw error;
});
