/**
 * The invalidation port: a feed of "this shared-cache entry changed" from the shared cache's server (Redis
 * client-side tracking), so that a near cache drops a token forgotten in another process at once instead
 * of trusting it until its staleness bound. Broker-neutral: entries are named by the source (a Redis key).
 */
import type { TokenRef } from '../model/record.js';
import type { CheckedPort } from './readiness.js';

/** What a {@link CacheInvalidations} source tells each subscriber. */
export interface CacheInvalidationListener {
  /** These entries (named as by {@link CacheInvalidations.nameOf}) changed or went away: drop them. */
  invalidate(names: readonly string[]): void;
  /**
   * Anything may have changed (a flush, a reconnect: tracking was off meanwhile, invalidations were
   * lost), or {@link CacheInvalidations.live} has just changed: drop every entry.
   */
  invalidateAll(): void;
}

/**
 * A source of invalidations for the entries of a shared cache, given to a `NearIdempotencyCache` as its
 * `invalidations` option. While it is {@link live}, the near cache trusts what it learns for longer; when
 * it is not, the near cache falls back to its `maxStalenessMs` bound.
 */
export interface CacheInvalidations extends CheckedPort {
  /** The name under which invalidations speak of `token`'s entry (for Redis, its key). */
  nameOf(token: TokenRef): string;
  /**
   * True while every change to an entry watched from now on will be told. False until tracking is
   * confirmed on, and from a lost connection until it is confirmed again. Every change of this value
   * is followed by {@link CacheInvalidationListener.invalidateAll} to each listener.
   */
  readonly live: boolean;
  /**
   * An entry is watched only once it has been read from the shared cache, not when written there (Redis
   * tracking in its default mode): the near cache reads back what it writes. @defaultValue false
   */
  readonly watchedByReading?: boolean;
  /** Adds a listener; the function returned removes it. */
  subscribe(listener: CacheInvalidationListener): () => void;
}
