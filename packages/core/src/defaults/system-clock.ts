import type { Clock } from '../ports/clock.js';

/** The wall clock. Its timers are unref'd so that a keep-alive never holds a process open. */
export class SystemClock implements Clock {
  now(): number {
    return Date.now();
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const handle = setTimeout(fn, ms);
    handle.unref();
    return handle;
  }

  clearTimeout(handle: unknown): void {
    clearTimeout(handle as NodeJS.Timeout);
  }
}
