/**
 * The one backoff of the project: exponential, capped, with jitter. The settlement policy sizes
 * failure retries with it; transports use it for their own reconnects, so that every wait in the
 * system grows the same way.
 */
import { InvalidOptionError } from './errors.js';

/** `initialMs · multiplier^(n−1)`, capped at `maxMs`, then spread by ±`jitter`. */
export interface Backoff {
  /** The delay before the first retry. */
  readonly initialMs: number;
  /** No delay exceeds this (jitter included). */
  readonly maxMs: number;
  /** @defaultValue 2 */
  readonly multiplier?: number;
  /**
   * The spread, as a fraction of the delay: 0.2 gives ±20%, so that copies failed together do not all
   * come back together. @defaultValue 0.2
   */
  readonly jitter?: number;
}

/** The delay before try `n` (1 for the first retry); `random` in [0, 1) drives the jitter. */
export function backoffDelay(backoff: Backoff, n: number, random: () => number = Math.random): number {
  const { initialMs, maxMs, multiplier = 2, jitter = 0.2 } = backoff;
  const exponential = Math.min(maxMs, initialMs * multiplier ** Math.min(Math.max(0, n - 1), 60));
  const spread = jitter === 0 ? 1 : 1 - jitter + 2 * jitter * random();
  return Math.min(maxMs, Math.round(exponential * spread));
}

/** Checks a {@link Backoff} given as option `option`; answers it with its defaults filled in. */
export function checkBackoff(option: string, value: unknown, fallback: Backoff): Required<Backoff> {
  const b = (value ?? fallback) as Backoff;
  if (typeof b !== 'object' || b === null) {
    throw new InvalidOptionError(option, '{ initialMs, maxMs, multiplier?, jitter? }', value);
  }
  const ms = (field: 'initialMs' | 'maxMs', min: number) => {
    const v = b[field] ?? fallback[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 2 ** 31 - 1) {
      throw new InvalidOptionError(`${option}.${field}`, `an integer from ${min} to 2147483647`, v);
    }
    return v;
  };
  const initialMs = ms('initialMs', 0);
  const maxMs = ms('maxMs', initialMs);
  const multiplier = b.multiplier ?? fallback.multiplier ?? 2;
  if (typeof multiplier !== 'number' || !(multiplier >= 1 && multiplier <= 100)) {
    throw new InvalidOptionError(`${option}.multiplier`, 'a number from 1 to 100', multiplier);
  }
  const jitter = b.jitter ?? fallback.jitter ?? 0.2;
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1)) {
    throw new InvalidOptionError(`${option}.jitter`, 'a number from 0 to 1', jitter);
  }
  return { initialMs, maxMs, multiplier, jitter };
}
