import { afterEach, describe, expect, it } from 'vitest';
import type { ReplyQuirk } from '../../simulators/protocols/cgminer/quirky-json.ts';
import type { SimulatedMiner } from '../../simulators/protocols/miner.ts';
import { CgminerCollector, sendCgminerCommand } from '../../src/agent/collectors/cgminer/collector.ts';
import { PollError } from '../../src/agent/collectors/collector.ts';
import { MinerCollector } from '../../src/agent/collectors/miner.ts';
import { context, rawServer, startMiner, targetOf } from './support.ts';

const started: { close: () => Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.close()));
});

async function miner(...args: Parameters<typeof startMiner>): Promise<SimulatedMiner> {
  const m = await startMiner(...args);
  started.push(m);
  return m;
}

async function failure(promise: Promise<unknown>): Promise<PollError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof PollError) return error;
    throw error;
  }
  throw new Error('expected the poll to fail');
}

describe('the CGMiner-family collector against protocol-faithful miners', () => {
  it.each([
    ['antminer', 'antminer', 'S21', false],
    ['braiins', 'braiins', 'S21', true],
    ['luxos', 'luxos', 'S19 XP', true],
    ['whatsminer', 'whatsminer', 'M60S', true],
    ['cgminer', 'cgminer', 'S21', false],
  ] as const)(
    '%s: identified, and every reading value is what the miner served',
    async (api, firmware, model, hasPower) => {
      const m = await miner({ api }, { model });
      const collector = new CgminerCollector();
      const result = await collector.poll(targetOf(m), context());
      expect(result.identity?.firmware).toBe(firmware);
      const [reading] = result.readings;
      const served = m.served.at(-1)!;
      expect(m.served).toHaveLength(1);
      expect(reading!.hashrate_ths).toBeCloseTo(served.hashrateThs, 6);
      expect(reading!.extras?.shares_accepted_total).toBe(served.sharesAccepted);
      expect(reading!.status).toBe('ok');
      if (hasPower) expect(reading!.power_w).toBe(served.powerW);
      else expect(reading!.power_w).toBeUndefined();
      if (api !== 'cgminer') {
        expect(reading!.model).toBe(model);
        expect(Object.keys(reading!.extras?.chip_temp_c as object)).toEqual(['0', '1', '2']);
        expect(reading!.fan_rpm).toBe(4800); // the mean of the fans the firmware lists
      }
    },
  );

  it('stock Antminer refuses joined commands: asked one command per connection from then on', async () => {
    const m = await miner({ api: 'antminer' });
    const collector = new CgminerCollector();
    await collector.poll(targetOf(m), context());
    const afterFirst = m.stats.connections;
    expect(afterFirst).toBe(5); // version, the refused join, summary, stats, pools
    await collector.poll(targetOf(m), context());
    expect(m.stats.connections - afterFirst).toBe(3);
    expect(m.stats.replies).toMatchObject({ summary: 2, stats: 2, pools: 2 });
  });

  it('firmware that takes joined commands is asked once per poll', async () => {
    const m = await miner({ api: 'braiins' });
    const collector = new CgminerCollector();
    await collector.poll(targetOf(m), context());
    const before = m.stats.connections;
    const result = await collector.poll(targetOf(m), context());
    expect(m.stats.connections - before).toBe(1);
    expect(result.readings[0]!.power_w).toBeGreaterThan(3000);
  });

  const QUIRKS: [ReplyQuirk, string][] = [
    ['nul', 'trailing_nul'],
    ['trailing_comma', 'trailing_comma'],
    ['missing_comma', 'missing_comma'],
    ['leading_comma', 'leading_comma'],
    ['non_finite', 'non_finite'],
    ['control_char', 'control_character'],
  ];
  it.each(QUIRKS)('repairs a reply with %s and reads it whole', async (quirk, repair) => {
    const m = await miner({ api: 'antminer', cleanFirmware: true, quirks: [quirk], nonFinite: true });
    const result = await new CgminerCollector().poll(targetOf(m), context());
    expect(result.repairs).toContain(repair);
    expect(result.problems).toEqual([]);
    expect(result.readings[0]!.hashrate_ths).toBeCloseTo(m.served.at(-1)!.hashrateThs, 6);
    expect(result.readings[0]!.extras?.chip_temp_c).toBeDefined();
  });

  it('all the quirks at once, as the worst firmware writes them', async () => {
    const m = await miner({
      api: 'antminer',
      quirks: ['leading_comma', 'non_finite', 'control_char'],
      nonFinite: true,
    });
    const result = await new CgminerCollector().poll(targetOf(m), context());
    expect(new Set(result.repairs)).toEqual(
      new Set([
        'trailing_nul',
        'trailing_comma',
        'missing_comma',
        'leading_comma',
        'non_finite',
        'control_character',
      ]),
    );
    expect(result.readings[0]!.extras?.shares_accepted_total).toBe(m.served.at(-1)!.sharesAccepted);
  });

  it('a join answered with garbage is a refusal: asked one by one, nothing lost', async () => {
    const m = await miner({ api: 'luxos', garbledJoin: true });
    const collector = new CgminerCollector();
    const first = await collector.poll(targetOf(m), context());
    expect(first.problems.join()).toContain('joined commands: malformed');
    expect(first.readings[0]!.power_w).toBe(m.served.at(-1)!.powerW);
    const before = m.stats.connections;
    await collector.poll(targetOf(m), context());
    expect(m.stats.connections - before).toBe(4); // summary, stats, pools, power: no join again
  });

  it('a Whatsminer that refuses `version` is read as cgminer, then recognised by its summary', async () => {
    const m = await miner({ api: 'whatsminer', refuseVersion: true });
    const collector = new CgminerCollector();
    const first = await collector.poll(targetOf(m), context());
    expect(first.identity?.firmware).toBe('whatsminer');
    const second = await collector.poll(targetOf(m), context());
    expect(second.readings[0]).toMatchObject({ power_w: m.served.at(-1)!.powerW, model: 'M60S' });
  });

  it("reads the generic fork's `Tenperature`", async () => {
    const m = await miner({ api: 'cgminer', typo: true });
    const result = await new CgminerCollector().poll(targetOf(m), context());
    expect(result.readings[0]!.temp_c).toBeGreaterThan(65);
  });

  it('a reply cut short once is asked again; cut every time, the poll fails as truncated', async () => {
    const once = await miner({ api: 'braiins', fault: { kind: 'truncate', every: 2 } });
    const collector = new CgminerCollector();
    const result = await collector.poll(targetOf(once), context());
    expect(result.problems.join()).toContain('truncated, asked again');
    expect(result.readings).toHaveLength(1);
    expect(once.stats.truncated).toBe(1);

    const always = await miner({ api: 'braiins', fault: { kind: 'truncate' } });
    const error = await failure(new CgminerCollector().poll(targetOf(always), context()));
    expect(error.code).toBe('truncated');
    expect(always.served).toHaveLength(0);
  });

  it('a miner that hangs fails the poll at its timeout; one that resets, as reset; none, as refused', async () => {
    const hung = await miner({ api: 'antminer', fault: { kind: 'hang' } });
    const t0 = performance.now();
    const timeout = await failure(new CgminerCollector().poll(targetOf(hung), context(300)));
    expect(timeout.code).toBe('timeout');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(hung.stats.hangs).toBe(1);

    const reset = await miner({ api: 'antminer', fault: { kind: 'reset' } });
    expect((await failure(new CgminerCollector().poll(targetOf(reset), context()))).code).toBe('reset');
    expect(reset.stats.resets).toBe(1);

    const dead = await miner({ api: 'antminer', fault: { kind: 'dead' } });
    const free = await rawServer(() => null);
    const port = free.port;
    await free.close(); // a port nobody listens on now
    expect((await failure(new CgminerCollector().poll({ ...targetOf(dead), port }, context()))).code).toBe(
      'refused',
    );
  });

  it('reports what cannot be read: garbage, an error for summary, an answer larger than any miner writes', async () => {
    const garbage = await rawServer(() => '{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"GHS 5s":12]]}\0');
    started.push(garbage);
    const g = await failure(
      sendCgminerCommand('127.0.0.1', garbage.port, 'summary', { timeoutMs: 1000, connectTimeoutMs: 500 }),
    );
    expect(g.code).toBe('malformed');

    const refusing = await rawServer((req) =>
      req.includes('version')
        ? '{"STATUS":[{"STATUS":"S"}],"VERSION":[{"CGMiner":"4.11.1"}],"id":1}'
        : '{"STATUS":[{"STATUS":"E","Code":45,"Msg":"Access denied to \'summary\' command"}],"id":1}',
    );
    started.push(refusing);
    const target = {
      type: 'miner' as const,
      id: 'x',
      api: 'cgminer' as const,
      host: '127.0.0.1',
      port: refusing.port,
      device: 'x',
    };
    const e = await failure(new CgminerCollector().poll(target, context()));
    expect(e.code).toBe('command_error');
    expect(e.message).toContain('Access denied');

    const huge = await rawServer((_req, socket) => {
      socket.write(`{"STATUS":[{"STATUS":"S"}],"X":"${'x'.repeat(2 * 1024 * 1024)}"}`);
      return null;
    });
    started.push(huge);
    const h = await failure(
      sendCgminerCommand('127.0.0.1', huge.port, 'stats', { timeoutMs: 2000, connectTimeoutMs: 500 }),
    );
    expect(h.code).toBe('too_large');
  });

  it('does not wait for the close when the reply is complete (firmware that keeps the socket open)', async () => {
    const open = await rawServer(() => '{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"MHS av":5000000}],"id":1}');
    started.push(open);
    const reply = await sendCgminerCommand('127.0.0.1', open.port, 'summary', {
      timeoutMs: 5000,
      connectTimeoutMs: 500,
    });
    expect(reply.value).toMatchObject({ SUMMARY: [{ 'MHS av': 5000000 }] });
  });

  it('`auto` finds 4028 first and the V3 API on 4433 when 4028 refuses', async () => {
    // Real ports on addresses of their own, as miners on a site network.
    const v2 = await miner({ api: 'whatsminer' }, { host: '127.0.11.2', port: 4028 });
    const v3 = await miner({ api: 'whatsminer-v3' }, { host: '127.0.11.3', port: 4433 });
    const collector = new MinerCollector();
    const auto = (m: SimulatedMiner) => ({ ...targetOf(m, m.host), api: 'auto' as const, port: undefined });
    const a = await collector.poll(auto(v2), context());
    const b = await collector.poll(auto(v3), context());
    expect([a.identity?.firmware, b.identity?.firmware]).toEqual(['whatsminer', 'whatsminer-v3']);
    expect(collector.identity(auto(v3))?.firmware).toBe('whatsminer-v3');
    const before = v3.stats.connections;
    await collector.poll(auto(v3), context());
    expect(v3.stats.connections - before).toBe(3); // summary, edevs, pools: 4028 not asked again
  });
});
