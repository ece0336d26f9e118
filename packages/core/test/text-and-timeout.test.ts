/** The one code-point cut, the one well-formed check and the one timeout helper every package uses. */
import { FakeClock } from '@idempotent-mq/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  codePointLength,
  cutText,
  firstCodePoints,
  isWellFormedText,
  withTimeout,
} from '../src/adapter/index.js';

describe('text', () => {
  it('cuts at code points, never inside a surrogate pair', () => {
    expect(firstCodePoints('a😀b', 2)).toBe('a😀');
    expect(cutText('😀😀😀', 2)).toBe('😀😀…');
    expect(cutText('😀😀', 2)).toBe('😀😀');
    // A UTF-16 cut of the same string would have left a lone high surrogate.
    expect(isWellFormedText('😀😀😀'.slice(0, 3))).toBe(false);
    expect(isWellFormedText(cutText('😀😀😀', 1))).toBe(true);
  });

  it('keeps any well-formed string well-formed and within max code points (+ the ellipsis)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.integer({ min: 0, max: 20 }), (s, max) => {
        const cut = cutText(s, max);
        expect(isWellFormedText(cut)).toBe(true);
        if (codePointLength(s) <= max) expect(cut).toBe(s);
        else {
          expect(codePointLength(cut)).toBe(max + 1);
          expect(s.startsWith(cut.slice(0, -1))).toBe(true);
        }
      }),
    );
  });

  it('tells lone surrogates of either half apart from pairs', () => {
    expect(isWellFormedText('plain')).toBe(true);
    expect(isWellFormedText('\uD83D\uDE00')).toBe(true);
    expect(isWellFormedText('a\uD83D')).toBe(false);
    expect(isWellFormedText('\uDE00a')).toBe(false);
    expect(isWellFormedText('\uDE00\uD83D')).toBe(false);
    expect(codePointLength('\uD83D\uDE00x')).toBe(2);
  });
});

describe('withTimeout', () => {
  it('settles as the work does within the bound', async () => {
    await expect(withTimeout(Promise.resolve(7), 1_000)).resolves.toBe(7);
    await expect(withTimeout(Promise.reject(new Error('boom')), 1_000)).rejects.toThrow('boom');
  });

  it("rejects with the caller's error once time runs out, on the injected clock, and hands over what comes late", async () => {
    const clock = new FakeClock();
    let finish!: (v: string) => void;
    const work = new Promise<string>((r) => {
      finish = r;
    });
    const late: string[] = [];
    const bounded = withTimeout(work, 50, {
      clock,
      error: () => new Error('took too long'),
      late: (v) => late.push(v),
    });
    const settled = bounded.then(
      () => 'resolved',
      (e: Error) => e.message,
    );
    await clock.advance(49);
    finish('connection');
    await expect(settled).resolves.toBe('resolved');

    const slow = new Promise<string>((r) => {
      finish = r;
    });
    const second = withTimeout(slow, 50, {
      clock,
      error: () => new Error('took too long'),
      late: (v) => late.push(v),
    });
    const outcome = second.then(
      () => 'resolved',
      (e: Error) => e.message,
    );
    await clock.advance(50);
    await expect(outcome).resolves.toBe('took too long');
    finish('late connection');
    await new Promise((r) => setImmediate(r));
    expect(late).toEqual(['late connection']);
  });

  it('resolves with the fallback instead of rejecting, and a later failure of the work is dropped', async () => {
    const clock = new FakeClock();
    let fail!: (e: Error) => void;
    const work = new Promise<boolean>((_, reject) => {
      fail = reject;
    });
    const bounded = withTimeout(work, 10, { clock, fallback: () => false });
    await clock.advance(10);
    await expect(bounded).resolves.toBe(false);
    fail(new Error('after the bound')); // no unhandled rejection: the bound already answered
  });

  it("on the global timers, a pending bound does not keep the process alive (its timer is unref'ed)", async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const pending = withTimeout(new Promise<never>(() => {}), 60_000, { fallback: () => 'gave up' });
    expect(timers()).toBe(before);
    void pending;
  });
});
