// What a V8 heap snapshot holds: self size summed per node type and constructor, largest first,
// and the strings grouped by shape (digits folded to #), with how many are copies of another.
// How docs/performance.md read the service's heap with 200,000 devices:
//
//   BENCH_SERVICE_NODE_FLAGS="--max-semi-space-size=8 --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=DIR" \
//     node bench/ingest.ts --serve        # then: kill -USR2 <the pid it prints>
//   node --max-old-space-size=4000 bench/heap-summary.ts DIR/FILE.heapsnapshot [TOP]
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

const [file, top = '25'] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node bench/heap-summary.ts FILE.heapsnapshot [TOP]\n');
  process.exit(2);
}
const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
const fields = snap.snapshot.meta.node_fields;
const types = snap.snapshot.meta.node_types[0];
const [width, iType, iName, iSize] = [
  fields.length,
  fields.indexOf('type'),
  fields.indexOf('name'),
  fields.indexOf('self_size'),
];
const STRING_TYPES = new Set(['string', 'concatenated string', 'sliced string']);

const byKind = new Map<string, [bytes: number, count: number]>();
const byShape = new Map<string, [bytes: number, count: number]>();
const byValue = new Map<string, [bytes: number, count: number]>();
const add = (m: Map<string, [number, number]>, key: string, bytes: number) => {
  const e = m.get(key) ?? [0, 0];
  e[0] += bytes;
  e[1]++;
  m.set(key, e);
};
let total = 0;
for (let i = 0; i < snap.nodes.length; i += width) {
  const type = types[snap.nodes[i + iType]!]!;
  const name = snap.strings[snap.nodes[i + iName]!]!;
  const bytes = snap.nodes[i + iSize]!;
  total += bytes;
  if (STRING_TYPES.has(type)) {
    add(byKind, `${type} (strings)`, bytes);
    add(
      byShape,
      name
        .replace(/\s+/g, ' ')
        .replace(/[0-9]+/g, '#')
        .slice(0, 40),
      bytes,
    );
    add(byValue, name, bytes);
  } else add(byKind, `${type} ${name.slice(0, 60)}`, bytes);
}
let copiesBytes = 0;
let copies = 0;
for (const [bytes, count] of byValue.values()) {
  if (count < 2) continue;
  copiesBytes += (bytes * (count - 1)) / count;
  copies += count - 1;
}

const mb = (b: number) => (b / 2 ** 20).toFixed(1).padStart(7);
const print = (title: string, m: Map<string, [number, number]>) => {
  console.log(`\n${title}\n     MB     count`);
  for (const [key, [bytes, count]] of [...m].sort((a, b) => b[1][0] - a[1][0]).slice(0, Number(top)))
    console.log(`${mb(bytes)} ${String(count).padStart(9)}  ${key}`);
};
console.log(
  `heap ${mb(total).trim()} MB; strings that copy another: ${copies}, ${mb(copiesBytes).trim()} MB`,
);
print('by type and constructor', byKind);
print('strings by shape (digits as #)', byShape);
