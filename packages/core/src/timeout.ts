/** One way to bound a promise in time, for the engine, the readiness checks and every adapter. */
import type { Clock } from './ports/clock.js';

/** What {@link withTimeout} does when time runs out, and with what arrives after. */
export interface TimeoutOptions<T> {
  /**
   * What the returned promise rejects with once `ms` have passed.
   * @defaultValue an `Error` saying "timed out after `ms` ms"
   */
  readonly error?: () => unknown;
  /** Resolve with this instead of rejecting when time runs out (e.g. `() => false`). */
  readonly fallback?: () => T;
  /** Receives what `work` resolves to after the bound: a connection to give back, a transaction to end. */
  readonly late?: (value: T) => void;
  /**
   * The timers to use (an injected {@link Clock}, so that tests can advance time).
   * @defaultValue the global timers, unref'ed so that a pending bound never keeps the process alive
   */
  readonly clock?: Pick<Clock, 'setTimeout' | 'clearTimeout'>;
}

/**
 * `work`, bounded: it settles as `work` does within `ms`, else rejects with `options.error()` (or
 * resolves with `options.fallback()`). `work` itself goes on; what it settles to after the bound is
 * handed to `options.late`, or dropped.
 */
export function withTimeout<T>(
  work: PromiseLike<T>,
  ms: number,
  options: TimeoutOptions<T> = {},
): Promise<T> {
  const { clock, late } = options;
  return new Promise<T>((resolve, reject) => {
    let timedOut = false;
    const expire = () => {
      timedOut = true;
      if (options.fallback) resolve(options.fallback());
      else reject(options.error ? options.error() : new Error(`timed out after ${ms} ms`));
    };
    const timer = clock ? clock.setTimeout(expire, ms) : setTimeout(expire, ms).unref();
    const stop = () => (clock ? clock.clearTimeout(timer) : clearTimeout(timer as NodeJS.Timeout));
    Promise.resolve(work).then(
      (value) => {
        stop();
        if (!timedOut) resolve(value);
        else late?.(value);
      },
      (error: unknown) => {
        stop();
        if (!timedOut) reject(error);
      },
    );
  });
}
