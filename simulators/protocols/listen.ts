import type net from 'node:net';

/**
 * Listens on host:port and resolves with the port bound (port 0: any free one). Rejects with the
 * system's error: EADDRINUSE when the port is taken, EADDRNOTAVAIL when the address is not
 * configured (macOS only answers on 127.0.0.1 unless aliases are added).
 */
export function listenTcp(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen({ host, port, backlog: 128 }, () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}
