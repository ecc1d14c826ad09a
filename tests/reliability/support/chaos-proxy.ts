import net from 'node:net';

/** A small seeded PRNG (mulberry32), so a run's cuts can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ChaosOptions {
  random: () => number;
  /** Timed cuts: a random share of the open connections dies at random intervals in this range. */
  intervalMs: [number, number];
  fraction: number;
  /**
   * Byte cuts: each connection dies after a random number of bytes in this range has gone from the
   * agent to the service (mid-frame, the service sees half a frame)...
   */
  upBytes: [number, number];
  /** ...or from the service to the agent (acknowledgements of committed frames lost on the way). */
  downBytes: [number, number];
}

export type CutKind = 'timed' | 'mid-upload' | 'mid-acks';

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  cut: boolean;
}

const between = (random: () => number, [lo, hi]: [number, number]) => lo + random() * (hi - lo);

/**
 * A TCP proxy that kills connections at random moments, as a flaky uplink or a load balancer
 * restart would: at random times, partway through an upload, or partway through the acks coming
 * back. Connections are reset, not closed: both ends see a dead link.
 */
export class ChaosProxy {
  readonly #targetPort: number;
  readonly #server: net.Server;
  readonly #pairs = new Set<Pair>();
  #options: ChaosOptions | undefined;
  #timer: NodeJS.Timeout | undefined;
  accepted = 0;
  readonly cuts: Record<CutKind, number> = { timed: 0, 'mid-upload': 0, 'mid-acks': 0 };

  constructor(targetPort: number) {
    this.#targetPort = targetPort;
    this.#server = net.createServer((client) => this.#accept(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as net.AddressInfo).port;
  }

  get connectionsCut(): number {
    return this.cuts.timed + this.cuts['mid-upload'] + this.cuts['mid-acks'];
  }

  #accept(client: net.Socket): void {
    this.accepted++;
    const upstream = net.connect(this.#targetPort, '127.0.0.1');
    const pair: Pair = { client, upstream, cut: false };
    this.#pairs.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      this.#pairs.delete(pair);
    };
    for (const s of [client, upstream]) {
      s.on('error', drop);
      s.on('close', drop);
    }
    const o = this.#options;
    this.#forward(
      pair,
      client,
      upstream,
      o ? between(o.random, o.upBytes) : Number.POSITIVE_INFINITY,
      'mid-upload',
    );
    this.#forward(
      pair,
      upstream,
      client,
      o ? between(o.random, o.downBytes) : Number.POSITIVE_INFINITY,
      'mid-acks',
    );
  }

  /** Copies `from` → `to` with backpressure; past `budget` bytes, forwards only the part within it and cuts. */
  #forward(pair: Pair, from: net.Socket, to: net.Socket, budget: number, kind: CutKind): void {
    let passed = 0;
    from.on('data', (chunk: Buffer) => {
      if (pair.cut) return;
      if (this.#options && passed + chunk.length > budget) {
        const part = chunk.subarray(0, Math.max(0, Math.floor(budget - passed)));
        if (part.length > 0) to.write(part);
        this.#cut(pair, kind);
        return;
      }
      passed += chunk.length;
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    from.on('end', () => to.end());
  }

  #cut(pair: Pair, kind: CutKind): void {
    if (pair.cut) return;
    pair.cut = true;
    this.cuts[kind]++;
    // setImmediate: the partial write above reaches the kernel before the reset.
    setImmediate(() => {
      pair.client.resetAndDestroy();
      pair.upstream.resetAndDestroy();
      this.#pairs.delete(pair);
    });
  }

  /** Starts cutting (timed and byte-triggered) until `stopCutting()`. */
  startCutting(options: ChaosOptions): void {
    this.#options = options;
    const schedule = () => {
      this.#timer = setTimeout(
        () => {
          const open = [...this.#pairs].filter((p) => !p.cut);
          for (const pair of open) if (options.random() < options.fraction) this.#cut(pair, 'timed');
          schedule();
        },
        between(options.random, options.intervalMs),
      );
    };
    schedule();
  }

  /** No more cuts; connections opened from now on live (budgets of open ones are lifted too). */
  stopCutting(): void {
    this.#options = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async close(): Promise<void> {
    this.stopCutting();
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
