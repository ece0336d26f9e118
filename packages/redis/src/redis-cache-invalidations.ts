/**
 * Redis client-side tracking (Redis 6+) as the invalidation source of a `NearIdempotencyCache`: a token
 * deleted by any process (`forget`, `cache.delete`) leaves every near cache within milliseconds.
 *
 * How: the cache's connection runs `CLIENT TRACKING ON REDIRECT <id> NOLOOP`, so the server remembers
 * every key it reads and, when one changes, tells a dedicated RESP2 connection of ours subscribed to
 * `__redis__:invalidate` (ioredis drops RESP3 `invalidate` pushes, so they are not used). Default
 * (read-tracking) mode, not BCAST: invalidations go only to the processes that read the key, not to the
 * whole fleet for every write; since a write is not a read, the near cache reads back what it writes.
 * Tracking lives and dies with a connection: after either one reconnects it is turned on again, and
 * until it is confirmed the near cache keeps its `maxStalenessMs` bound and forgets what it held.
 */
import {
  type CacheInvalidationListener,
  type CacheInvalidations,
  ConsoleLogger,
  checkOptionsObject,
  type IdempotencyLogger,
  InvalidOptionError,
  type ReadinessCheck,
  type TokenRef,
  withTimeout,
} from '@idempotent-mq/core/adapter';
import type { Redis } from 'ioredis';
import { RedisKeyLayout } from './key-layout.js';
import { assertRedisClient, CHECK_READY_MS, CHECK_STEP_MS } from './redis-check.js';
import type { RedisClient } from './redis-client.js';

/** The channel Redis publishes invalidations on, for a RESP2 connection that tracking redirects to. */
export const INVALIDATION_CHANNEL = '__redis__:invalidate';

/** Options of a {@link RedisCacheInvalidations}: the key layout must be the cache's. */
export interface RedisCacheInvalidationsOptions {
  /** The `keyPrefix` of the `RedisIdempotencyCache` on the same client. @defaultValue `'imq:'` */
  keyPrefix?: string;
  /** The `maxKeyBytes` of the `RedisIdempotencyCache` on the same client. @defaultValue 512 */
  maxKeyBytes?: number;
  /** Where tracking refused or lost is told. @defaultValue a `ConsoleLogger` at `warn` */
  logger?: IdempotencyLogger;
}

const OPTIONS = ['keyPrefix', 'maxKeyBytes', 'logger'];
const WHERE = 'RedisCacheInvalidations';

/**
 * A `CacheInvalidations` source on Redis client-side tracking, for the `RedisIdempotencyCache` that
 * reads through `client` (give it the same client, `keyPrefix` and `maxKeyBytes`). It opens one more
 * connection (a `duplicate()` of `client`, so TLS and credentials are kept); close it with
 * {@link RedisCacheInvalidations.close}. A single node or Sentinel only: a Cluster client is refused.
 *
 * @example
 * ```ts
 * const redis = new Redis(process.env.REDIS_URL);
 * const invalidations = new RedisCacheInvalidations(redis, { keyPrefix: 'imq:' });
 * const cache = new NearIdempotencyCache(new RedisIdempotencyCache(redis, { keyPrefix: 'imq:' }), {
 *   invalidations,
 * });
 * ```
 */
export class RedisCacheInvalidations implements CacheInvalidations {
  /** Redis tracks what a connection reads, not what it writes: the near cache reads back its writes. */
  readonly watchedByReading = true;
  /** Where each token's cache entry lives; the names invalidations carry are its keys. */
  readonly layout: RedisKeyLayout;
  readonly #client: Redis;
  readonly #subscriber: Redis;
  readonly #logger: IdempotencyLogger;
  readonly #listeners = new Set<CacheInvalidationListener>();
  #live = false;
  #closed = false;
  /** Bumped each time the connection closes: an answer from before is about a connection gone. */
  #clientIncarnation = 0;
  #subscriberIncarnation = 0;
  /** The subscriber connection's CLIENT ID once it is subscribed; undefined while it is not. */
  #subscriberId: number | undefined;
  /** Why the server refused CLIENT TRACKING the last time it was asked; undefined if it did not. */
  #refused: string | undefined;
  #lastError: string | undefined;
  #arming: Promise<void> | undefined;
  #armAgain = false;
  readonly #onClientReady = () => this.#arm();
  readonly #onClientClosed = () => this.#lost('client');

  /**
   * @param client the ioredis client the cache reads through (its connection is the one tracked).
   * @throws InvalidOptionError for a Cluster client (tracking is per node), or a bad option.
   */
  constructor(client: RedisClient, options: RedisCacheInvalidationsOptions = {}) {
    assertRedisClient(client);
    if (client.isCluster) {
      throw new InvalidOptionError(
        `${WHERE}.client`,
        'a single-node or Sentinel client (new Redis(url)): client-side tracking is per node, and a Cluster ' +
          'client is not supported; leave the near cache without `invalidations` (its maxStalenessMs bound holds)',
        'a Cluster client',
      );
    }
    checkOptionsObject(options, OPTIONS, WHERE);
    this.layout = new RedisKeyLayout(options.keyPrefix ?? 'imq:', options.maxKeyBytes ?? 512);
    this.#logger = options.logger ?? new ConsoleLogger('warn');
    this.#client = client as Redis;
    // RESP2, so invalidations arrive as Pub/Sub messages; subscribed by us on each connect (after CLIENT ID).
    this.#subscriber = this.#client.duplicate({ protocol: 2, autoResubscribe: false, lazyConnect: true });
    this.#subscriber.on('ready', () => void this.#subscribe());
    this.#subscriber.on('close', () => this.#lost('subscriber'));
    this.#subscriber.on('error', (error: unknown) => {
      this.#lastError = errorText(error);
    });
    this.#subscriber.on('messageBuffer', (channel: Buffer, payload: unknown) =>
      this.#received(channel, payload),
    );
    this.#client.on('ready', this.#onClientReady);
    this.#client.on('close', this.#onClientClosed);
    this.#subscriber.connect().catch(() => {}); // the subscriber reconnects by itself, as the client does
  }

  /** True while tracking is confirmed on, redirected to our subscriber, both connections up. */
  get live(): boolean {
    return this.#live;
  }

  /** The cache key of `token`: the name its invalidations carry. */
  nameOf(token: TokenRef): string {
    return this.layout.key('cache', token);
  }

  /** Adds a listener; the function returned removes it. */
  subscribe(listener: CacheInvalidationListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * One line, `client-side tracking`: ok once tracking is confirmed on (waiting up to 2 s), degraded when
   * the server refuses CLIENT TRACKING (Redis < 6, a proxy) or the connections are not up — the near
   * cache then keeps its maxStalenessMs bound. Never throws.
   */
  async check(): Promise<readonly ReadinessCheck[]> {
    const name = 'client-side tracking';
    const fallback = 'the near cache keeps its maxStalenessMs bound until it is';
    if (this.#client.status === 'wait') this.#client.connect().catch(() => {});
    await this.#untilLive(CHECK_READY_MS);
    if (this.#live) {
      const off = await this.#trackingOff();
      if (off) {
        return [
          {
            name,
            status: 'degraded',
            detail: `${off}; ${fallback} on again.`,
            fix: 'Something sent CLIENT TRACKING OFF on the cache connection: give the cache its own client.',
          },
        ];
      }
      return [
        {
          name,
          status: 'ok',
          detail:
            `on (CLIENT TRACKING ON REDIRECT ${this.#subscriberId} NOLOOP): a token deleted by another process ` +
            'leaves the near cache at once.',
        },
      ];
    }
    if (this.#refused) {
      return [
        {
          name,
          status: 'degraded',
          detail: `the server refused CLIENT TRACKING (${this.#refused}); ${fallback} accepted.`,
          fix:
            'Point the cache at Redis 6.0 or later directly (a proxy, or a managed Redis that disables CLIENT, ' +
            'refuses it), or leave `invalidations` unset.',
        },
      ];
    }
    const why = this.#lastError ? `: ${this.#lastError}` : '';
    return [
      {
        name,
        status: 'degraded',
        detail:
          `not on after ${CHECK_READY_MS} ms (the cache connection is "${this.#client.status}", the ` +
          `invalidation subscriber "${this.#subscriber.status}"${why}); ${fallback} on.`,
        fix: 'Is Redis up and reachable from here? Tracking is turned on by itself once both connections are ready.',
      },
    ];
  }

  /**
   * Turns tracking off on the cache connection and closes the subscriber; listeners are told to forget
   * everything, and hear nothing more.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.off('ready', this.#onClientReady);
    this.#client.off('close', this.#onClientClosed);
    this.#setLive(false);
    this.#listeners.clear();
    this.#subscriber.disconnect();
    if (this.#client.status === 'ready') {
      await within('CLIENT TRACKING OFF', this.#client.call('CLIENT', 'TRACKING', 'OFF')).catch(() => {});
    }
  }

  /** The subscriber is (re)connected: learn its id, subscribe, then redirect tracking to it. */
  async #subscribe(): Promise<void> {
    const incarnation = this.#subscriberIncarnation;
    try {
      // CLIENT ID first: a RESP2 connection in Pub/Sub mode accepts nothing but (UN)SUBSCRIBE and PING.
      const id = Number(await within('CLIENT ID', this.#subscriber.call('CLIENT', 'ID')));
      await within('SUBSCRIBE', this.#subscriber.subscribe(INVALIDATION_CHANNEL));
      if (incarnation !== this.#subscriberIncarnation || this.#closed) return;
      this.#subscriberId = id;
      this.#arm();
    } catch (error) {
      this.#lastError = errorText(error);
      if (this.#closed || incarnation !== this.#subscriberIncarnation) return;
      // A server that will not answer these cannot track for us: say so, like a refused TRACKING.
      if (isReplyError(error)) this.#refuse(`the invalidation subscriber: ${errorText(error)}`);
    }
  }

  /** Turns tracking on (again), one attempt at a time; a request during one runs after it. */
  #arm(): void {
    if (this.#arming) {
      this.#armAgain = true;
      return;
    }
    this.#arming = (async () => {
      do {
        this.#armAgain = false;
        await this.#armOnce();
      } while (this.#armAgain && !this.#closed);
    })().finally(() => {
      this.#arming = undefined;
    });
  }

  async #armOnce(): Promise<void> {
    const id = this.#subscriberId;
    if (this.#closed || id === undefined || this.#client.status !== 'ready') return;
    const incarnation = this.#incarnations();
    try {
      await within(
        'CLIENT TRACKING',
        this.#client.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', String(id), 'NOLOOP'),
      );
    } catch (error) {
      this.#lastError = errorText(error);
      if (isReplyError(error) && incarnation === this.#incarnations()) this.#refuse(errorText(error));
      return; // a lost connection: its 'close' has made us not live, and its 'ready' arms again
    }
    if (this.#closed || incarnation !== this.#incarnations()) return;
    this.#refused = undefined;
    this.#setLive(true);
  }

  #refuse(reason: string): void {
    if (this.#refused !== reason) {
      this.#logger.warn(
        'Redis refused client-side tracking: the near cache keeps its maxStalenessMs bound (Redis 6.0 or later needed)',
        { reason },
      );
    }
    this.#refused = reason;
  }

  /** Both connections' incarnations, as one value to compare before and after an await. */
  #incarnations(): string {
    return `${this.#clientIncarnation}/${this.#subscriberIncarnation}`;
  }

  /**
   * A connection closed: on the client's, tracking is off; on the subscriber's, the redirect dangles.
   * Either way invalidations are lost until tracking is on again (the next 'ready' of either arms it).
   */
  #lost(which: 'client' | 'subscriber'): void {
    if (this.#closed) return;
    if (which === 'client') this.#clientIncarnation++;
    else {
      this.#subscriberIncarnation++;
      this.#subscriberId = undefined;
    }
    this.#setLive(false);
  }

  #setLive(live: boolean): void {
    if (this.#live === live) return;
    this.#live = live;
    for (const listener of this.#listeners) listener.invalidateAll();
  }

  /** A message on the subscriber: an array of keys, or null for FLUSHDB / FLUSHALL. */
  #received(channel: Buffer, payload: unknown): void {
    if (channel.toString() !== INVALIDATION_CHANNEL || this.#closed) return;
    if (payload === null || payload === undefined) {
      for (const listener of this.#listeners) listener.invalidateAll();
      return;
    }
    const keys = Array.isArray(payload) ? payload : [payload];
    const names = keys.map(String).filter((key) => this.#isCacheKey(key));
    if (names.length === 0) return;
    for (const listener of this.#listeners) listener.invalidate(names);
  }

  /** `<prefix>{<16-character tag>}:c:…`: the store's keys (and anything else) read on this client are skipped. */
  #isCacheKey(key: string): boolean {
    const { prefix } = this.layout;
    return key.startsWith(prefix) && key.startsWith('}:c:', prefix.length + 17);
  }

  #untilLive(ms: number): Promise<void> {
    if (this.#live) return Promise.resolve();
    return new Promise((resolve) => {
      const started = Date.now();
      const poll = setInterval(() => {
        if (this.#live || this.#refused || this.#closed || Date.now() - started >= ms) {
          clearInterval(poll);
          resolve();
        }
      }, 10);
      poll.unref?.();
    });
  }

  /** Why tracking is not on after all, asked of the server (CLIENT TRACKINGINFO, 6.2+); undefined if it is. */
  async #trackingOff(): Promise<string | undefined> {
    let info: unknown;
    try {
      info = await within('CLIENT TRACKINGINFO', this.#client.call('CLIENT', 'TRACKINGINFO'));
    } catch {
      return undefined; // Redis 6.0 has no TRACKINGINFO: trust the OK it answered
    }
    const fields = Array.isArray(info) ? info : [];
    const at = (field: string) => fields[fields.indexOf(field) + 1];
    const flags = (at('flags') as unknown[] | undefined)?.map(String) ?? [];
    if (!flags.includes('on'))
      return `the server says tracking is off on the cache connection (flags ${flags.join(' ')})`;
    if (Number(at('redirect')) !== this.#subscriberId) {
      return `tracking redirects to connection ${at('redirect')}, not to our subscriber ${this.#subscriberId}`;
    }
    return undefined;
  }
}

function within<T>(what: string, work: Promise<T>): Promise<T> {
  return withTimeout(work, CHECK_STEP_MS, {
    error: () => new Error(`${what}: no answer within ${CHECK_STEP_MS} ms`),
  });
}

function isReplyError(error: unknown): boolean {
  return error instanceof Error && error.name === 'ReplyError';
}

function errorText(error: unknown): string {
  return (error instanceof Error ? error.message || error.name : String(error)).replace(/\.+$/, '');
}
