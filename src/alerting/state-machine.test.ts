import { describe, expect, it } from 'vitest';
import type { Condition } from './rules.ts';
import { type AlertEpisode, type AlertEvent, type AlertTiming, stepAlert } from './state-machine.ts';

const T0 = 1_000_000;

/** Runs a sequence of (seconds after T0, condition) through the machine; returns each step. */
function run(
  timing: AlertTiming,
  steps: [atS: number, condition: Condition][],
  start: AlertEpisode | null = null,
) {
  let episode = start;
  return steps.map(([atS, condition]) => {
    const step = stepAlert(episode, condition, atS, T0 + atS * 1000, timing);
    episode = step.next;
    return { atS, state: step.next?.state ?? 'inactive', events: step.events, episode: step.next };
  });
}

const states = (r: ReturnType<typeof run>) => r.map((s) => s.state);
const events = (r: ReturnType<typeof run>) => r.flatMap((s) => s.events);

describe('stepAlert', () => {
  const timing = { forMs: 10_000, resolveHoldMs: 5_000 };

  it.each<[string, [number, Condition][], string[], AlertEvent[]]>([
    [
      'pending → firing only once the condition has held for `for`',
      [
        [0, 'met'],
        [5, 'met'],
        [9.999, 'met'],
        [10, 'met'],
        [15, 'met'],
      ],
      ['pending', 'pending', 'pending', 'firing', 'firing'],
      ['pending', 'firing'],
    ],
    [
      'a pending alert is cancelled by one evaluation that does not find it',
      [
        [0, 'met'],
        [5, 'clear'],
        [6, 'met'],
        [15, 'met'],
        [16, 'met'],
      ],
      ['pending', 'inactive', 'pending', 'pending', 'firing'],
      ['pending', 'cancelled', 'pending', 'firing'],
    ],
    [
      'a dark site (unknown) cancels a pending alert',
      [
        [0, 'met'],
        [5, 'unknown'],
        [10, 'met'],
      ],
      ['pending', 'inactive', 'pending'],
      ['pending', 'cancelled', 'pending'],
    ],
    [
      'a firing alert resolves only after the condition stayed clear for the hold',
      [
        [0, 'met'],
        [10, 'met'],
        [20, 'clear'],
        [24, 'clear'],
        [25, 'clear'],
      ],
      ['pending', 'firing', 'firing', 'firing', 'inactive'],
      ['pending', 'firing', 'resolved'],
    ],
    [
      'a met evaluation during the hold starts the hold again',
      [
        [0, 'met'],
        [10, 'met'],
        [20, 'clear'],
        [24, 'met'],
        [25, 'clear'],
        [29, 'clear'],
        [30, 'clear'],
      ],
      ['pending', 'firing', 'firing', 'firing', 'firing', 'firing', 'inactive'],
      ['pending', 'firing', 'resolved'],
    ],
    [
      'unknown holds a firing alert and does not count towards its resolution',
      [
        [0, 'met'],
        [10, 'met'],
        [20, 'clear'],
        [22, 'unknown'],
        [100, 'unknown'],
        [101, 'clear'],
        [105, 'clear'],
        [106, 'clear'],
      ],
      ['pending', 'firing', 'firing', 'firing', 'firing', 'firing', 'firing', 'inactive'],
      ['pending', 'firing', 'resolved'],
    ],
    [
      'nothing happens while clear or unknown',
      [
        [0, 'clear'],
        [1, 'unknown'],
      ],
      ['inactive', 'inactive'],
      [],
    ],
  ])('%s', (_name, steps, expectedStates, expectedEvents) => {
    const result = run(timing, steps);
    expect(states(result)).toEqual(expectedStates);
    expect(events(result)).toEqual(expectedEvents);
  });

  it('fires at once without `for` (SiteDown), passing through pending', () => {
    const [first] = run({ forMs: 0, resolveHoldMs: 4_000 }, [[0, 'met']]);
    expect(first!.events).toEqual(['pending', 'firing']);
    expect(first!.episode).toMatchObject({ state: 'firing', pendingSinceMs: T0, firedAtMs: T0 });
  });

  it('resolves on the first clear evaluation without a hold', () => {
    const result = run({ forMs: 0, resolveHoldMs: 0 }, [
      [0, 'met'],
      [1, 'clear'],
    ]);
    expect(events(result)).toEqual(['pending', 'firing', 'resolved']);
  });

  it('does not flap when the value hovers at the threshold', () => {
    // Met and clear alternate every evaluation (15 s) for an hour: one firing, no resolution.
    const steps: [number, Condition][] = [];
    for (let s = 0; s < 3600; s += 15) steps.push([s, (s / 15) % 2 === 0 ? 'met' : 'clear']);
    const hovering = run({ forMs: 0, resolveHoldMs: 60_000 }, steps);
    expect(events(hovering)).toEqual(['pending', 'firing']);
    expect(hovering.at(-1)!.state).toBe('firing');
  });

  it('keeps the time the condition was first met, and the last value', () => {
    const result = run(timing, [
      [0, 'met'],
      [12, 'met'],
      [13, 'clear'],
    ]);
    expect(result.at(-1)!.episode).toEqual({
      state: 'firing',
      pendingSinceMs: T0,
      firedAtMs: T0 + 12_000,
      clearSinceMs: T0 + 13_000,
      value: 13,
    });
  });

  it('resumes a firing episode loaded after a restart without announcing it again', () => {
    const loaded: AlertEpisode = {
      state: 'firing',
      pendingSinceMs: T0 - 600_000,
      firedAtMs: T0 - 590_000,
      clearSinceMs: null,
      value: 700,
    };
    const result = run(
      timing,
      [
        [0, 'met'],
        [1, 'clear'],
        [6, 'clear'],
      ],
      loaded,
    );
    expect(events(result)).toEqual(['resolved']);
  });
});
