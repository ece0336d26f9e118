/**
 * What every step of the store's start-up check shares: a bound on how long one statement may take, and
 * the words for what a server answered (an error's own text, a refusal).
 */
import { withTimeout } from '@idempotent-mq/core/adapter';
import { isConnectionFailure } from './connection-failure.js';
import { errorChain } from './error-chain.js';

/**
 * How long one statement of a check may take. A database that does not answer within it is reported,
 * not waited for: a start-up check that hangs is no better than none.
 */
export const CHECK_STEP_MS = 5_000;

/** A step of the check got no answer in time. */
export class CheckTimeoutError extends Error {
  override readonly name = 'CheckTimeoutError';
  constructor(
    readonly what: string,
    readonly ms: number,
  ) {
    super(`${what}: no answer within ${ms} ms`);
  }
}

/**
 * `work`, or a {@link CheckTimeoutError} after `ms`. `work` goes on; `late` receives what it resolves to
 * after the bound (a connection to give back, a transaction to end).
 */
export function within<T>(
  what: string,
  work: PromiseLike<T>,
  late?: (value: T) => void,
  ms = CHECK_STEP_MS,
): Promise<T> {
  return withTimeout(work, ms, { error: () => new CheckTimeoutError(what, ms), late });
}

/** A primitive the server refused, with its own words. */
export interface Refused {
  readonly refused: string;
}

/**
 * What the server said when it refused a statement, as a {@link Refused}; a dropped connection or a
 * timeout is rethrown, since it says nothing about the primitive.
 */
export async function refusedAs<T>(probe: () => Promise<T>): Promise<T | Refused> {
  try {
    return await probe();
  } catch (error) {
    if (error instanceof CheckTimeoutError || isConnectionFailure(error)) throw error;
    return { refused: errorText(error) };
  }
}

export function isRefused(value: unknown): value is Refused {
  return typeof value === 'object' && value !== null && 'refused' in value;
}

/**
 * An error as a person reads it: the driver's code and message, without the SQL that knex puts before
 * it (`select … - message`), and the first of an AggregateError (Node's dual-stack connect).
 */
export function errorText(error: unknown): string {
  let bare: string | undefined;
  for (const e of errorChain(error)) {
    const message = typeof e.message === 'string' ? e.message : '';
    const code = typeof e.code === 'string' ? e.code : undefined;
    if (message === '') {
      bare ??= code;
      continue;
    }
    const at = message.lastIndexOf(' - ');
    // Without a closing period: the check's sentence has its own.
    const text = (at >= 0 ? message.slice(at + 3) : message).replace(/\.+$/, '');
    return !code || text.includes(code) ? text : `${code}: ${text}`;
  }
  return bare ?? String(error);
}
