/** The engine's shared timers: each call at its time, one armed timer per length, cancelled calls never made. */
import { FakeClock } from '@idempotent-mq/testing';
import { describe, expect, it } from 'vitest';
import { Deadlines } from '../src/engine/deadlines.js';

/** A fake clock that counts the timers armed on it. */
function countingClock(): { clock: FakeClock; armed: number[] } {
  const clock = new FakeClock(0);
  const armed: number[] = [];
  const setTimeout = clock.setTimeout.bind(clock);
  clock.setTimeout = (fn: () => void, ms: number) => {
    armed.push(ms);
    return setTimeout(fn, ms);
  };
  return { clock, armed };
}

describe('Deadlines', () => {
  it('makes each call at its own time, in order, and never a cancelled one', async () => {
    const { clock } = countingClock();
    const deadlines = new Deadlines(clock);
    const fired: string[] = [];
    deadlines.after(100, () => fired.push(`a@${clock.now()}`));
    await clock.advance(30);
    const b = deadlines.after(100, () => fired.push(`b@${clock.now()}`));
    await clock.advance(30);
    deadlines.after(100, () => fired.push(`c@${clock.now()}`));
    deadlines.after(50, () => fired.push(`d@${clock.now()}`));
    deadlines.cancel(b);
    await clock.advance(1000);
    expect(fired).toEqual(['a@100', 'd@110', 'c@160']);
    expect(clock.pending).toBe(0);
    deadlines.cancel(b); // cancelled twice, or after its time: nothing happens
  });

  it('arms one timer per length, whatever the number of calls under way', async () => {
    const { clock, armed } = countingClock();
    const deadlines = new Deadlines(clock);
    // A steady stream: every millisecond a call is made and the one before it is cancelled, as handlers
    // that finish long before their bound do.
    let previous = deadlines.after(1000, () => expect.unreachable('cancelled'));
    for (let i = 0; i < 5000; i++) {
      await clock.advance(1);
      deadlines.cancel(previous);
      previous = deadlines.after(1000, () => expect.unreachable('cancelled'));
    }
    deadlines.cancel(previous);
    await clock.advance(1000);
    // Armed when the stream began, then once per 1 000 ms as each firing found the next head: 5 or 6,
    // never one per call.
    expect(armed.length).toBeGreaterThanOrEqual(5);
    expect(armed.length).toBeLessThanOrEqual(6);
    expect(clock.pending).toBe(0);
  });

  it('a call that throws does not keep the others from running; its error surfaces once the lane is re-armed', async () => {
    const { clock } = countingClock();
    const deadlines = new Deadlines(clock);
    const fired: string[] = [];
    deadlines.after(10, () => {
      throw new Error('boom');
    });
    deadlines.after(10, () => fired.push(`b@${clock.now()}`));
    await clock.advance(5);
    deadlines.after(10, () => fired.push(`c@${clock.now()}`));
    await expect(clock.advance(5)).rejects.toThrow('boom');
    expect(fired).toEqual(['b@10']);
    await clock.advance(10);
    expect(fired).toEqual(['b@10', 'c@15']);
    expect(clock.pending).toBe(0);
  });

  it('bound(): settles as the work does in time, rejects at the bound, and drops what comes later', async () => {
    const { clock } = countingClock();
    const deadlines = new Deadlines(clock);
    await expect(deadlines.bound(Promise.resolve(7), 100, () => new Error('late'))).resolves.toBe(7);
    await expect(
      deadlines.bound(Promise.reject(new Error('own')), 100, () => new Error('late')),
    ).rejects.toThrow('own');
    let finish: (value: number) => void = () => {};
    const slow = new Promise<number>((resolve) => {
      finish = resolve;
    });
    const bounded = deadlines.bound(slow, 100, () => new Error('timed out after 100 ms'));
    const settled = bounded.then(
      (value) => ({ value }),
      (error: Error) => ({ error: error.message, at: clock.now() }),
    );
    await clock.advance(99);
    await clock.advance(1);
    finish(8);
    expect(await settled).toEqual({ error: 'timed out after 100 ms', at: 100 });
  });
});
