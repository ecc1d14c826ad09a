import net from 'node:net';

/**
 * A TCP proxy in front of Postgres, so a test can make the database unreachable (and bring it back)
 * for one service without stopping the server other test files share.
 */
export class TcpProxy {
  #target: { host: string; port: number };
  readonly #sockets = new Set<net.Socket>();
  readonly #server: net.Server;
  #cut = false;

  constructor(targetHost: string, targetPort: number) {
    this.#target = { host: targetHost, port: targetPort };
    this.#server = net.createServer((client) => this.#accept(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as net.AddressInfo).port;
  }

  #accept(client: net.Socket): void {
    if (this.#cut) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.#target.port, this.#target.host);
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  }

  /** Drops every open connection and refuses new ones, as a dead server would. */
  cut(): void {
    this.#cut = true;
    for (const s of this.#sockets) s.destroy();
  }

  restore(): void {
    this.#cut = false;
  }

  /** Points new connections at another port (a restarted server). */
  retarget(port: number): void {
    this.#target = { ...this.#target, port };
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
