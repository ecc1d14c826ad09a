#!/usr/bin/env python3
"""Adds Biome's other-platform binaries to package-lock.json.

The npm registry this project's machines reach serves only the linux-x64/arm64 (glibc) builds of
@biomejs/cli-*, so `npm install` here writes a lock without the other platforms' optional
packages, and `npm ci` then refuses the lock as out of sync. Entries with the right os/cpu/libc
make the lock complete: npm skips them on this machine and fetches the matching one elsewhere.
Run after any `npm install` on such a machine: python3 .ci/complete-lockfile.py
"""
import collections
import json
import pathlib

PLATFORMS = {
    'android-arm64': ('android', 'arm64', None),
    'android-x64': ('android', 'x64', None),
    'darwin-arm64': ('darwin', 'arm64', None),
    'darwin-x64': ('darwin', 'x64', None),
    'linux-arm64': ('linux', 'arm64', 'glibc'),
    'linux-x64': ('linux', 'x64', 'glibc'),
    'linux-arm64-musl': ('linux', 'arm64', 'musl'),
    'linux-x64-musl': ('linux', 'x64', 'musl'),
    'win32-arm64': ('win32', 'arm64', None),
    'win32-x64': ('win32', 'x64', None),
}

path = pathlib.Path(__file__).resolve().parent.parent / 'package-lock.json'
lock = json.loads(path.read_text(), object_pairs_hook=collections.OrderedDict)
packages = lock['packages']
version = packages['node_modules/@biomejs/biome']['version']
added = []
for name, (os_, cpu, libc) in PLATFORMS.items():
    key = f'node_modules/@biomejs/cli-{name}'
    if key in packages:
        continue
    entry = collections.OrderedDict(version=version, cpu=[cpu], dev=True)
    if libc:
        entry['libc'] = [libc]
    entry.update(license='MIT OR Apache-2.0', optional=True, os=[os_], engines={'node': '>=14.21.3'})
    packages[key] = entry
    added.append(key)
lock['packages'] = collections.OrderedDict(sorted(packages.items(), key=lambda kv: (kv[0] != '', kv[0])))
path.write_text(json.dumps(lock, indent=2) + '\n')
print('added:', ', '.join(added) if added else 'nothing (lock already complete)')
