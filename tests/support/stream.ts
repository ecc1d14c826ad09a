import WebSocket from 'ws';

export interface StreamMessage {
  ack?: number;
  seq?: number | null;
  accepted?: number;
  duplicates?: number;
  rejected?: { index: number; field: string; code: string }[];
  retry_after_ms?: number;
  error?: { code: string; message?: string };
}

/** A WebSocket agent connection that records every message and the close code. */
export class StreamClient {
  readonly ws: WebSocket;
  readonly messages: StreamMessage[] = [];
  closeCode: number | undefined;
  readonly #waiters: (() => void)[] = [];

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data) => {
      this.messages.push(JSON.parse(String(data)) as StreamMessage);
      this.#wake();
    });
    ws.on('close', (code) => {
      this.closeCode = code;
      this.#wake();
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  static async connect(
    base: string,
    token: string | undefined,
    options: WebSocket.ClientOptions = {},
  ): Promise<StreamClient> {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/api/v1/stream`, {
      ...options,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    const client = new StreamClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      ws.once('error', reject);
    });
    return client;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Waits until `predicate` holds over the messages (or the socket closes), up to `timeoutMs`. */
  async until(predicate: (messages: StreamMessage[]) => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.messages)) {
      if (this.closeCode !== undefined) throw new Error(`socket closed with ${this.closeCode}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; got ${JSON.stringify(this.messages.slice(-3))}`);
      // Messages wake the wait; the short timer re-checks predicates over state outside the socket.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 25));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async closed(timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.closeCode === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (this.closeCode === undefined) throw new Error('socket did not close');
    return this.closeCode;
  }

  close(): void {
    this.ws.close();
  }
}
