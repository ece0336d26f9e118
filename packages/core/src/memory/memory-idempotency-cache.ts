/** A bounded LRU of completed tokens with per-entry TTL: the default cache, and a local tier. */

import { SystemClock } from '../defaults/system-clock.js';
import { InvalidOptionError } from '../errors.js';
import { tokenId } from '../idempotency-key.js';
import type { TokenRef } from '../model/record.js';
import type { Clock } from '../ports/clock.js';
import type { CachedCompletion, CacheInspection, IdempotencyCache } from '../ports/idempotency-cache.js';
import type { ReadinessCheck } from '../ports/readiness.js';

export interface MemoryIdempotencyCacheOptions {
  /** The most entries kept; the least recently used go first. @defaultValue 10 000 */
  maxEntries?: number;
  /** @defaultValue the system clock */
  clock?: Clock;
}

interface Entry {
  readonly value: CachedCompletion;
  readonly expiresAt: number;
}

/**
 * An in-process LRU of completed tokens with a TTL, bounded by `maxEntries`: the module's default
 * cache, and the test double of the Redis cache. Lossy by design: the store is the truth.
 */
export class MemoryIdempotencyCache implements IdempotencyCache {
  /** Its calls take effect before they return: the engine bounds none of them (see the port). */
  readonly inProcess = true;
  // A Map iterates in insertion order: re-inserting on read keeps the least recent first.
  private readonly entries = new Map<string, Entry>();
  /**
   * A live iterator over `entries`, at the least recent entry. A Map iterator skips deleted entries and
   * sees appended ones, so every hole is walked once; `entries.keys().next()` from the start instead
   * walks every hole that moves and evictions left at the front — O(n) per eviction.
   */
  private cursor: MapIterator<string> = this.entries.keys();
  private readonly maxEntries: number;
  private readonly clock: Clock;

  constructor(options: MemoryIdempotencyCacheOptions = {}) {
    const max = options.maxEntries ?? 10_000;
    if (!Number.isInteger(max) || max < 1)
      throw new InvalidOptionError('maxEntries', 'a positive integer', max);
    this.maxEntries = max;
    this.clock = options.clock ?? new SystemClock();
  }

  /** In-process: nothing to reach. Always ready. */
  async check(): Promise<readonly ReadinessCheck[]> {
    return [
      { name: 'memory cache', status: 'ok', detail: `in-process, at most ${this.maxEntries} entries.` },
    ];
  }

  get size(): number {
    return this.entries.size;
  }

  async get(token: TokenRef): Promise<CachedCompletion | undefined> {
    return this.read(token);
  }

  async getMany(tokens: readonly TokenRef[]): Promise<(CachedCompletion | undefined)[]> {
    return tokens.map((token) => this.read(token));
  }

  async set(token: TokenRef, value: CachedCompletion, ttlMs: number): Promise<void> {
    const id = tokenId(token);
    this.entries.delete(id);
    this.entries.set(id, { value, expiresAt: this.clock.now() + ttlMs });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.oldest());
  }

  async delete(token: TokenRef): Promise<void> {
    this.entries.delete(tokenId(token));
  }

  /** The entry with its time left, without refreshing its place in the LRU. */
  async inspect(token: TokenRef): Promise<CacheInspection | undefined> {
    const entry = this.entries.get(tokenId(token));
    const ttlMs = entry && entry.expiresAt - this.clock.now();
    if (!entry || (ttlMs as number) <= 0) return undefined;
    return { value: entry.value, ttlMs, location: 'memory' };
  }

  private oldest(): string {
    let next = this.cursor.next();
    if (next.done) {
      // A finished iterator stays finished: start a new one (the map is non-empty here).
      this.cursor = this.entries.keys();
      next = this.cursor.next();
    }
    return next.value as string;
  }

  private read(token: TokenRef): CachedCompletion | undefined {
    const id = tokenId(token);
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    this.entries.delete(id);
    if (entry.expiresAt <= this.clock.now()) return undefined;
    this.entries.set(id, entry);
    return entry.value;
  }
}
