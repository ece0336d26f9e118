/**
 * The cache on Redis: step 1 of the recipe, shared by every consumer instance. It remembers completed
 * tokens only (the engine writes it after the store commits), answers a batch of one scope with one MGET,
 * and fails at once when the client is not connected so that the engine goes straight to the store.
 *
 * Under concurrency, the reads issued within one tick of the event loop go out as one MGET (batches'
 * reads with the others, at most 1 024 keys a command), and the writes as one pipeline: a consumer
 * handling 64 messages (or 64 batches) at once sends a few commands instead of 64 separate writes to the
 * socket, whose system calls are what bound throughput on a busy host.
 */
import {
  type CachedCompletion,
  type CacheInspection,
  ConsoleLogger,
  checkOptionsObject,
  type IdempotencyCache,
  type IdempotencyLogger,
  InvalidOptionError,
  type ReadinessCheck,
  type TokenRef,
  withTimeout,
} from '@idempotent-mq/core/adapter';
import { decodeCacheValue, encodeCacheValue } from './cache-value.js';
import { RedisNotReadyError, RedisTimeoutError } from './errors.js';
import { RedisKeyLayout } from './key-layout.js';
import { assertRedisClient, checkRedis } from './redis-check.js';
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

/** A read or write waiting for the end of the tick, to go out with the others of its slot. */
interface Pending<T> {
  readonly key: string;
  readonly scope: string;
  readonly resolve: (value: T) => void;
  readonly reject: (error: unknown) => void;
}

interface PendingWrite extends Pending<void> {
  readonly value: string;
  readonly ttlMs: number;
}

/** Every option's name, so that a misspelt one (`keyprefix`) is refused with the nearest. */
/** The most keys one MGET asks for; the reads of a busier tick go out as several. */
const MAX_MGET = 1024;

const CACHE_OPTIONS = ['keyPrefix', 'maxKeyBytes', 'timeoutMs', 'onInvalidValue', 'logger'];

/**
 * The shared cache of completed tokens on Redis (see the file comment for how it batches by tick).
 *
 * @example
 * ```ts
 * container.rebind(IDEMPOTENCY_CACHE).toConstantValue(new RedisIdempotencyCache(new Redis(url), { keyPrefix: 'imq:' }));
 * ```
 */
export class RedisIdempotencyCache implements IdempotencyCache {
  /** Where each token is kept; exposed for operators and tests. */
  readonly layout: RedisKeyLayout;
  private readonly timeoutMs: number;
  private readonly onInvalidValue: (event: InvalidCacheValue) => void;
  /** Reads waiting for the end of the tick, and commands of reads sent but not answered yet. */
  private reads: Pending<string | null>[] | undefined;
  private readsInFlight = 0;
  private writes: PendingWrite[] | undefined;

  constructor(
    private readonly client: RedisClient,
    options: RedisIdempotencyCacheOptions = {},
  ) {
    assertRedisClient(client);
    checkOptionsObject(options, CACHE_OPTIONS, 'RedisIdempotencyCache');
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

  /**
   * Checks, before any message is consumed: the client becomes ready (within 2 s) and every master
   * answers PING, runs Redis 2.6.12 or later as a master, and accepts a write (SET … PX). A problem
   * only degrades the check, never fails it: without the cache every message goes to the store. Never
   * throws.
   */
  async check(): Promise<readonly ReadinessCheck[]> {
    return checkRedis(this.client, { port: 'cache', layout: this.layout });
  }

  async get(token: TokenRef): Promise<CachedCompletion | undefined> {
    this.assertReady();
    const key = this.layout.key('cache', token);
    const text = await new Promise<string | null>((resolve, reject) => {
      const read = { key, scope: token.scope, resolve, reject };
      // Nothing else on the way: no one to wait for, send now (the caller may compute while it travels).
      if (this.readsInFlight === 0 && !this.reads) return this.sendReads([read]);
      this.queueReads([read]);
    });
    return this.decode(token, key, text);
  }

  async getMany(tokens: readonly TokenRef[]): Promise<(CachedCompletion | undefined)[]> {
    if (tokens.length === 0) return [];
    this.assertReady();
    const keys = tokens.map((token) => this.layout.key('cache', token));
    // One promise for the batch (not one a key): each read fills its slot, the last one resolves it.
    const found = await new Promise<(string | null)[]>((resolve, reject) => {
      const texts = new Array<string | null>(tokens.length);
      let left = tokens.length;
      let failed = false;
      const fail = (error: unknown) => {
        if (failed) return;
        failed = true;
        reject(error);
      };
      const reads = tokens.map(
        (token, i): Pending<string | null> => ({
          key: keys[i] as string,
          scope: token.scope,
          resolve: (text) => {
            texts[i] = text;
            if (--left === 0 && !failed) resolve(texts);
          },
          reject: fail,
        }),
      );
      // Like a lone read: sent at once when nothing else is on its way, else with this tick's other reads
      // (concurrent batches then share one MGET, as concurrent single reads do).
      if (this.readsInFlight === 0 && !this.reads) this.sendReads(reads);
      else this.queueReads(reads);
    });
    return tokens.map((token, i) => this.decode(token, keys[i] as string, found[i] ?? null));
  }

  async set(token: TokenRef, value: CachedCompletion, ttlMs: number): Promise<void> {
    if (!Number.isFinite(ttlMs) || ttlMs < 1) return;
    this.assertReady();
    const key = this.layout.key('cache', token);
    const text = encodeCacheValue(value);
    await new Promise<void>((resolve, reject) => {
      if (!this.writes) {
        this.writes = [];
        process.nextTick(() => this.flushWrites());
      }
      this.writes.push({ key, scope: token.scope, value: text, ttlMs: Math.ceil(ttlMs), resolve, reject });
    });
  }

  async delete(token: TokenRef): Promise<void> {
    const key = this.layout.key('cache', token);
    await this.call(() => this.client.del(key));
  }

  /**
   * The token's entry with its time left (`PTTL`), in one pipeline; a value that is not ours is
   * reported as `invalid` (without calling `onInvalidValue`), not read as a miss.
   */
  async inspect(token: TokenRef): Promise<CacheInspection | undefined> {
    const key = this.layout.key('cache', token);
    const replies = await this.call(() => this.client.pipeline().get(key).pttl(key).exec());
    const [read, ttl] = (replies ?? []) as [Error | null, unknown][];
    if (ttl?.[0]) throw ttl[0];
    const pttl = ttl?.[1];
    const ttlMs = typeof pttl === 'number' && pttl >= 0 ? pttl : undefined;
    const location = `Redis key ${key}`;
    const [readError, text] = read ?? [null, null];
    if (readError) {
      if (readError.message.startsWith('WRONGTYPE')) {
        return { invalid: 'a value that is not a string', ttlMs, location };
      }
      throw readError;
    }
    if (typeof text !== 'string') return undefined;
    const decoded = decodeCacheValue(text);
    return 'value' in decoded
      ? { value: decoded.value, ttlMs, location }
      : { invalid: decoded.invalid, ttlMs, location };
  }

  private decode(token: TokenRef, redisKey: string, text: string | null): CachedCompletion | undefined {
    if (text === null) return undefined;
    const decoded = decodeCacheValue(text);
    if ('value' in decoded) return decoded.value;
    this.onInvalidValue({ token, redisKey, reason: decoded.invalid });
    return undefined;
  }

  /** Adds reads to this tick's, which go out together at its end. */
  private queueReads(reads: Pending<string | null>[]): void {
    if (!this.reads) {
      this.reads = [];
      process.nextTick(() => this.flushReads());
    }
    for (const read of reads) this.reads.push(read);
  }

  /** This tick's reads: one MGET per slot (one in all on a single node), a plain GET when alone. */
  private flushReads(): void {
    const reads = this.reads as Pending<string | null>[];
    this.reads = undefined;
    this.sendReads(reads);
  }

  private sendReads(reads: Pending<string | null>[]): void {
    for (const slot of this.bySlot(reads)) {
      // At most MAX_MGET keys a command: a tick of many concurrent batches must not make one huge reply
      // that holds the server (and every other client) up while it is built.
      for (let from = 0; from < slot.length; from += MAX_MGET) {
        this.sendGroup(from === 0 && slot.length <= MAX_MGET ? slot : slot.slice(from, from + MAX_MGET));
      }
    }
  }

  /** One GET or MGET for reads of one slot. */
  private sendGroup(group: Pending<string | null>[]): void {
    this.readsInFlight++;
    const only = group.length === 1 ? group[0] : undefined;
    const texts = settled<(string | null)[]>(() =>
      only
        ? this.client.get(only.key).then((text) => [text])
        : this.client.mget(...group.map((read) => read.key)),
    );
    this.bounded(texts).then(
      (found) => {
        this.readsInFlight--;
        for (const [i, read] of group.entries()) read.resolve(found[i] ?? null);
      },
      (error: unknown) => {
        this.readsInFlight--;
        for (const read of group) read.reject(error);
      },
    );
  }

  /** This tick's writes: one pipeline per slot, a plain SET when alone. */
  private flushWrites(): void {
    const writes = this.writes as PendingWrite[];
    this.writes = undefined;
    for (const group of this.bySlot(writes)) {
      const only = group.length === 1 ? group[0] : undefined;
      // Each write's own error (a pipeline answers each command with its error or reply), or null.
      const errors = settled<(Error | null)[]>(() =>
        only
          ? this.client.set(only.key, only.value, 'PX', only.ttlMs).then(() => [null])
          : group
              .reduce((pipeline, w) => pipeline.set(w.key, w.value, 'PX', w.ttlMs), this.client.pipeline())
              .exec()
              .then((replies) => group.map((_, i) => replies?.[i]?.[0] ?? null)),
      );
      this.bounded(errors).then(
        (failed) => {
          for (const [i, write] of group.entries()) {
            const error = failed[i];
            if (error) write.reject(error);
            else write.resolve();
          }
        },
        (error: unknown) => {
          for (const write of group) write.reject(error);
        },
      );
    }
  }

  /** On a single node, everything together; on a cluster, by slot (a scope's keys share one). */
  private bySlot<T extends { readonly scope: string }>(items: T[]): T[][] {
    if (!this.client.isCluster || items.length === 1) return [items];
    return this.layout.groupBySlot(items).map((indexes) => indexes.map((i) => items[i] as T));
  }

  /**
   * Fails at once unless the client is connected: ioredis would otherwise queue the command until it
   * reconnects, and a cache that waits is worse than none.
   */
  private assertReady(): void {
    const { status } = this.client;
    if (status === 'ready') return;
    // A lazyConnect client connects on its first command, and we send none until it is connected.
    if (status === 'wait') this.client.connect().catch(() => {});
    throw new RedisNotReadyError(status);
  }

  private async call<T>(command: () => Promise<T>): Promise<T> {
    this.assertReady();
    return this.bounded(command());
  }

  /** `promise`, or a {@link RedisTimeoutError} after `timeoutMs`. One timer per command sent. */
  private bounded<T>(promise: Promise<T>): Promise<T> {
    return withTimeout(promise, this.timeoutMs, { error: () => new RedisTimeoutError(this.timeoutMs) });
  }
}

/**
 * The promise `send` returns, or a rejected one if it throws instead: sends run at the end of a tick,
 * where a throw would escape every caller (and leave a read counted in flight for ever).
 */
function settled<T>(send: () => Promise<T>): Promise<T> {
  try {
    return send();
  } catch (error) {
    return Promise.reject(error);
  }
}
