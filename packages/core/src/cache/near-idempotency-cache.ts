/**
 * A near cache: an in-process LRU of completed tokens in front of the shared cache (Redis), so that a
 * duplicate this process has seen lately costs no round trip. What it holds is only ever "completed",
 * which never changes back by itself; the one way it goes stale is a token forgotten elsewhere (an
 * operator's `forget` in another process, a purge). So every entry is trusted for at most
 * `maxStalenessMs` after it was learnt, then asked of the shared cache again: that is the bound.
 *
 * With an invalidation source (Redis client-side tracking), a token forgotten elsewhere is dropped here
 * as soon as the server says so, and what was learnt while the source was live is trusted for
 * `maxTrackedStalenessMs` instead. A read of the shared cache that an invalidation overtakes on its way
 * back is not remembered: its answer may predate the change.
 */
import { SystemClock } from '../defaults/system-clock.js';
import { InvalidOptionError } from '../errors.js';
import { MemoryIdempotencyCache } from '../memory/memory-idempotency-cache.js';
import type { TokenRef } from '../model/record.js';
import { checkOptionsObject, integerOption, MAX_TIMER_MS } from '../option-checks.js';
import type { CacheInvalidationListener, CacheInvalidations } from '../ports/cache-invalidations.js';
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
   * long: after a `forget`, wait this long before re-driving its message. With `invalidations`, this
   * bound holds while the source is not live (not yet confirmed, or reconnecting). @defaultValue 10 000 ms
   */
  readonly maxStalenessMs?: number;
  /**
   * Tells this cache, within milliseconds, of entries changed or forgotten in the shared cache by any
   * process (e.g. `RedisCacheInvalidations`, on Redis client-side tracking). Not closed by this cache.
   * @defaultValue none: every entry is bounded by `maxStalenessMs`
   */
  readonly invalidations?: CacheInvalidations;
  /**
   * With `invalidations`: the longest an entry learnt while the source was live is answered from process
   * memory. An invalidation drops it sooner; this bounds what a lost invalidation could cost. From
   * `maxStalenessMs` to 2 147 483 647. @defaultValue 300 000 ms (5 minutes), or `maxStalenessMs` if larger
   */
  readonly maxTrackedStalenessMs?: number;
  /** @defaultValue the system clock */
  readonly clock?: Clock;
}

const OPTIONS = ['maxEntries', 'maxStalenessMs', 'invalidations', 'maxTrackedStalenessMs', 'clock'];

/** A read of the shared cache on its way, as the invalidations found it when it was sent. */
interface Read {
  /** The `invalidateAll` count when it was sent: one since means its answer may predate a change. */
  readonly epoch: number;
  /** The source was live when it was sent, so the server watches what it reads. */
  readonly live: boolean;
  /** An invalidation of its entry arrived while it was on its way. */
  overtaken: boolean;
}

/**
 * {@link IdempotencyCache} in two tiers: process memory, then `shared`. A hit in memory answers at once;
 * a miss asks the shared cache and remembers what it answers (never a miss: a token completed elsewhere
 * must be found there at the next look). Writes and deletes go to both; a delete here is seen here at
 * once, and elsewhere within `maxStalenessMs` — or, with `invalidations`, as soon as the server tells.
 *
 * @example
 * ```ts
 * container
 *   .rebind(IDEMPOTENCY_CACHE)
 *   .toConstantValue(new NearIdempotencyCache(new RedisIdempotencyCache(redis), { maxStalenessMs: 5_000 }));
 * ```
 */
export class NearIdempotencyCache implements IdempotencyCache {
  #near: MemoryIdempotencyCache;
  readonly #maxEntries: number;
  readonly #clock: Clock;
  readonly #stalenessMs: number;
  readonly #trackedMs: number;
  #invalidations: CacheInvalidations | undefined;
  #unsubscribe: (() => void) | undefined;
  /** How many times everything was invalidated. */
  #epoch = 0;
  /** Reads of the shared cache on their way, by entry name (only with invalidations). */
  readonly #reads = new Map<string, Set<Read>>();

  constructor(
    private readonly shared: IdempotencyCache,
    options: NearIdempotencyCacheOptions = {},
  ) {
    const where = 'NearIdempotencyCache';
    checkOptionsObject(options, OPTIONS, where);
    this.#stalenessMs = integerOption(where, 'maxStalenessMs', options.maxStalenessMs, {
      min: 1,
      max: MAX_TIMER_MS,
      fallback: 10_000,
    });
    this.#maxEntries = integerOption(where, 'maxEntries', options.maxEntries, {
      min: 1,
      max: 10_000_000,
      fallback: 10_000,
    });
    this.#clock = options.clock ?? new SystemClock();
    this.#near = this.#emptyTier();
    const source = options.invalidations;
    if (source !== undefined) checkSource(where, source);
    if (source === undefined && options.maxTrackedStalenessMs !== undefined) {
      throw new InvalidOptionError(
        `${where}.maxTrackedStalenessMs`,
        'set only with `invalidations` (without them, `maxStalenessMs` bounds every entry)',
        options.maxTrackedStalenessMs,
      );
    }
    this.#trackedMs = integerOption(where, 'maxTrackedStalenessMs', options.maxTrackedStalenessMs, {
      min: this.#stalenessMs,
      max: MAX_TIMER_MS,
      fallback: Math.max(300_000, this.#stalenessMs),
    });
    if (source) {
      this.#invalidations = source;
      const listener: CacheInvalidationListener = {
        invalidate: (names) => this.#invalidate(names),
        invalidateAll: () => this.#invalidateAll(),
      };
      this.#unsubscribe = source.subscribe(listener);
    }
  }

  /** Entries held in process memory. */
  get size(): number {
    return this.#near.size;
  }

  async get(token: TokenRef): Promise<CachedCompletion | undefined> {
    const { slot, name } = this.#locate(token);
    const near = await this.#near.get(slot);
    if (near) return near;
    const read = this.#sending(name);
    try {
      const shared = await this.shared.get(token);
      if (shared) await this.#learn(slot, shared, read);
      return shared;
    } finally {
      this.#answered(name, read);
    }
  }

  async getMany(tokens: readonly TokenRef[]): Promise<(CachedCompletion | undefined)[]> {
    const places = tokens.map((token) => this.#locate(token));
    const answers = await this.#near.getMany(places.map((p) => p.slot));
    const missing = tokens.filter((_, i) => answers[i] === undefined);
    if (missing.length === 0) return answers;
    const reads = places.map((place, i) =>
      answers[i] === undefined ? this.#sending(place.name) : undefined,
    );
    try {
      const shared = await this.shared.getMany(missing);
      let next = 0;
      return await Promise.all(
        answers.map(async (answer, i) => {
          if (answer !== undefined) return answer;
          const value = shared[next++];
          if (value) await this.#learn((places[i] as Place).slot, value, reads[i]);
          return value;
        }),
      );
    } finally {
      places.forEach((place, i) => {
        if (answers[i] === undefined) this.#answered(place.name, reads[i]);
      });
    }
  }

  /**
   * Written here at once (the engine writes only after the store has committed), then to the shared
   * cache. With a live source that watches only what is read (Redis tracking), the entry is then read
   * back, so that the server watches it: trusted for `maxTrackedStalenessMs` once it does.
   */
  async set(token: TokenRef, value: CachedCompletion, ttlMs: number): Promise<void> {
    const { slot, name } = this.#locate(token);
    await this.#near.set(slot, value, Math.min(ttlMs, this.#stalenessMs));
    await this.shared.set(token, value, ttlMs);
    const source = this.#invalidations;
    if (!source?.live) return;
    const read = this.#sending(name);
    try {
      // A failed read-back only leaves the entry to `maxStalenessMs`; the write itself succeeded.
      const known = source.watchedByReading ? await this.shared.get(token).catch(() => null) : value;
      // Nothing there just after our write: deleted meanwhile (a forget that raced the write).
      if (known === undefined) await this.#near.delete(slot);
      else if (known !== null) await this.#learn(slot, known, read, ttlMs);
    } finally {
      this.#answered(name, read);
    }
  }

  async delete(token: TokenRef): Promise<void> {
    const { slot, name } = this.#locate(token);
    if (name !== undefined) this.#invalidate([name]);
    await this.#near.delete(slot);
    await this.shared.delete(token);
  }

  /** The shared cache's entry (what every process will see), falling back to this process's. */
  async inspect(token: TokenRef): Promise<CacheInspection | undefined> {
    return (await this.shared.inspect?.(token)) ?? (await this.#near.inspect(this.#locate(token).slot));
  }

  /** The shared cache's checks, then the invalidation source's. */
  async check(request: ReadinessRequest): Promise<readonly ReadinessCheck[]> {
    const [shared, source] = await Promise.all([
      this.shared.check?.(request),
      this.#invalidations?.check?.(request),
    ]);
    return [...(shared ?? []), ...(source ?? [])];
  }

  /**
   * Stops listening to `invalidations` (the source itself is left open: close it where it was made) and
   * forgets what this process holds; from then on every entry is bounded by `maxStalenessMs`.
   */
  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#invalidations = undefined;
    this.#invalidateAll();
  }

  /** Where `token` lives in memory: under its entry's name when invalidations name entries. */
  #locate(token: TokenRef): Place {
    const source = this.#invalidations;
    if (!source) return { slot: token };
    const name = source.nameOf(token);
    return { slot: { scope: '', key: name }, name };
  }

  /** A read of `name` leaves for the shared cache: invalidations that overtake it are noted on it. */
  #sending(name: string | undefined): Read | undefined {
    if (name === undefined || !this.#invalidations) return undefined;
    const read: Read = { epoch: this.#epoch, live: this.#invalidations.live, overtaken: false };
    const reads = this.#reads.get(name);
    if (reads) reads.add(read);
    else this.#reads.set(name, new Set([read]));
    return read;
  }

  #answered(name: string | undefined, read: Read | undefined): void {
    if (name === undefined || !read) return;
    const reads = this.#reads.get(name);
    reads?.delete(read);
    if (reads?.size === 0) this.#reads.delete(name);
  }

  /** Remembers what the shared cache answered, for as long as it can be trusted (not at all if overtaken). */
  async #learn(
    slot: TokenRef,
    value: CachedCompletion,
    read: Read | undefined,
    ttlMs = Number.POSITIVE_INFINITY,
  ): Promise<void> {
    let trustMs = this.#stalenessMs;
    if (read) {
      if (read.overtaken || read.epoch !== this.#epoch) return;
      if (read.live) trustMs = this.#trackedMs;
    }
    await this.#near.set(slot, value, Math.min(ttlMs, trustMs));
  }

  #invalidate(names: readonly string[]): void {
    for (const name of names) {
      void this.#near.delete({ scope: '', key: name });
      for (const read of this.#reads.get(name) ?? []) read.overtaken = true;
    }
  }

  #invalidateAll(): void {
    this.#epoch++;
    this.#near = this.#emptyTier();
  }

  #emptyTier(): MemoryIdempotencyCache {
    return new MemoryIdempotencyCache({ maxEntries: this.#maxEntries, clock: this.#clock });
  }
}

/** Where a token's entry lives in memory, and its name in invalidations (when there are any). */
interface Place {
  readonly slot: TokenRef;
  readonly name?: string;
}

function checkSource(where: string, source: unknown): void {
  const s = source as Partial<Record<keyof CacheInvalidations, unknown>> | null;
  if (
    typeof s !== 'object' ||
    s === null ||
    typeof s.subscribe !== 'function' ||
    typeof s.nameOf !== 'function' ||
    typeof s.live !== 'boolean'
  ) {
    throw new InvalidOptionError(
      `${where}.invalidations`,
      'a CacheInvalidations source (subscribe, nameOf and live), e.g. new RedisCacheInvalidations(redis)',
      typeof s === 'object' && s !== null ? 'an object without them' : source,
    );
  }
}
