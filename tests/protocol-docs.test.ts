import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CORE_METRICS, EXTRA_METRICS } from '../src/catalog/index.ts';
import {
  DEFAULT_LINE_PROTOCOL_MAPPING,
  DEFAULT_OTLP_MAPPING,
  DEFAULT_REMOTE_WRITE_MAPPING,
  type MetricRule,
} from '../src/protocols/index.ts';

// The receivers' user documentation (docs/protocols/) held to the code: the mapping tables on each
// page against the mapping tables in src/protocols/*/mapping.ts, every metric name against the
// catalog, the Prometheus example against the real promtool (Debian package prometheus), and the
// other collectors' examples against the endpoints they must name. Docs that drift fail here.

const ROOT = path.resolve(import.meta.dirname, '..');
const DOCS = path.join(ROOT, 'docs', 'protocols');
const EXAMPLES = path.join(DOCS, 'examples');
const readDoc = (file: string): string => readFileSync(path.join(DOCS, file), 'utf8');

const CATALOG: ReadonlyMap<string, { unit: string; type: string; index?: string }> = new Map(
  [...CORE_METRICS, ...EXTRA_METRICS].map((m) => [
    m.name,
    { unit: m.unit, type: m.type, ...('index' in m ? { index: m.index } : {}) },
  ]),
);

interface Table {
  /** The text of the heading the table sits under. */
  heading: string;
  header: string[];
  rows: string[][];
}

/** Cells of a Markdown table line; none of these pages puts a `|` inside a cell. */
function cellsOf(line: string): string[] {
  return line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split('|')
    .map((c) => c.trim());
}

/** The pipe tables of a page, each with the heading above it. */
function tablesOf(markdown: string): Table[] {
  const tables: Table[] = [];
  let heading = '';
  let current: Table | undefined;
  for (const line of markdown.split('\n')) {
    if (/^#{1,6} /.test(line)) heading = line.replace(/^#+ /, '');
    if (!line.trim().startsWith('|')) {
      current = undefined;
      continue;
    }
    const cells = cellsOf(line);
    if (current === undefined) {
      current = { heading, header: cells, rows: [] };
      tables.push(current);
    } else if (!cells.every((c) => /^:?-+:?$/.test(c))) current.rows.push(cells);
  }
  return tables;
}

/** The `code spans` of a piece of Markdown, in order. */
function codeSpans(text: string): string[] {
  return [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
}

/** One row of a mapping table: the source name, the hashwatt metrics, the whole row's text. */
interface MappingRow {
  context: string;
  source: string;
  metrics: string[];
  text: string;
}

/** Rows of the tables with a "hashwatt metric" column whose first cell names a source. */
function mappingRows(markdown: string): MappingRow[] {
  return tablesOf(markdown).flatMap((t) => {
    const metricColumn = t.header.indexOf('hashwatt metric');
    if (metricColumn < 0) return [];
    return t.rows.flatMap((row) => {
      const source = codeSpans(row[0] ?? '')[0];
      if (source === undefined) return [];
      return [
        {
          context: codeSpans(t.heading)[0] ?? t.heading,
          source,
          metrics: codeSpans(row[metricColumn] ?? ''),
          text: row.join(' | '),
        },
      ];
    });
  });
}

/** The facts of a rule a documented row must state, as substrings of the row. */
function factsOf(rule: MetricRule & { dcgm?: string }): string[][] {
  const facts: string[][] = [[`\`${rule.metric}\``]];
  for (const value of Object.values(rule.where ?? {})) {
    if (value !== '') facts.push([`"${value}"`, `\`${value}\``]);
  }
  if (rule.index !== undefined) facts.push([`\`${rule.index}\``]);
  if (rule.indexFrom !== undefined) facts.push([`\`${rule.indexFrom}\``]);
  if (rule.scale !== undefined) facts.push([`× ${rule.scale}`]);
  if (rule.divideBy !== undefined) facts.push([`÷ ${rule.divideBy}`]);
  if (rule.combine !== undefined) facts.push([rule.combine]);
  if (rule.priority !== undefined) facts.push([`priority ${rule.priority}`]);
  if (rule.dcgm !== undefined) facts.push([rule.dcgm]);
  return facts;
}

/**
 * Every source of a code table is documented, every documented source exists in it, the metrics
 * documented for a source are the code's, and each rule has a row stating its scale, filter,
 * index, combination and priority.
 */
function expectDocumented(
  rows: readonly MappingRow[],
  code: ReadonlyMap<string, readonly (MetricRule & { dcgm?: string })[]>,
  page: string,
): void {
  for (const [source, rules] of code) {
    const documented = rows.filter((r) => r.source === source);
    expect(documented.length, `${page}: no table row for ${source}`).toBeGreaterThan(0);
    expect(
      new Set(documented.flatMap((r) => r.metrics)),
      `${page}: the hashwatt metrics documented for ${source}`,
    ).toEqual(new Set(rules.map((r) => r.metric)));
    for (const rule of rules) {
      const facts = factsOf(rule);
      const row = documented.find((r) => facts.every((any) => any.some((f) => r.text.includes(f))));
      expect(row, `${page}: no row for ${source} stating ${facts.map((f) => f[0]).join(', ')}`).toBeDefined();
    }
  }
  for (const r of rows) expect(code.has(r.source), `${page}: ${r.source} is in no mapping table`).toBe(true);
}

/** The rows of every table in a piece of Markdown (Biome pads the cells, so compare cells). */
const rowsOf = (markdown: string): string[][] => tablesOf(markdown).flatMap((t) => t.rows);

/** Markdown with every run of white space one space: for statements that wrap across lines. */
const flat = (markdown: string): string => markdown.replace(/\s+/g, ' ');

/** The text of the section under the heading containing `marker`, to the next heading. */
function sectionOf(markdown: string, marker: string): string {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^#{2,6} /.test(l) && l.includes(marker));
  expect(start, `no section headed ${marker}`).toBeGreaterThanOrEqual(0);
  const end = lines.findIndex((l, i) => i > start && /^#{2,6} /.test(l));
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

const remoteWrite = readDoc('remote-write.md');
const lineProtocol = readDoc('line-protocol.md');
const otlp = readDoc('otlp.md');
const index = readDoc('README.md');
const pages = {
  'README.md': index,
  'remote-write.md': remoteWrite,
  'line-protocol.md': lineProtocol,
  'otlp.md': otlp,
};

describe('promtool', () => {
  it('accepts docs/protocols/examples/prometheus.yml', () => {
    const file = 'docs/protocols/examples/prometheus.yml';
    const result = spawnSync('promtool', ['check', 'config', file], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (result.error && (result.error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(
        'promtool is not on PATH: install the Debian package that ships it (apt-get install prometheus)',
      );
    }
    expect(result.status, `$ promtool check config ${file}\n${result.stdout}${result.stderr}`).toBe(0);
  });
});

describe('examples', () => {
  it('prometheus.yml remote-writes to /api/v1/write with a token file that exists and min_shards >= 4', () => {
    const config = parse(readFileSync(path.join(EXAMPLES, 'prometheus.yml'), 'utf8')) as {
      scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
      remote_write: {
        url: string;
        authorization: { type?: string; credentials_file: string };
        queue_config: { min_shards: number; max_samples_per_send: number; batch_send_deadline: string };
      }[];
    };
    const [rw] = config.remote_write;
    expect(rw?.url).toBe('http://127.0.0.1:8080/api/v1/write');
    expect(rw?.authorization.type ?? 'Bearer').toBe('Bearer');
    // Prometheus resolves it against the config file's folder; promtool does not check it exists.
    expect(existsSync(path.join(EXAMPLES, rw!.authorization.credentials_file))).toBe(true);
    expect(rw?.queue_config.min_shards).toBeGreaterThanOrEqual(4);
    expect(rw?.queue_config.max_samples_per_send).toBeGreaterThan(0);
    expect(rw?.queue_config.batch_send_deadline).toMatch(/^\d+m?s$/);
    const targets = config.scrape_configs.flatMap((j) => j.static_configs.flatMap((s) => s.targets));
    expect(
      targets.some((t) => t.endsWith(':9400')),
      'a dcgm-exporter job on :9400',
    ).toBe(true);
    expect(
      targets.some((t) => t.endsWith(':8081')),
      'a bosminer job on :8081',
    ).toBe(true);
  });

  it('alloy.river scrapes both exporters and remote-writes to /api/v1/write with a bearer token', () => {
    const alloy = readFileSync(path.join(EXAMPLES, 'alloy.river'), 'utf8');
    expect(alloy).toMatch(/prometheus\.scrape "\w+"/);
    expect(alloy).toMatch(/prometheus\.remote_write "hashwatt"/);
    expect(alloy).toContain('url = "http://127.0.0.1:8080/api/v1/write"');
    expect(alloy).toMatch(/bearer_token(_file)? += /);
    expect(alloy).toMatch(/min_shards += 4\b/);
    expect(alloy).toContain(':9400"');
    expect(alloy).toContain(':8081"');
  });

  it('telegraf.conf writes to hashwatt with the site token, its Modbus registers named after catalog metrics', () => {
    const telegraf = readFileSync(path.join(EXAMPLES, 'telegraf.conf'), 'utf8');
    for (const input of ['nvidia_smi', 'ipmi_sensor', 'modbus'])
      expect(telegraf).toContain(`[[inputs.${input}]]`);
    expect(telegraf).toContain('[[outputs.influxdb_v2]]');
    expect(telegraf).toContain('urls = ["http://127.0.0.1:8080"]');
    expect(telegraf).toMatch(/^ *token = "\$\{HASHWATT_SITE_TOKEN\}"$/m);
    const registers = [...telegraf.matchAll(/\{ *name *= *"([^"]+)"/g)].map((m) => m[1]!);
    expect(registers.length).toBeGreaterThan(0);
    for (const name of registers) expect(CATALOG.has(name), `modbus register ${name}`).toBe(true);
  });

  it('otelcol.yaml exports over otlphttp to the base URL (the exporter appends /v1/metrics) with a Bearer header', () => {
    const config = parse(readFileSync(path.join(EXAMPLES, 'otelcol.yaml'), 'utf8')) as {
      exporters: Record<string, { endpoint?: string; headers?: Record<string, string> }>;
      service: { pipelines: { metrics: { exporters: string[] } } };
    };
    const names = Object.keys(config.exporters).filter((n) => n === 'otlphttp' || n.startsWith('otlphttp/'));
    expect(names).toHaveLength(1);
    const exporter = config.exporters[names[0]!]!;
    expect(exporter.endpoint).toBe('http://127.0.0.1:8080');
    expect(exporter.headers?.authorization).toMatch(/^Bearer \$\{env:\w+\}$/);
    expect(config.service.pipelines.metrics.exporters).toContain(names[0]);
  });
});

describe('remote-write.md', () => {
  const rows = mappingRows(remoteWrite);

  it('documents every source metric of DEFAULT_REMOTE_WRITE_MAPPING with its rules, and nothing else', () => {
    const code = new Map(DEFAULT_REMOTE_WRITE_MAPPING.families.flatMap((f) => Object.entries(f.metrics)));
    expect(code.size).toBeGreaterThan(0);
    expectDocumented(rows, code, 'remote-write.md');
  });

  it('names every DCGM_FI_* field the mapping knows', () => {
    const dcgm = DEFAULT_REMOTE_WRITE_MAPPING.families.flatMap((f) =>
      Object.keys(f.metrics).filter((n) => n.startsWith('DCGM_FI_')),
    );
    expect(dcgm.length).toBeGreaterThan(0);
    for (const name of dcgm)
      expect(
        rows.map((r) => r.source),
        name,
      ).toContain(name);
  });

  it('gives each family’s device templates, model label and the own-names prefix', () => {
    for (const family of DEFAULT_REMOTE_WRITE_MAPPING.families) {
      for (const template of family.device.device)
        expect(remoteWrite, family.name).toContain(`\`${template}\``);
      if (family.device.kind !== undefined) expect(remoteWrite).toContain(`Kind \`${family.device.kind}\``);
      if (family.device.modelFrom !== undefined)
        expect(remoteWrite).toContain(`\`${family.device.modelFrom}\``);
    }
    const own = DEFAULT_REMOTE_WRITE_MAPPING.own!;
    expect(remoteWrite).toContain(`\`${own.prefix}<metric>\``);
    for (const label of [...own.device.device.flatMap(codeSpansOfTemplate), own.indexFrom])
      expect(rowsOf(sectionOf(remoteWrite, 'own names')).map((r) => r[0])).toContain(`\`${label}\``);
  });

  it('states the DCGM blank ranges isDcgmBlank filters', () => {
    const blanks = sectionOf(remoteWrite, 'DCGM family');
    for (const fact of ['0x7ffffff0', '0x7fffffff', '2^63', '2^47', '2^47 + 15', '`dcgm_blank`'])
      expect(blanks).toContain(fact);
  });

  it('states the per-series label limits the mapping enforces', () => {
    const { maxLabels, maxLabelNameLength, maxLabelValueLength } = DEFAULT_REMOTE_WRITE_MAPPING.limits;
    expect(flat(remoteWrite)).toContain(
      `more than ${maxLabels} labels, a name over ${maxLabelNameLength} or a value over ${maxLabelValueLength}`,
    );
  });
});

/** `{device}` → device: the labels a template reads. */
function codeSpansOfTemplate(template: string): string[] {
  return [...template.matchAll(/\{([^{}]+)\}/g)].map((m) => m[1]!);
}

describe('line-protocol.md', () => {
  const rows = mappingRows(lineProtocol);

  it.each(Object.keys(DEFAULT_LINE_PROTOCOL_MAPPING.measurements))(
    'documents measurement %s: device, fields and rules, ignored fields',
    (measurement) => {
      const rule = DEFAULT_LINE_PROTOCOL_MAPPING.measurements[measurement]!;
      const section = sectionOf(lineProtocol, `\`${measurement}\``);
      for (const template of rule.device.device) expect(section).toContain(`\`${template}\``);
      if (rule.device.kind !== undefined) expect(section).toContain(`Kind \`${rule.device.kind}\``);
      for (const field of rule.ignoreFields ?? []) expect(section).toContain(`\`${field}\``);
      const mine = rows.filter((r) => r.context === measurement);
      expectDocumented(mine, new Map(Object.entries(rule.fields ?? {})), `line-protocol.md ${measurement}`);
      if (rule.metricFields !== undefined) {
        const rows = rowsOf(section);
        expect(
          rows.some(([field, metric]) => field === 'any catalog name' && metric === 'the same name'),
        ).toBe(true);
        if (rule.metricFields.indexFrom !== undefined)
          expect(rows.map((r) => r[0])).toContain(`\`${rule.metricFields.indexFrom}\``);
      }
    },
  );

  it('has a section for no measurement the mapping lacks', () => {
    const sections = [...lineProtocol.matchAll(/^### `([^`]+)`/gm)].map((m) => m[1]!);
    expect(sections.sort()).toEqual(Object.keys(DEFAULT_LINE_PROTOCOL_MAPPING.measurements).sort());
  });
});

describe('otlp.md', () => {
  const rows = mappingRows(otlp);

  it('documents every metric of DEFAULT_OTLP_MAPPING with its rules, and nothing else', () => {
    const code = new Map(Object.entries(DEFAULT_OTLP_MAPPING.metrics).map(([name, e]) => [name, e.rules]));
    expectDocumented(rows, code, 'otlp.md');
  });

  it('lists the device templates in the order they are tried, and the host-level ones', () => {
    const table = tablesOf(otlp).find((t) => t.header.includes('template'));
    expect(table, 'the device template table').toBeDefined();
    const documented = table!.rows.map((r) => codeSpans(r[table!.header.indexOf('template')] ?? '')[0]);
    expect(documented).toEqual(DEFAULT_OTLP_MAPPING.device.device);
    for (const kindFrom of [DEFAULT_OTLP_MAPPING.device.kindFrom ?? []].flat())
      expect(otlp).toContain(`\`${kindFrom}\``);
    expect(otlp).toContain(`\`${DEFAULT_OTLP_MAPPING.device.modelFrom}\``);
    for (const [name, entry] of Object.entries(DEFAULT_OTLP_MAPPING.metrics)) {
      if (entry.device === undefined) continue;
      for (const template of entry.device.device) expect(otlp, name).toContain(`\`${template}\``);
    }
  });

  it('states the attribute limits and the own-names index attribute', () => {
    const { maxAttributes, maxAttributeLength } = DEFAULT_OTLP_MAPPING.limits;
    expect(flat(otlp)).toContain(
      `More than ${maxAttributes} attributes on a point, or a key or value over ${maxAttributeLength} characters`,
    );
    expect(otlp).toContain(`an \`${DEFAULT_OTLP_MAPPING.ownNames!.indexFrom}\` attribute`);
  });
});

describe('metric names in the docs', () => {
  it.each(Object.entries(pages))(
    'every hashwatt metric in a table of %s is a catalog name',
    (page, markdown) => {
      const metrics = mappingRows(markdown).flatMap((r) => r.metrics);
      for (const t of tablesOf(markdown).filter((t) => t.header[0] === 'metric'))
        metrics.push(...t.rows.map((r) => codeSpans(r[0] ?? '')[0] ?? ''));
      for (const name of metrics) expect(CATALOG.has(name), `${page}: ${name}`).toBe(true);
    },
  );

  it('README.md lists the whole catalog with each metric’s unit, type and index', () => {
    const table = tablesOf(index).find((t) => t.header.join('|') === 'metric|unit|type|index: values');
    expect(table, 'README.md: the metric table').toBeDefined();
    const documented = new Map(table!.rows.map((r) => [codeSpans(r[0] ?? '')[0] ?? '', r]));
    expect(new Set(documented.keys())).toEqual(new Set(CATALOG.keys()));
    for (const [name, def] of CATALOG) {
      const [, unit, type, indexCell] = documented.get(name)!;
      expect(unit, `${name}: unit`).toBe(def.unit);
      expect(type, `${name}: type`).toBe(def.type);
      if (def.index === undefined) expect(indexCell, `${name}: takes no index`).toBe('—');
      else expect(indexCell, `${name}: index`).toContain(def.index);
    }
  });
});

describe('links', () => {
  /** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
  const anchorsOf = (markdown: string): Set<string> =>
    new Set(
      [...markdown.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
        m[1]!
          .toLowerCase()
          .replace(/[^\p{L}\p{N} _-]/gu, '')
          .replace(/ /g, '-'),
      ),
    );

  it.each(readdirSync(DOCS).filter((f) => f.endsWith('.md')))(
    'every relative link of %s resolves',
    (page) => {
      const markdown = readDoc(page);
      for (const [, target] of markdown.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const [file, anchor] = target!.split('#');
        const resolved = path.resolve(DOCS, file === '' ? page : file!);
        expect(existsSync(resolved), `${page}: ${target}`).toBe(true);
        if (anchor !== undefined && resolved.endsWith('.md'))
          expect(anchorsOf(readFileSync(resolved, 'utf8')), `${page}: ${target}`).toContain(anchor);
      }
    },
  );
});
