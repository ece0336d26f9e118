/**
 * The settlement policy: the one place that turns an engine outcome into what the broker must do with
 * the message. Transports carry its answer out and never re-decide.
 *
 * - `processed`, `takeover`, `duplicate` → ack.
 * - `inFlight` → a **wait**: retry, without spending an attempt, after the claim's age so far (a fresh
 *   claim is most likely about to complete), doubling each look, and never later than the claim's
 *   remaining lease (plus jitter): the next copy finds the token completed (ack) or the lease run out
 *   (takeover). A wait is never dead-lettered: a copy still in flight may yet fail, and the message
 *   would be lost with it.
 * - `failed` with a poison error (no key, a key the store cannot hold, a payload that conflicts or
 *   cannot be fingerprinted) → dead letter at once: no redelivery can fix it.
 * - `failed` otherwise → retry with exponential backoff and jitter, spending an attempt; on the last
 *   attempt, dead letter.
 */
import { type Backoff, backoffDelay, checkBackoff } from '../backoff.js';
import { IdempotencyError, type IdempotencyErrorCode, InvalidOptionError } from '../errors.js';
import type { IdempotencyRecord } from '../model/record.js';
import type { Execution } from '../outcome.js';
import type { Clock } from '../ports/clock.js';
import type { Settlement, TransportProfile } from '../ports/message-transport.js';

/** Options of the {@link SettlementPolicy} (the registry's options pass them on). */
export interface SettlementPolicyOptions {
  /**
   * Delay of the first retry of a failed delivery; it doubles each attempt, with ±20% jitter.
   * @defaultValue 1000 ms
   */
  readonly retryBaseDelayMs?: number;
  /** The longest delay of a failure retry. @defaultValue 60 000 ms */
  readonly retryMaxDelayMs?: number;
  /**
   * How soon a copy that met another copy in flight looks again when the other claim's lease is not
   * known (its transaction has not committed yet); with a known lease, the copy waits for its end.
   * @defaultValue 1000 ms
   */
  readonly inFlightDelayMs?: number;
  /** Randomness for the jitter (tests pass a seeded one). @defaultValue `Math.random` */
  readonly random?: () => number;
}

/** Error codes that a redelivery cannot fix: dead-letter at once rather than retry. */
const POISON: ReadonlySet<IdempotencyErrorCode> = new Set<IdempotencyErrorCode>([
  'MISSING_KEY',
  'KEY_FUNCTION_FAILED',
  'PAYLOAD_NOT_SERIALIZABLE',
  'PAYLOAD_CONFLICT',
  'UNSTORABLE_TOKEN',
]);

/** A wait ends at most this long after the lease it waits for, so that copies do not wake together. */
const WAIT_JITTER_MAX_MS = 1000;

/**
 * What a broker should do with a message, given the engine's outcome for it: ack a processed or
 * duplicate message; a wait (not counted as an attempt) for a copy whose token another copy holds;
 * a retry with backoff after a failure; a dead letter for poison, or once attempts run out. One
 * policy for every transport, so that every broker settles the same outcome the same way.
 */
export class SettlementPolicy {
  readonly #failures: Required<Backoff>;
  readonly #inFlightDelayMs: number;
  readonly #random: () => number;

  /** Validates the options now, naming the one that is wrong (prefixed by `where`). */
  constructor(
    options: SettlementPolicyOptions,
    private readonly profile: TransportProfile,
    private readonly clock: Clock,
    where = 'ListenerRegistry',
  ) {
    this.#failures = failureBackoff(options, where);
    this.#inFlightDelayMs = options.inFlightDelayMs ?? 1000;
    this.#random = options.random ?? Math.random;
  }

  /** What the transport must do with a message, from its outcome on delivery `attempt` of `maxAttempts`. */
  settle(outcome: Execution, attempt: number, maxAttempts: number): Settlement {
    switch (outcome.kind) {
      case 'processed':
      case 'takeover':
      case 'duplicate':
        return { action: 'ack' };
      case 'inFlight':
        return this.wait(outcome.record);
      default:
        return this.failure(outcome.error, attempt, maxAttempts);
    }
  }

  /** A retry of a whole batch the engine could not run (only a bug gets there): never lost over it. */
  bug(error: unknown): Settlement {
    return this.retry(this.#failures.maxMs, true, `the engine failed: ${String(error)}`);
  }

  /** The most time a failing message spends coming back over `maxAttempts`, jitter included. */
  horizonMs(maxAttempts: number): number {
    let total = 0;
    for (let n = 1; n < maxAttempts; n++) total += backoffDelay(this.#failures, n, () => 1);
    return total;
  }

  /**
   * How long a copy waits for the claim another copy holds. Never past the claim's lease (plus jitter):
   * by then the token is completed (ack) or the lease has run out (takeover). But a claim taken moments
   * ago is most likely a live copy about to complete, and waiting out a whole lease would hold this
   * message (and, where the transport waits in place, a consumer slot) for a minute: the wait is the
   * claim's age so far, at least `inFlightDelayMs`. Each look doubles the next, so a dead owner's lease
   * is reached in a handful of waits, none of which spends an attempt.
   */
  private wait(record: IdempotencyRecord | undefined): Settlement {
    const now = this.clock.now();
    const remaining = record?.leaseExpiresAt === undefined ? undefined : record.leaseExpiresAt - now;
    if (remaining === undefined || remaining <= 0) {
      // Nothing to wait for that is known: the holder's claim is not committed yet (its transaction is
      // open), or its lease has just run out and a takeover is under way. Look again soon.
      const delay = Math.round(this.#inFlightDelayMs * (0.8 + 0.4 * this.#random()));
      return this.retry(delay, false, 'another copy is in flight');
    }
    const age = Math.max(0, now - (record?.createdAt ?? now));
    const wait = Math.min(remaining, Math.max(this.#inFlightDelayMs, age));
    const jitter = Math.round(this.#random() * Math.min(WAIT_JITTER_MAX_MS, 0.1 * wait + 50));
    return this.retry(
      wait + jitter,
      false,
      wait === remaining
        ? `another copy holds the claim; waiting ${remaining} ms for its lease`
        : `another copy holds a claim ${age} ms old; looking again in ${wait} ms (its lease has ${remaining} ms left)`,
    );
  }

  private failure(error: unknown, attempt: number, maxAttempts: number): Settlement {
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : `thrown: ${String(error)}`;
    if (error instanceof IdempotencyError && POISON.has(error.code)) return { action: 'deadLetter', reason };
    if (attempt >= maxAttempts) {
      return {
        action: 'deadLetter',
        reason: `failed ${attempt} of ${maxAttempts} attempts; last: ${reason}`,
      };
    }
    return this.retry(backoffDelay(this.#failures, attempt, this.#random), true, reason);
  }

  private retry(delayMs: number, countsAsAttempt: boolean, reason: string): Settlement {
    return {
      action: 'retry',
      delayMs: Math.max(0, Math.min(delayMs, this.profile.maxRetryDelayMs)),
      countsAsAttempt,
      reason,
    };
  }
}

/**
 * The failure retries' backoff from the options; validates every option, naming the wrong one. Run by
 * the registry's constructor too, so that a bad option fails before any transport is known.
 */
export function failureBackoff(options: SettlementPolicyOptions, where: string): Required<Backoff> {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError(where, 'an options object', options);
  }
  for (const option of ['retryBaseDelayMs', 'retryMaxDelayMs', 'inFlightDelayMs'] as const) {
    const value = options[option];
    if (value !== undefined && (!Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1)) {
      throw new InvalidOptionError(`${where}.${option}`, 'an integer from 0 to 2147483647', value);
    }
  }
  if (options.random !== undefined && typeof options.random !== 'function') {
    throw new InvalidOptionError(`${where}.random`, 'a function () => number in [0, 1)', options.random);
  }
  const initialMs = options.retryBaseDelayMs ?? 1000;
  const maxMs = options.retryMaxDelayMs ?? 60_000;
  if (maxMs < initialMs) {
    throw new InvalidOptionError(
      `${where}.retryMaxDelayMs`,
      `at least retryBaseDelayMs (${initialMs})`,
      maxMs,
    );
  }
  return checkBackoff(`${where}.retry`, { initialMs, maxMs }, { initialMs, maxMs });
}
