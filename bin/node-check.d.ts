// Types of bin/node-check.js, which stays plain JavaScript so it runs on a Node too old for .ts.
export type Version = [major: number, minor: number, patch: number];
export function parseVersion(text: string): Version | null;
export function isAtLeast(version: Version, minimum: Version): boolean;
export function requiredNodeVersion(): Version;
export function unsupportedNodeMessage(nodeVersion: string, minimum: Version): string | null;
export function requireSupportedNode(nodeVersion?: string): void;
