/** What a direct call (a decorated method, a `makeIdempotent` function) answers for an outcome. */
import { IdempotencyInFlightError } from '../errors.js';
import type { TokenRef } from '../model/record.js';
import type { Execution } from '../outcome.js';

/**
 * The handler's result on `processed`, the stored result on `duplicate`; a throw otherwise, so that a
 * broker redelivers: {@link IdempotencyInFlightError}, the `PayloadConflictError`, a store error, or the
 * handler's own error, unchanged.
 */
export function resultOf(outcome: Execution): unknown {
  switch (outcome.kind) {
    case 'processed':
    case 'takeover':
    case 'duplicate':
      return outcome.result;
    case 'inFlight':
      throw new IdempotencyInFlightError(outcome.token as TokenRef, outcome.record);
    default:
      throw outcome.error;
  }
}
