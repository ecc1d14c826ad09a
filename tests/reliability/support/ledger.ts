import { StringDecoder } from 'node:string_decoder';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { sumCounters } from '../../../simulators/agent/counters.ts';
import { type FleetCounters, readingKey } from '../../../simulators/index.ts';
import type { AgentRun } from './agents.ts';

/** What the database holds for some sites: the (device, ts) keys and the row count (rows > keys: stored twice). */
export interface StoredSite {
  keys: Set<string>;
  rows: number;
}

/** Undoes COPY's text-format escapes (backslash sequences) in one field. */
function unescapeCopy(field: string): string {
  if (!field.includes('\\')) return field;
  return field.replace(/\\(.)/g, (_, c: string) =>
    c === 't'
      ? '\t'
      : c === 'n'
        ? '\n'
        : c === 'r'
          ? '\r'
          : c === 'b'
            ? '\b'
            : c === 'f'
              ? '\f'
              : c === 'v'
                ? '\v'
                : c,
  );
}

/**
 * Reads the stored readings of the named sites straight from the database, keyed as the agents key
 * them. Streams with COPY: a soak stores millions of rows, which a plain query would hold twice.
 */
export async function readStored(
  databaseUrl: string,
  sites: readonly string[],
): Promise<Map<string, StoredSite>> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: number; name: string }>(
      'SELECT id, name FROM sites WHERE name = ANY($1)',
      [sites],
    );
    const stored = new Map<string, StoredSite>(sites.map((s) => [s, { keys: new Set(), rows: 0 }]));
    for (const { id, name } of rows) {
      const site = stored.get(name)!;
      const stream = client.query(
        copyTo(
          `COPY (SELECT d.external_id, (extract(epoch FROM r.ts) * 1000)::bigint FROM readings r
             JOIN devices d ON d.id = r.device_id WHERE r.site_id = ${Number(id)}) TO STDOUT`,
        ),
      );
      const decoder = new StringDecoder('utf8'); // a chunk may end inside a character
      let partial = '';
      const take = (line: string) => {
        if (line === '') return;
        const tab = line.lastIndexOf('\t');
        site.rows++;
        site.keys.add(readingKey(unescapeCopy(line.slice(0, tab)), Number(line.slice(tab + 1))));
      };
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        const lines = (partial + decoder.write(chunk)).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) take(line);
      }
      take(partial + decoder.end());
    }
    return stored;
  } finally {
    await client.end();
  }
}

/** The three counts of a scenario and how the key sets compare. */
export interface Reconciliation {
  scenario: string;
  generated: number;
  acknowledged: number;
  stored: number;
  dropped: number;
  rejected: number;
  buffered: number;
  /** Acknowledged as already stored: resends after a lost acknowledgement, de-duplicated by the service. */
  duplicates: number;
  /** Acknowledged but not in the database: a lost acknowledged reading. Must be 0. */
  missing: number;
  /** Rows beyond one per (site, device, ts). Must be 0. */
  storedTwice: number;
  /** In the database but never acknowledged (only possible for readings dropped after a lost ack). */
  unacknowledged: number;
  /** A few missing keys per site, to name in a failure. */
  missingExamples: string[];
}

/** Compares what agents generated and saw acknowledged (key by key) with what the database holds. */
export function reconcile(
  scenario: string,
  counters: FleetCounters,
  acknowledged: Map<string, ReadonlySet<string>>,
  stored: Map<string, StoredSite>,
): Reconciliation {
  let missing = 0;
  let storedTwice = 0;
  let unacknowledged = 0;
  let storedKeys = 0;
  const missingExamples: string[] = [];
  for (const [site, s] of stored) {
    const acked = acknowledged.get(site) ?? new Set<string>();
    storedKeys += s.keys.size;
    storedTwice += s.rows - s.keys.size;
    for (const key of acked) {
      if (s.keys.has(key)) continue;
      missing++;
      if (missingExamples.length < 5) missingExamples.push(`${site}: ${key}`);
    }
    for (const key of s.keys) if (!acked.has(key)) unacknowledged++;
  }
  return {
    scenario,
    generated: counters.total.generated,
    acknowledged: counters.total.acknowledged,
    stored: storedKeys + storedTwice,
    dropped: counters.total.dropped,
    rejected: counters.total.rejected,
    buffered: counters.total.buffered,
    duplicates: counters.total.duplicates,
    missing,
    storedTwice,
    unacknowledged,
    missingExamples,
  };
}

/** The one-line summary every scenario prints. */
export function summaryLine(r: Reconciliation, extra = ''): string {
  return (
    `reliability ${r.scenario}: generated ${r.generated} acknowledged ${r.acknowledged} stored ${r.stored} ` +
    `dropped ${r.dropped} rejected ${r.rejected} buffered ${r.buffered} duplicates ${r.duplicates} missing ${r.missing} ` +
    `stored-twice ${r.storedTwice}${extra ? ` | ${extra}` : ''}`
  );
}

/**
 * Stops every run's agents (they keep delivering what they hold for up to `flushMs`), then
 * compares what they generated and saw acknowledged with the database.
 */
export async function stopAndReconcile(
  scenario: string,
  runs: readonly AgentRun[],
  databaseUrl: string,
  flushMs = 30_000,
): Promise<Reconciliation> {
  const finals = await Promise.all(runs.map((r) => r.fleet.stop({ flushMs })));
  const counters: FleetCounters = {
    total: sumCounters(finals.map((f) => f.total)),
    sites: Object.assign({}, ...finals.map((f) => f.sites)),
  };
  const acknowledged = new Map<string, ReadonlySet<string>>();
  for (const r of runs) for (const [site, keys] of r.fleet.acknowledged()) acknowledged.set(site, keys);
  const sites = runs.flatMap((r) => r.sites);
  return reconcile(scenario, counters, acknowledged, await readStored(databaseUrl, sites));
}
