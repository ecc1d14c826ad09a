/**
 * The ingest benchmark's peers as Debian packages, and installing the missing ones before they run,
 * as .ci/run does for the test suite's packages: `apt-get update`, then one `apt-get install -y`
 * of every missing package, as root and non-interactive. A peer that is still missing afterwards
 * is skipped with a reason naming its package, and no ratio is reported against it.
 */
import { execFile } from 'node:child_process';
import { findBinary } from './line-protocol-peer.ts';

/** Each peer's binary and the Debian package that ships it. */
export const PEER_PACKAGES = {
  victoriametrics: { binary: 'victoria-metrics', debian: 'victoria-metrics' },
  influxdb: { binary: 'influxd', debian: 'influxdb' },
} as const;

export type PeerName = keyof typeof PEER_PACKAGES;

/** A peer's result when it could not run: why, in one line. */
export interface PeerSkipped {
  skipped: string;
}

/** apt-get update can hang on an unreachable mirror; an install of two packages takes well under this. */
const APT_TIMEOUT_MS = 10 * 60_000;

/** The skip reason of a peer whose package is not installed: names the exact Debian package. */
export function missingPackage(debianPackage: string, reason: string): PeerSkipped {
  return { skipped: `package ${debianPackage} is missing and could not be installed: ${reason}` };
}

/** Runs apt-get non-interactively; resolves null on success, else the last line of what it said. */
function aptGet(args: string[]): Promise<string | null> {
  return new Promise((resolve) =>
    execFile(
      'apt-get',
      args,
      {
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
        timeout: APT_TIMEOUT_MS,
        maxBuffer: 64 * 2 ** 20,
      },
      (err, out, errOut) => {
        if (!err) return resolve(null);
        const said = `${errOut}\n${out}`
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l !== '');
        // apt-get's own errors start with "E:"; the last one is the one that stopped it.
        const reason = said.filter((l) => l.startsWith('E:')).at(-1) ?? said.at(-1) ?? err.message;
        resolve(`apt-get ${args.join(' ')} failed: ${err.killed ? 'timed out' : reason}`);
      },
    ),
  );
}

/**
 * Installs the packages of `peers` whose binary is not on PATH. Returns, per peer, null when its
 * binary is there (already or now), or the skip result naming its package and why.
 */
export async function installMissingPeers(
  peers: readonly PeerName[],
  log: (line: string) => void,
): Promise<Record<PeerName, PeerSkipped | null>> {
  const outcome: Record<PeerName, PeerSkipped | null> = { victoriametrics: null, influxdb: null };
  const missing = peers.filter((p) => findBinary(PEER_PACKAGES[p].binary) === null);
  if (missing.length === 0) return outcome;
  const packages = missing.map((p) => PEER_PACKAGES[p].debian);
  const failAll = (reason: string) => {
    for (const p of missing) outcome[p] = missingPackage(PEER_PACKAGES[p].debian, reason);
    return outcome;
  };
  if (process.getuid?.() !== 0) return failAll('apt-get needs root and this is not root');
  log(`peers: installing ${packages.join(', ')} with apt-get`);
  const updateFailed = await aptGet(['update', '-qq']);
  if (updateFailed !== null) return failAll(updateFailed);
  const installFailed = await aptGet(['install', '-y', '-qq', ...packages]);
  // One unknown package fails the whole install: then try each alone to learn which one it was.
  const perPackage = new Map<string, string | null>();
  if (installFailed !== null && packages.length > 1) {
    for (const pkg of packages) perPackage.set(pkg, await aptGet(['install', '-y', '-qq', pkg]));
  }
  for (const p of missing) {
    const { binary, debian } = PEER_PACKAGES[p];
    if (findBinary(binary) !== null) continue;
    const failed = perPackage.has(debian) ? (perPackage.get(debian) ?? null) : installFailed;
    outcome[p] = missingPackage(debian, failed ?? `apt-get installed it, but ${binary} is not on PATH`);
  }
  return outcome;
}
