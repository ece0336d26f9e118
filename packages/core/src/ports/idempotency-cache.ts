/**
 * The cache port: a fast, lossy memory of completed tokens (step 1 of the recipe). It is written only
 * after the store has committed, and it never decides anything the store has not: a miss or an error
 * sends the message on to the store.
 */
import type { TokenRef } from '../model/record.js';
import type { CheckedPort } from './readiness.js';

/** What the cache remembers of a completed token. */
export interface CachedCompletion {
  readonly fingerprint?: string;
  /** The stored result as JSON text, when results are stored. */
  readonly result?: string;
}

/** What {@link IdempotencyCache.inspect} finds under a token's entry. */
export interface CacheInspection {
  /** The completion as the engine would read it; undefined when the entry is not one the cache wrote. */
  readonly value?: CachedCompletion;
  /** Why what stands under the entry is not a completion the cache wrote (the engine reads it as a miss). */
  readonly invalid?: string;
  /** Time left before the entry expires, in ms; undefined when it has no expiry. */
  readonly ttlMs?: number;
  /** Where the entry lives, for people: a Redis key. */
  readonly location?: string;
}

export interface IdempotencyCache extends CheckedPort {
  /**
   * The cache lives in this process and each call has taken effect by the time it returns (its promise
   * only carries the answer): nothing to wait for on a network. The engine then bounds none of its calls
   * in time (`cacheTimeoutMs`) and keeps no record of writes on their way. Leave it unset for a cache
   * behind a connection, however fast.
   * @defaultValue false
   */
  readonly inProcess?: boolean;
  get(token: TokenRef): Promise<CachedCompletion | undefined>;
  /** Many tokens in one round trip where the cache allows it; the answer is aligned with `tokens`. */
  getMany(tokens: readonly TokenRef[]): Promise<(CachedCompletion | undefined)[]>;
  set(token: TokenRef, value: CachedCompletion, ttlMs: number): Promise<void>;
  delete(token: TokenRef): Promise<void>;
  /**
   * For operators (the CLI's `inspect`): the token's entry with its time left, unreadable ones included;
   * undefined when there is none. Optional; a cache without it is inspected through `get`.
   */
  inspect?(token: TokenRef): Promise<CacheInspection | undefined>;
}
