/**
 * The cache on Redis: step 1 of the recipe, shared by every consumer instance. It remembers completed
 * tokens only (the engine writes it after the store commits), answers a batch of one scope with one MGET,
 * and fails at once when the client is not connected so that the engine goes straight to the store.
 */
import {
  type CachedCompletion,
  ConsoleLogger,
  type IdempotencyCache,
  type IdempotencyLogger,
  InvalidOptionError,
  type TokenRef,
} from '@idempotent-mq/core';
import { decodeCacheValue, encodeCacheValue } from './cache-value.js';
import { RedisNotReadyError, RedisTimeoutError } from './errors.js';
import { RedisKeyLayout } from './key-layout.js';
import type { RedisClient } from './redis-client.js';

/** Something under one of our keys that is not a cache value we wrote. It was read as a miss. */
export interface InvalidCacheValue {
  readonly token: TokenRef;
  readonly redisKey: string;
  readonly reason: string;
}

export interface RedisIdempotencyCacheOptions {
  /**
   * Prepended to every key, to share one Redis with other programs (and other environments). Must not
   * contain `{` or `}`, which would change the cluster hash tag.
   * @defaultValue `'imq:'`
   */
  keyPrefix?: string;
  /**
   * Keys longer than this in UTF-8 are stored under a SHA-256 of the key instead, so a key name stays
   * bounded whatever `maxKeyLength` the engine is given.
   * @defaultValue 512
   */
  maxKeyBytes?: number;
  /**
   * A call slower than this is abandoned with {@link RedisTimeoutError}. The engine bounds cache reads
   * with its own `cacheTimeoutMs`; this bounds writes and direct use too.
   * @defaultValue 1000
   */
  timeoutMs?: number;
  /**
   * Called when a value under one of our keys is not ours (it is read as a miss).
   * @defaultValue a warning on `logger`
   */
  onInvalidValue?: (event: InvalidCacheValue) => void;
  /** @defaultValue a `ConsoleLogger` at `warn` */
  logger?: IdempotencyLogger;
}

export class RedisIdempotencyCache implements IdempotencyCache {
  /** Where each token is kept; exposed for operators and tests. */
  readonly layout: RedisKeyLayout;
  private readonly timeoutMs: number;
  private readonly onInvalidValue: (event: InvalidCacheValue) => void;

  constructor(
    private readonly client: RedisClient,
    options: RedisIdempotencyCacheOptions = {},
  ) {
    this.layout = new RedisKeyLayout(options.keyPrefix ?? 'imq:', options.maxKeyBytes ?? 512);
    const timeoutMs = options.timeoutMs ?? 1000;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
      throw new InvalidOptionError('timeoutMs', 'a positive integer (milliseconds)', timeoutMs);
    }
    this.timeoutMs = timeoutMs;
    const logger = options.logger ?? new ConsoleLogger('warn');
    this.onInvalidValue =
      options.onInvalidValue ??
      ((event) =>
        logger.warn('a value under an idempotency cache key is not ours; read as a miss', {
          redisKey: event.redisKey,
          reason: event.reason,
        }));
  }

  async get(token: TokenRef): Promise<CachedCompletion | undefined> {
    const key = this.layout.key('cache', token);
    const text = await this.call(() => this.client.get(key));
    return this.decode(token, key, text);
  }

  async getMany(tokens: readonly TokenRef[]): Promise<(CachedCompletion | undefined)[]> {
    if (tokens.length === 0) return [];
    const keys = tokens.map((token) => this.layout.key('cache', token));
    const texts = new Array<string | null>(tokens.length).fill(null);
    // A single node answers any keys in one MGET; a cluster only keys of one slot, i.e. of one scope.
    const groups = this.client.isCluster ? this.layout.groupBySlot(tokens) : [tokens.map((_, i) => i)];
    await this.call(() =>
      Promise.all(
        groups.map(async (indexes) => {
          const found = await this.client.mget(...indexes.map((i) => keys[i] as string));
          indexes.forEach((at, n) => {
            texts[at] = found[n] ?? null;
          });
        }),
      ),
    );
    return tokens.map((token, i) => this.decode(token, keys[i] as string, texts[i] ?? null));
  }

  async set(token: TokenRef, value: CachedCompletion, ttlMs: number): Promise<void> {
    if (!Number.isFinite(ttlMs) || ttlMs < 1) return;
    const key = this.layout.key('cache', token);
    await this.call(() => this.client.set(key, encodeCacheValue(value), 'PX', Math.ceil(ttlMs)));
  }

  async delete(token: TokenRef): Promise<void> {
    const key = this.layout.key('cache', token);
    await this.call(() => this.client.del(key));
  }

  private decode(token: TokenRef, redisKey: string, text: string | null): CachedCompletion | undefined {
    if (text === null) return undefined;
    const decoded = decodeCacheValue(text);
    if ('value' in decoded) return decoded.value;
    this.onInvalidValue({ token, redisKey, reason: decoded.invalid });
    return undefined;
  }

  /**
   * Fails at once unless the client is connected: ioredis would otherwise queue the command until it
   * reconnects, and a cache that waits is worse than none.
   */
  private async call<T>(command: () => Promise<T>): Promise<T> {
    const { status } = this.client;
    if (status !== 'ready') {
      // A lazyConnect client connects on its first command, and we send none until it is connected.
      if (status === 'wait') this.client.connect().catch(() => {});
      throw new RedisNotReadyError(status);
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RedisTimeoutError(this.timeoutMs)), this.timeoutMs);
      timer.unref();
    });
    try {
      return await Promise.race([command(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
