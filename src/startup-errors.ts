/** What the listening socket's error means for the person who started hashwatt, in one line. */
export interface ListenTarget {
  host: string;
  port: number;
  /** How the process was started, for the example in the message ("npm start", "npm run demo"). */
  command: string;
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  return typeof error.code === 'string' ? error.code : undefined;
}

/**
 * One line for an error from `server.listen` that the user can fix (port taken, privileged port,
 * address not on this machine); null for anything else, which keeps its stack.
 */
export function describeListenError(error: unknown, { host, port, command }: ListenTarget): string | null {
  const other = port > 0 && port < 65535 ? port + 1 : 8080;
  switch (errorCode(error)) {
    case 'EADDRINUSE':
      return `port ${port} on ${host} is already in use (another hashwatt, or another program); pick another port with PORT, e.g. PORT=${other} ${command}`;
    case 'EACCES':
      return `port ${port} on ${host} needs privileges this process does not have; pick a port above 1023 with PORT, e.g. PORT=${other} ${command}`;
    case 'EADDRNOTAVAIL':
      return `HOST=${host} is not an address of this machine; use HOST=0.0.0.0 (every interface) or HOST=127.0.0.1`;
    default:
      return null;
  }
}
