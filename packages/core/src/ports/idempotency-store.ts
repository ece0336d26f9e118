/**
 * The store port: the source of truth for each token. Adapters (memory, SQL, Redis, your own) implement
 * it; most build on {@link BaseIdempotencyStore}, which writes the claim lifecycle once.
 */

import type { IdempotencyRecord, TokenRef } from '../model/record.js';

export type { IdempotencyRecord, RecordStatus, TokenRef } from '../model/record.js';

/** What the engine asks for when it claims a token. */
export interface ClaimRequest {
  readonly token: TokenRef;
  /** A fresh unique owner id for this claim. */
  readonly owner: string;
  /** Lease length; the store adds it to its own clock. */
  readonly leaseMs: number;
  readonly fingerprint?: string;
  /**
   * Given when the claim is made inside the transaction that will complete it (transactional mode): the
   * record's retention. Nobody sees the claim before the commit, so a store may write it completed at
   * once and skip a round trip at completion; it must still honour `complete` (fenced, with the result).
   */
  readonly ttlMs?: number;
}

/**
 * - `claimed`: this owner holds the token now (`takeover`: an expired claim was taken over).
 * - `exists`: another record stands: completed, or a live claim by another owner.
 */
export type ClaimResult =
  | { readonly status: 'claimed'; readonly record: IdempotencyRecord; readonly takeover: boolean }
  | { readonly status: 'exists'; readonly record: IdempotencyRecord };

/** Completes a claim: fenced on `owner`. */
export interface CompleteRequest {
  readonly token: TokenRef;
  readonly owner: string;
  /** Retention of the completed record. */
  readonly ttlMs: number;
  readonly result?: string;
}

/**
 * The store port. Every method that takes `tx` runs inside that transaction when it is given (stores
 * with {@link IdempotencyStore.transaction}); without it each call is atomic on its own.
 *
 * Errors: throw {@link StoreUnavailableError} when the store cannot be reached (the engine then applies
 * its fail-closed / fail-open policy); anything else is treated as a store failure, never as a duplicate.
 */
export interface IdempotencyStore<Tx = unknown> {
  /**
   * Runs `work` in one transaction and commits when it resolves, rolls back when it rejects. Present only
   * on stores that have transactions; the engine then runs claim, handler and completion inside it and
   * hands `tx` to the handler as `ctx.trx`.
   */
  transaction?<T>(work: (tx: Tx) => Promise<T>): Promise<T>;
  /** Atomically claims the token unless a completed record or a live claim stands. */
  claim(request: ClaimRequest, tx?: Tx): Promise<ClaimResult>;
  /** Extends a live claim held by `owner`; `false` when the claim is no longer this owner's. */
  renew(token: TokenRef, owner: string, leaseMs: number, tx?: Tx): Promise<boolean>;
  /** Marks the claim completed if `owner` still holds it; `false` (and no write) otherwise. */
  complete(request: CompleteRequest, tx?: Tx): Promise<boolean>;
  /** Deletes the claim if `owner` still holds it and it is in progress; `false` otherwise. */
  release(token: TokenRef, owner: string, tx?: Tx): Promise<boolean>;
  /** The live record of a token, if any (expired records read as absent). */
  get(token: TokenRef, tx?: Tx): Promise<IdempotencyRecord | undefined>;
  /** Many tokens in one round trip where the store allows it; the answer is aligned with `tokens`. */
  getMany(tokens: readonly TokenRef[]): Promise<(IdempotencyRecord | undefined)[]>;
  /** Deletes expired completed records in bounded batches; resolves to how many were deleted. */
  purgeExpired(options?: { readonly batchSize?: number }): Promise<number>;
  /**
   * Whether a failed transaction may pass if run again at once: a deadlock, a serialization failure, a
   * busy database. `error` is what the transaction rejected with (a driver error thrown by the handler's
   * own writes through `tx`, or one of the store's errors with the driver error as `cause`). The engine
   * then reruns the whole transaction (claim, handler, completion) a bounded number of times before the
   * message goes back to the broker. Absent: nothing is retried in place.
   */
  isTransient?(error: unknown): boolean;
}
