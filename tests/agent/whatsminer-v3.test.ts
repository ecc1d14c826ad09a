import { afterEach, describe, expect, it } from 'vitest';
import { PollError } from '../../src/agent/collectors/collector.ts';
import {
  encodeV3Frame,
  sendV3Command,
  WhatsminerV3Collector,
} from '../../src/agent/collectors/whatsminer-v3.ts';
import { context, rawServer, startMiner, targetOf } from './support.ts';

const started: { close: () => Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.close()));
});

async function failure(promise: Promise<unknown>): Promise<PollError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof PollError) return error;
    throw error;
  }
  throw new Error('expected a failure');
}

const opts = { timeoutMs: 1000, connectTimeoutMs: 500 };

describe('Whatsminer API V3 (length-prefixed JSON on 4433)', () => {
  it('reads summary, edevs and pools of a simulated M60S, values as served', async () => {
    const m = await startMiner({ api: 'whatsminer-v3' });
    started.push(m);
    const collector = new WhatsminerV3Collector();
    const result = await collector.poll(targetOf(m), context());
    const served = m.served.at(-1)!;
    expect(result.identity).toEqual({ firmware: 'whatsminer-v3', model: 'M60S', version: '20241107.22.REL' });
    expect(result.readings[0]).toMatchObject({
      kind: 'asic',
      model: 'M60S',
      hashrate_ths: served.hashrateThs,
      power_w: served.powerW,
      expected_hashrate_ths: 186,
      extras: {
        shares_accepted_total: served.sharesAccepted,
        inlet_temp_c: 24,
        power_limit_w: expect.any(Number),
      },
    });
    expect(m.stats.replies).toEqual({ 'get.device.info': 1, summary: 1, edevs: 1, pools: 1 });
    // The device is identified once.
    await collector.poll(targetOf(m), context());
    expect(m.stats.replies['get.device.info']).toBe(1);
  });

  it('reassembles a frame that arrives a few bytes at a time', async () => {
    const frame = encodeV3Frame({ code: 0, when: 1, msg: { summary: { 'hash-realtime': 186.5 } } });
    const slow = await rawServer((_req, socket) => {
      let i = 0;
      const drip = () => {
        if (i >= frame.length || socket.destroyed) return;
        socket.write(frame.subarray(i, i + 3));
        i += 3;
        setTimeout(drip, 1);
      };
      drip();
      return null;
    });
    started.push(slow);
    const reply = await sendV3Command(
      '127.0.0.1',
      slow.port,
      { cmd: 'get.miner.status', param: 'summary' },
      opts,
    );
    expect(reply).toMatchObject({ msg: { summary: { 'hash-realtime': 186.5 } } });
  });

  it('refuses a frame announcing more than any reply, and reports one cut short', async () => {
    const huge = await rawServer(() => {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(0x7fffffff, 0);
      return b;
    });
    const cut = await rawServer((_req, socket) => {
      socket.end(encodeV3Frame({ code: 0, msg: { summary: {} } }).subarray(0, 12));
      return null;
    });
    started.push(huge, cut);
    expect((await failure(sendV3Command('127.0.0.1', huge.port, { cmd: 'x' }, opts))).code).toBe('malformed');
    expect((await failure(sendV3Command('127.0.0.1', cut.port, { cmd: 'x' }, opts))).code).toBe('truncated');
  });

  it('an error code for summary fails the poll; for edevs it only thins the reading', async () => {
    const picky = await rawServer((req) => {
      const asked = JSON.parse(req.subarray(4).toString()) as { cmd: string; param?: string };
      if (asked.cmd === 'get.device.info')
        return encodeV3Frame({ code: 0, msg: { miner: { type: 'M66S' } } });
      if (asked.param === 'summary')
        return encodeV3Frame({ code: 0, msg: { summary: { 'hash-realtime': 250.1 } } });
      return encodeV3Frame({ code: -4, msg: 'invalid command' });
    });
    started.push(picky);
    const target = {
      type: 'miner' as const,
      id: 'p',
      api: 'whatsminer-v3' as const,
      host: '127.0.0.1',
      port: picky.port,
      device: 'p',
    };
    const result = await new WhatsminerV3Collector().poll(target, context());
    expect(result.readings[0]).toMatchObject({ hashrate_ths: 250.1, model: 'M66S' });
    expect(result.problems).toEqual(['edevs: code -4', 'pools: code -4']);

    const broken = await rawServer((req) =>
      req.includes('summary')
        ? encodeV3Frame({ code: -1, msg: 'busy' })
        : encodeV3Frame({ code: 0, msg: {} }),
    );
    started.push(broken);
    const e = await failure(
      new WhatsminerV3Collector().poll({ ...target, id: 'b', port: broken.port }, context()),
    );
    expect(e.code).toBe('command_error');
  });

  it('a hung miner times out and a reset one is reported as reset', async () => {
    const hung = await startMiner({ api: 'whatsminer-v3', fault: { kind: 'hang' } });
    const reset = await startMiner({ api: 'whatsminer-v3', fault: { kind: 'reset' } });
    started.push(hung, reset);
    expect((await failure(new WhatsminerV3Collector().poll(targetOf(hung), context(300)))).code).toBe(
      'timeout',
    );
    expect((await failure(new WhatsminerV3Collector().poll(targetOf(reset), context()))).code).toBe('reset');
  });
});
