/** A clock that moves only when told to, so leases, keep-alive and TTLs are tested without sleeping. */
import type { Clock } from '@idempotent-mq/core';

interface Timer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

/**
 * A clock that moves only when told: bind it as `IDEMPOTENCY_CLOCK` (and give it to the memory
 * adapters and the in-memory broker) so that leases, keep-alive, TTLs and backoffs run in a test
 * without sleeping. `advance(ms)` fires the timers that fall due, in order, letting promises settle
 * between them.
 */
export class FakeClock implements Clock {
  private current: number;
  private timers: Timer[] = [];
  private nextId = 1;

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const timer = { id: this.nextId++, at: this.current + Math.max(0, ms), fn };
    this.timers.push(timer);
    return timer.id;
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  /** Timers not yet fired. */
  get pending(): number {
    return this.timers.length;
  }

  /**
   * Moves time forward by `ms`, firing due timers in order, and lets the promise callbacks they start
   * run before the next one fires (so a keep-alive's renewal completes at its own time).
   */
  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.current = Math.max(this.current, due.at);
      due.fn();
      await flush();
    }
    this.current = target;
    await flush();
  }
}

/** Lets pending promise callbacks (several hops deep) run. */
export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
  await new Promise<void>((resolve) => setImmediate(resolve));
}
