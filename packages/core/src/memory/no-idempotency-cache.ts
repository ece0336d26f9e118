/**
 * A cache that remembers nothing: for a store that is itself one fast round trip (the Redis store), so
 * a duplicate costs exactly one store call and a first-time message two.
 */
import type { CachedCompletion, IdempotencyCache } from '../ports/idempotency-cache.js';
import type { ReadinessCheck } from '../ports/readiness.js';

/** The cache that remembers nothing (see the file comment): bind it as `IDEMPOTENCY_CACHE` to go to the store every time. */
export class NoIdempotencyCache implements IdempotencyCache {
  /** Nothing to wait for: the engine bounds none of its calls (see the port). */
  readonly inProcess = true;
  /** Nothing to reach. Always ready. */
  async check(): Promise<readonly ReadinessCheck[]> {
    return [{ name: 'no cache', status: 'ok', detail: 'every lookup goes to the store.' }];
  }
  async get(): Promise<CachedCompletion | undefined> {
    return undefined;
  }
  async getMany(tokens: readonly unknown[]): Promise<(CachedCompletion | undefined)[]> {
    return tokens.map(() => undefined);
  }
  async set(): Promise<void> {}
  async delete(): Promise<void> {}
}
