/**
 * The store port: the source of truth for each token. Adapters (memory, SQL, Redis, your own) implement
 * it; most build on {@link BaseIdempotencyStore}, which writes the claim lifecycle once.
 */

import type { IdempotencyRecord, TokenRef } from '../model/record.js';
import type { CheckedPort } from './readiness.js';

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

/** What {@link IdempotencyStore.inspect} reads: the row as stored, and the store's own time. */
export interface RecordInspection {
  /** The token's record as stored, expired or not; undefined when the store holds none. */
  readonly record?: IdempotencyRecord;
  /**
   * The store's clock when it read the record (epoch ms): leases and retention are compared against it,
   * so "lease left" is `record.leaseExpiresAt - now` whatever the reader's clock says.
   */
  readonly now: number;
  /** Where the record lives, for people: a table and row id, a Redis key. */
  readonly location?: string;
  /**
   * Why what stands under the token is not a record the store wrote (a Redis key holding something
   * else); `record` is then undefined, and claims of the token fail until it is deleted.
   */
  readonly unreadable?: string;
}

/** Options of {@link IdempotencyStore.forget}. */
export interface ForgetOptions {
  /**
   * Delete a live in-progress claim too (a handler may be running it: its completion will then find no
   * claim, and a copy arriving meanwhile runs again).
   * @defaultValue false
   */
  readonly force?: boolean;
  /** Decide and answer as if deleting, but delete nothing. @defaultValue false */
  readonly dryRun?: boolean;
}

/**
 * - `forgotten`: the record was deleted (with `dryRun`: would be). `record` is what stood, absent when
 *   what stood under the token was not a record the store could read (deleted under `force` only).
 * - `absent`: the store holds no record of the token (an expired one counts as present).
 * - `refused`: a live in-progress claim stands and `force` was not given; nothing was deleted.
 */
export type ForgetResult =
  | { readonly outcome: 'forgotten'; readonly record?: IdempotencyRecord }
  | { readonly outcome: 'absent' }
  | { readonly outcome: 'refused'; readonly reason: 'liveClaim'; readonly record: IdempotencyRecord };

/** Options of {@link IdempotencyStore.stats}. */
export interface StatsOptions {
  /** Count only this scope's records. @defaultValue every scope */
  readonly scope?: string;
  /**
   * The window of {@link StoreStats.expiringSoon}, in milliseconds from the store's now.
   * @defaultValue 86 400 000 (24 hours)
   */
  readonly expiringWithinMs?: number;
}

/**
 * What the store holds, counted on its own clock. Counts are of records as stored: the expired ones
 * that reads already treat as absent are included until they are purged (or, on Redis, dropped).
 */
export interface StoreStats {
  /** The store's clock when it counted (epoch ms). */
  readonly now: number;
  /** The scope counted, when one was asked for. */
  readonly scope?: string;
  readonly inProgress: number;
  readonly completed: number;
  /** In-progress claims whose lease has run out: abandoned by their owner; the next copy takes them over. */
  readonly lapsedClaims: number;
  /** Completed records past their retention, not yet deleted: what `purgeExpired` would delete. */
  readonly expired: number;
  /** The window of {@link StoreStats.expiringSoon}, in ms. */
  readonly expiringWithinMs: number;
  /** Completed records within their retention whose retention ends within `expiringWithinMs`. */
  readonly expiringSoon: number;
  /** The record created first, expired or not. */
  readonly oldest?: IdempotencyRecord;
  /** The in-progress claim created first: the longest-running (or an abandoned) handler. */
  readonly oldestInProgress?: IdempotencyRecord;
  /** Entries under the store's names that are not records it wrote (a Redis store); left out of every count. */
  readonly unreadable?: number;
}

/**
 * The store port. Every method that takes `tx` runs inside that transaction when it is given (stores
 * with {@link IdempotencyStore.transaction}); without it each call is atomic on its own.
 *
 * Errors: throw {@link StoreUnavailableError} when the store cannot be reached (the engine then applies
 * its fail-closed / fail-open policy); anything else is treated as a store failure, never as a duplicate.
 */
/** Options of {@link IdempotencyStore.purgeExpired}. */
export interface PurgeOptions {
  /** Records deleted per batch. @defaultValue the store's own (1000) */
  readonly batchSize?: number;
  /**
   * Pause between two batches: milliseconds, or `'auto'`, as long as the last batch took (a purge then
   * takes at most half of the store's time from the consumers beside it). @defaultValue the store's own (0)
   */
  readonly pause?: number | 'auto';
}

export interface IdempotencyStore<Tx = unknown> extends CheckedPort {
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
  purgeExpired(options?: PurgeOptions): Promise<number>;
  /**
   * Whether a failed transaction may pass if run again at once: a deadlock, a serialization failure, a
   * busy database. `error` is what the transaction rejected with (a driver error thrown by the handler's
   * own writes through `tx`, or one of the store's errors with the driver error as `cause`). The engine
   * then reruns the whole transaction (claim, handler, completion) a bounded number of times before the
   * message goes back to the broker. Absent: nothing is retried in place.
   */
  isTransient?(error: unknown): boolean;
  /**
   * For operators (the CLI's `inspect`): the token's record as stored, expired or not, with the store's
   * time. Optional; a store without it is inspected through {@link IdempotencyStore.get}.
   */
  inspect?(token: TokenRef): Promise<RecordInspection>;
  /**
   * For operators (the CLI's `forget`): deletes the token's record whatever its owner, so that the next
   * copy runs the handler again. A live in-progress claim is refused unless `force`; a lapsed claim and
   * a completed record (expired or not) are deleted. Atomic: a claim renewed or taken over between the
   * decision and the delete is not deleted without `force`. The cache is the caller's to clear.
   */
  forget?(token: TokenRef, options?: ForgetOptions): Promise<ForgetResult>;
  /**
   * For operators (the CLI's `stats`): records by status, lapsed and expired ones, those expiring soon,
   * and the oldest. It may read every record (of the scope): run it from a shell, not per message.
   */
  stats?(options?: StatsOptions): Promise<StoreStats>;
}
