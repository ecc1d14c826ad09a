// Self time per function of a V8 CPU profile, largest first: how docs/performance.md reads the
// service's profiles (`NODE_OPTIONS="--cpu-prof --cpu-prof-dir=DIR" node bench/ingest.ts --serve`,
// then the simulator's load against it; the service writes DIR/*.cpuprofile when it stops).
//
//   node bench/profile-summary.ts FILE.cpuprofile [TOP]
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, top = '40'] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node bench/profile-summary.ts FILE.cpuprofile [TOP]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<string, number>();
let totalUs = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const frame = byId.get(profile.samples[i]!)!.callFrame;
  const key = `${frame.functionName || '(anonymous)'} ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber}`;
  const dt = profile.timeDeltas[i] ?? 0;
  selfUs.set(key, (selfUs.get(key) ?? 0) + dt);
  totalUs += dt;
}
for (const [key, us] of [...selfUs].sort((a, b) => b[1] - a[1]).slice(0, Number(top)))
  console.log(`${((us / totalUs) * 100).toFixed(1).padStart(5)} %  ${key}`);
console.log(`profile length ${(totalUs / 1e6).toFixed(1)} s`);
