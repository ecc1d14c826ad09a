// Plain JavaScript on purpose: this runs before any .ts file is loaded, on whatever Node the machine
// has, so that a Node without type stripping gets a sentence instead of ERR_UNKNOWN_FILE_EXTENSION.
// The minimum comes from package.json's "engines", the one place it is written.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** [major, minor, patch] of "22.18", "v22.18.0" or ">=22.18"; null when it is not a version. */
export function parseVersion(text) {
  const match = /^\s*(?:>=\s*)?v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(text);
  if (!match) return null;
  return [Number(match[1]), Number(match[2] ?? 0), Number(match[3] ?? 0)];
}

/** Whether `version` is at least `minimum`, comparing major, then minor, then patch. */
export function isAtLeast(version, minimum) {
  for (let i = 0; i < 3; i++) {
    if (version[i] !== minimum[i]) return version[i] > minimum[i];
  }
  return true;
}

/** The minimum Node version of package.json's engines.node (">=22.18"). */
export function requiredNodeVersion() {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  const minimum = parseVersion(String(pkg.engines?.node ?? ''));
  if (!minimum) throw new Error(`package.json engines.node is not ">=X.Y": ${pkg.engines?.node}`);
  return minimum;
}

/** The message for a Node older than required, or null when `nodeVersion` is recent enough. */
export function unsupportedNodeMessage(nodeVersion, minimum) {
  const version = parseVersion(nodeVersion);
  if (version && isAtLeast(version, minimum)) return null;
  const wanted = `${minimum[0]}.${minimum[1]}`;
  return (
    `hashwatt: Node.js ${nodeVersion} is too old; hashwatt needs Node.js >= ${wanted}, which runs its ` +
    `TypeScript sources directly. In the repository, run ". .ci/node.sh" (it puts Node 24 first on ` +
    `PATH) or install Node.js >= ${wanted}, then try again.`
  );
}

/** Exits with status 1 and one line on stderr when this Node is older than package.json requires. */
export function requireSupportedNode(nodeVersion = process.versions.node) {
  const message = unsupportedNodeMessage(nodeVersion, requiredNodeVersion());
  if (message === null) return;
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

// `node bin/node-check.js` (as .ci/node.sh runs it): exit status 0 when this Node will do.
if (process.argv[1] === fileURLToPath(import.meta.url)) requireSupportedNode();
