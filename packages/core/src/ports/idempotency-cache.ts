/**
 * The cache port: a fast, lossy memory of completed tokens (step 1 of the recipe). It is written only
 * after the store has committed, and it never decides anything the store has not: a miss or an error
 * sends the message on to the store.
 */
import type { TokenRef } from '../model/record.js';

/** What the cache remembers of a completed token. */
export interface CachedCompletion {
  readonly fingerprint?: string;
  /** The stored result as JSON text, when results are stored. */
  readonly result?: string;
}

export interface IdempotencyCache {
  get(token: TokenRef): Promise<CachedCompletion | undefined>;
  /** Many tokens in one round trip where the cache allows it; the answer is aligned with `tokens`. */
  getMany(tokens: readonly TokenRef[]): Promise<(CachedCompletion | undefined)[]>;
  set(token: TokenRef, value: CachedCompletion, ttlMs: number): Promise<void>;
  delete(token: TokenRef): Promise<void>;
}
