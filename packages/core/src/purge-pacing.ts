/**
 * The pause between two batches of a store's `purgeExpired`, one way for every store: a fixed number of
 * milliseconds, or `'auto'`, as long as the last batch took, so that a purge takes at most half of the
 * store's time from the consumers beside it.
 */
import { InvalidOptionError } from './errors.js';
import type { PurgeOptions } from './ports/idempotency-store.js';

const MAX_PAUSE_MS = 60_000;

/** A purge pause as given (`purgePause`, `pause`), checked: whole ms from 0 to 60 000, or `'auto'`. */
export function purgePauseOption(option: string, value: unknown): NonNullable<PurgeOptions['pause']> {
  if (value === 'auto') return value;
  if (Number.isInteger(value) && (value as number) >= 0 && (value as number) <= MAX_PAUSE_MS) {
    return value as number;
  }
  throw new InvalidOptionError(
    option,
    `'auto' or an integer of milliseconds from 0 to ${MAX_PAUSE_MS}`,
    value,
  );
}

/**
 * Paces one purge: `await pacer.next()` before each batch. The first batch starts at once; each later one
 * after the pause, which for `'auto'` is as long as the batch before it took (measured from the end of
 * the previous pause to this call).
 */
export class PurgePacer {
  #batchStarted: number | undefined;

  constructor(private readonly pause: NonNullable<PurgeOptions['pause']>) {}

  async next(): Promise<void> {
    const now = performance.now();
    if (this.#batchStarted !== undefined) {
      const ms = this.pause === 'auto' ? now - this.#batchStarted : this.pause;
      if (ms > 0) await new Promise<void>((resolve) => setTimeout(resolve, ms));
    }
    this.#batchStarted = performance.now();
  }
}
