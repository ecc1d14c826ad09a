import { describe, expect, it } from 'vitest';
import { SiteTurns } from './site-turns.ts';

describe('SiteTurns', () => {
  it('runs one piece at a time, sites in turn, each site in its own order', async () => {
    const turns = new SiteTurns();
    const ran: string[] = [];
    const pieces = [
      ...[1, 2, 3, 4].map((i) => turns.run(1, () => ran.push(`flood-${i}`))),
      turns.run(2, () => ran.push('steady-1')),
      turns.run(2, () => ran.push('steady-2')),
    ];
    await Promise.all(pieces);
    // The first flood piece starts at once; flood-2 was queued before the steady site came, so it
    // has the next turn; from then on the rotation alternates the two sites.
    expect(ran).toEqual(['flood-1', 'flood-2', 'steady-1', 'flood-3', 'steady-2', 'flood-4']);
  });

  it("passes each piece's result or error to its caller, and goes on after an error", async () => {
    const turns = new SiteTurns();
    const failing = turns.run(1, () => {
      throw new Error('bad batch');
    });
    const fine = turns.run(1, () => 42);
    await expect(failing).rejects.toThrow('bad batch');
    await expect(fine).resolves.toBe(42);
    expect(turns.waiting).toBe(0);
  });

  it('lets I/O run between pieces', async () => {
    const turns = new SiteTurns();
    const order: string[] = [];
    const first = turns.run(1, () => {
      order.push('piece-1');
      setImmediate(() => order.push('io'));
    });
    const second = turns.run(1, () => order.push('piece-2'));
    await Promise.all([first, second]);
    expect(order).toEqual(['piece-1', 'io', 'piece-2']);
  });
});
