import { describe, expect, it } from 'vitest';
import { type ServerCpu, serverCpuBetweenUs } from '../bench/support/postgres-cpu.ts';

// The benchmarks' count of the Postgres server's CPU in a window (bench/rollup-ingest.ts): every
// process once, for its time inside the window only.
const at = (children: [number, number][], postmasterAndExitedUs: number): ServerCpu => ({
  children: new Map(children),
  postmasterAndExitedUs,
});

describe("the server's CPU between two readings", () => {
  it('counts a process alive at both ends by its difference, and one born since whole', () => {
    expect(
      serverCpuBetweenUs(
        at([[10, 5_000]], 100),
        at(
          [
            [10, 7_000],
            [11, 300],
          ],
          100,
        ),
      ),
    ).toBe(2_300);
  });

  it('counts a busy connection that closed in the window for its time in it, never as negative load', () => {
    // Pid 10 had used 60 s before the window and 1 s more before it exited; the postmaster reaped it.
    const before = at(
      [
        [10, 60_000_000],
        [12, 1_000],
      ],
      500,
    );
    const after = at([[12, 3_000]], 500 + 61_000_000);
    expect(serverCpuBetweenUs(before, after)).toBe(1_000_000 + 2_000);
  });

  it('counts a process that was born and exited inside the window whole', () => {
    expect(serverCpuBetweenUs(at([], 0), at([], 40_000))).toBe(40_000);
  });
});
