/**
 * A near cache: an in-process LRU of completed tokens in front of the shared cache (Redis), so that a
 * duplicate this process has seen lately costs no round trip. What it holds is only ever "completed",
 * which never changes back by itself; the one way it goes stale is a token forgotten elsewhere (an
 * operator's `forget` in another process, a purge). So every entry is trusted for at most
 * `maxStalenessMs` after it was learnt, then asked of the shared cache again: that is the bound.
 */
import { SystemClock } from '../defaults/system-clock.js';
import { MemoryIdempotencyCache } from '../memory/memory-idempotency-cache.js';
import type { TokenRef } from '../model/record.js';
import { integerOption } from '../option-checks.js';
import type { Clock } from '../ports/clock.js';
import type { CachedCompletion, CacheInspection, IdempotencyCache } from '../ports/idempotency-cache.js';
import type { ReadinessCheck, ReadinessRequest } from '../ports/readiness.js';

/** Options of a {@link NearIdempotencyCache}. */
export interface NearIdempotencyCacheOptions {
  /** Completed tokens kept in process; the least recently used go first. @defaultValue 10 000 */
  readonly maxEntries?: number;
  /**
   * The longest an entry is answered from process memory after it was learnt (written here, or read from
   * the shared cache). A token forgotten in another process may still read as a duplicate here for this
   * long: after a `forget`, wait this long before re-driving its message. @defaultValue 10 000 ms
   */
  readonly maxStalenessMs?: number;
  /** @defaultValue the system clock */
  readonly clock?: Clock;
}

/**
 * {@link IdempotencyCache} in two tiers: process memory, then `shared`. A hit in memory answers at once;
 * a miss asks the shared cache and remembers what it answers (never a miss: a token completed elsewhere
 * must be found there at the next look). Writes and deletes go to both; a delete here is seen here at
 * once, and elsewhere within `maxStalenessMs`.
 *
 * @example
 * ```ts
 * container
 *   .rebind(IDEMPOTENCY_CACHE)
 *   .toConstantValue(new NearIdempotencyCache(new RedisIdempotencyCache(redis), { maxStalenessMs: 5_000 }));
 * ```
 */
export class NearIdempotencyCache implements IdempotencyCache {
  readonly #near: MemoryIdempotencyCache;
  readonly #stalenessMs: number;

  constructor(
    private readonly shared: IdempotencyCache,
    options: NearIdempotencyCacheOptions = {},
  ) {
    const where = 'NearIdempotencyCache';
    this.#stalenessMs = integerOption(where, 'maxStalenessMs', options.maxStalenessMs, {
      min: 1,
      max: 2 ** 31 - 1,
      fallback: 10_000,
    });
    const maxEntries = integerOption(where, 'maxEntries', options.maxEntries, {
      min: 1,
      max: 10_000_000,
      fallback: 10_000,
    });
    this.#near = new MemoryIdempotencyCache({ maxEntries, clock: options.clock ?? new SystemClock() });
  }

  /** Entries held in process memory. */
  get size(): number {
    return this.#near.size;
  }

  async get(token: TokenRef): Promise<CachedCompletion | undefined> {
    const near = await this.#near.get(token);
    if (near) return near;
    const shared = await this.shared.get(token);
    if (shared) await this.#near.set(token, shared, this.#stalenessMs);
    return shared;
  }

  async getMany(tokens: readonly TokenRef[]): Promise<(CachedCompletion | undefined)[]> {
    const answers = await this.#near.getMany(tokens);
    const missing = tokens.filter((_, i) => answers[i] === undefined);
    if (missing.length === 0) return answers;
    const shared = await this.shared.getMany(missing);
    let next = 0;
    return Promise.all(
      answers.map(async (answer, i) => {
        if (answer !== undefined) return answer;
        const value = shared[next++];
        if (value) await this.#near.set(tokens[i] as TokenRef, value, this.#stalenessMs);
        return value;
      }),
    );
  }

  /** Written here at once (the engine writes only after the store has committed), then to the shared cache. */
  async set(token: TokenRef, value: CachedCompletion, ttlMs: number): Promise<void> {
    await this.#near.set(token, value, Math.min(ttlMs, this.#stalenessMs));
    await this.shared.set(token, value, ttlMs);
  }

  async delete(token: TokenRef): Promise<void> {
    await this.#near.delete(token);
    await this.shared.delete(token);
  }

  /** The shared cache's entry (what every process will see), falling back to this process's. */
  async inspect(token: TokenRef): Promise<CacheInspection | undefined> {
    return (await this.shared.inspect?.(token)) ?? (await this.#near.inspect(token));
  }

  async check(request: ReadinessRequest): Promise<readonly ReadinessCheck[]> {
    return (await this.shared.check?.(request)) ?? [];
  }
}
