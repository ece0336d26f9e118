/**
 * What became of each message: one outcome per call, to the listeners bound to
 * `IDEMPOTENCY_OUTCOME_LISTENER`. The base for metrics and for transports' ack decisions.
 */
import type { IdempotencyRecord, TokenRef } from './model/record.js';

/**
 * - `processed`: the handler ran and its effect committed;
 * - `takeover`: the same, after taking over a claim whose lease had expired;
 * - `duplicate`: the token had completed; the handler was not called (`tier` says who knew);
 * - `inFlight`: another copy holds a live claim; redeliver later;
 * - `conflict`: the key was used before with another payload;
 * - `failed`: the handler or the store failed; redeliver.
 */
export type OutcomeKind = 'processed' | 'takeover' | 'duplicate' | 'inFlight' | 'conflict' | 'failed';

/** Which tier recognised a duplicate. */
export type DuplicateTier = 'cache' | 'store';

export interface IdempotencyOutcome {
  readonly kind: OutcomeKind;
  /** `Class.method` of the handler. */
  readonly handler: string;
  readonly scope: string;
  /** Absent when the message had no usable key. */
  readonly token?: TokenRef;
  readonly tier?: DuplicateTier;
  /** The cache failed or timed out on this message and was skipped. */
  readonly cacheBypassed: boolean;
  /** The handler ran without a claim (missing key with `onMissingKey: 'process'`, or fail-open). */
  readonly unprotected: boolean;
  readonly attempt: number;
  readonly durationMs: number;
  /** The fencing token of this call's own claim (`processed`, `takeover`); a decided record has its own. */
  readonly fence?: number;
  /** The record that decided a `duplicate`, `inFlight` or `conflict`. */
  readonly record?: IdempotencyRecord;
  /** Why it `failed` (the handler's own error, rethrown as is), or the conflict error. */
  readonly error?: unknown;
  /** How many times the transaction was rerun at once after a transient failure (a deadlock), if any. */
  readonly transientRetries?: number;
  /** A failed release after a failed handler: the claim stays until its lease expires. */
  readonly releaseError?: unknown;
}

/** Hears every outcome. Must not throw (a throw is logged and ignored); should be fast. */
export type OutcomeListener = (outcome: IdempotencyOutcome) => void;

/** What the engine's `execute` returns: the outcome, with the result to hand back. */
export interface Execution extends IdempotencyOutcome {
  /** The handler's result (`processed`, `takeover`) or the stored result (`duplicate`). */
  readonly result?: unknown;
}
