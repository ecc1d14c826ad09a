/** Helpers for the agent's tests: simulated miners on real sockets, fed a fixed physics sample. */
import net from 'node:net';
import type { AsicModelName } from '../../simulators/physics/asic.ts';
import type { AsicDetail } from '../../simulators/physics/site.ts';
import { type MinerBehaviour, SimulatedMiner } from '../../simulators/protocols/miner.ts';
import type { MinerTarget, PollContext } from '../../src/agent/collectors/collector.ts';

/** A hashing S21 (or the model given) as the physics would have it. */
export function hashing(model: AsicModelName = 'S21', index = 3): AsicDetail {
  return {
    name: `hall-a/r01/unit-${index}`,
    index,
    model,
    mode: 'hashing',
    boardsLost: 0,
    sample: { powerW: 3512.4, hashrateThs: 201.234567, tempC: 65.3, fanRpm: 4800, status: 'ok' },
  };
}

/** A simulated miner on 127.0.0.1 at a free port, listening. */
export async function startMiner(
  behaviour: MinerBehaviour,
  options: { model?: AsicModelName; host?: string; port?: number; detail?: AsicDetail } = {},
): Promise<SimulatedMiner> {
  const model = options.model ?? (behaviour.api.startsWith('whatsminer') ? 'M60S' : 'S21');
  const miner = new SimulatedMiner({
    device: `sim-${behaviour.api}`,
    index: 3,
    model,
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    behaviour,
    bootMs: Date.now() - 3_600_000,
  });
  miner.update(options.detail ?? hashing(model), 24);
  await miner.listen();
  return miner;
}

export function targetOf(miner: SimulatedMiner, device = 'hall-a/r01/s21-001'): MinerTarget {
  return {
    type: 'miner',
    id: `miner:${device}`,
    api: miner.behaviour.api === 'whatsminer-v3' ? 'whatsminer-v3' : 'cgminer',
    host: miner.host,
    port: miner.port,
    device,
  };
}

export const context = (timeoutMs = 2000): PollContext => ({
  ts: Date.now(),
  timeoutMs,
  connectTimeoutMs: 1000,
});

/** A TCP server that answers every connection with `reply(request)` (bytes, or null to stay silent). */
export async function rawServer(
  reply: (request: Buffer, socket: net.Socket) => Buffer | string | null,
  host = '127.0.0.1',
): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', (data) => {
      const answer = reply(data, socket);
      if (answer !== null) socket.write(answer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Polls `check` until it holds or `timeoutMs` passes; the last value of check. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  everyMs = 25,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
