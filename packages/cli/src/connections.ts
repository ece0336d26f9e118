/**
 * Opens what the config names: the knex or ioredis clients, and the store and cache on them. The
 * commands talk to the store and cache through their ports only; the clients are closed at the end.
 */
import type { IdempotencyCache, IdempotencyStore } from '@idempotent-mq/core';
import { InvalidOptionError } from '@idempotent-mq/core';
import type { Redis } from 'ioredis';
import type { Knex } from 'knex';
import type { ResolvedCache, ResolvedConfig, ResolvedStore } from './config.js';
import { messageOf } from './config.js';
import { CliError } from './exit-codes.js';

/** The store and cache of one command run, and how to close them. */
export interface Connections {
  readonly store: IdempotencyStore;
  /** For messages: `knex store (PostgreSQL, table idempotency_tokens)`, `Redis store (redis://…)`. */
  readonly storeDescription: string;
  /** The knex instance of a knex store (for `migrate`). */
  readonly knex?: Knex;
  /** The resolved store settings. */
  readonly storeConfig: ResolvedStore;
  readonly cache?: IdempotencyCache;
  readonly cacheDescription?: string;
  /** Closes every client opened; safe to call more than once. */
  close(): Promise<void>;
}

/** Opens the store (and the cache, if configured). Redis clients are connected before this resolves. */
export async function openConnections(config: ResolvedConfig): Promise<Connections> {
  const closers: (() => Promise<void>)[] = [];
  const close = async () => {
    const all = closers.splice(0);
    await Promise.allSettled(all.map((fn) => fn()));
  };
  try {
    const store = await openStore(config.store, closers);
    const cache = config.cache ? await openCache(config.cache, closers) : undefined;
    return { ...store, storeConfig: config.store, ...cache, close };
  } catch (error) {
    await close();
    throw error;
  }
}

async function openStore(
  config: ResolvedStore,
  closers: (() => Promise<void>)[],
): Promise<{ store: IdempotencyStore; storeDescription: string; knex?: Knex }> {
  switch (config.type) {
    case 'knex': {
      const knex = await openKnex(config);
      closers.push(() => knex.destroy());
      const { KnexIdempotencyStore } = await import('@idempotent-mq/knex');
      const store = configured(config.origin, () => new KnexIdempotencyStore(knex, config.table ?? {}));
      const table = config.table?.tableName ?? 'idempotency_tokens';
      return { store, knex, storeDescription: `knex store (${labelOf(store.dialectName)}, table ${table})` };
    }
    case 'redis': {
      const client = await openRedis(config.url, config.origin);
      closers.push(() => quit(client));
      const { RedisIdempotencyStore } = await import('@idempotent-mq/redis');
      const options = config.keyPrefix === undefined ? {} : { keyPrefix: config.keyPrefix };
      const store = configured(config.origin, () => new RedisIdempotencyStore(client, options));
      return {
        store,
        storeDescription: `Redis store (${redacted(config.url)}, prefix ${store.layout.prefix})`,
      };
    }
    default:
      return { store: config.store, storeDescription: config.description ?? 'custom store' };
  }
}

async function openCache(
  config: ResolvedCache,
  closers: (() => Promise<void>)[],
): Promise<{ cache: IdempotencyCache; cacheDescription: string }> {
  if (config.type === 'custom')
    return { cache: config.cache, cacheDescription: config.description ?? 'custom cache' };
  const client = await openRedis(config.url, config.origin);
  closers.push(() => quit(client));
  const { RedisIdempotencyCache } = await import('@idempotent-mq/redis');
  const options = config.keyPrefix === undefined ? {} : { keyPrefix: config.keyPrefix };
  const cache = configured(config.origin, () => new RedisIdempotencyCache(client, options));
  return { cache, cacheDescription: `Redis cache (${redacted(config.url)}, prefix ${cache.layout.prefix})` };
}

async function openKnex(config: Extract<ResolvedStore, { type: 'knex' }>): Promise<Knex> {
  const module = await importPeer<{ default?: unknown; knex?: unknown }>('knex', 'knex', config.knex.client);
  const factory = (module.knex ?? module.default) as (config: Knex.Config) => Knex;
  const client = config.knex.client;
  const sqlite = client === 'better-sqlite3' || client === 'sqlite3';
  try {
    return factory({
      ...(sqlite ? { useNullAsDefault: true } : {}),
      acquireConnectionTimeout: 10_000,
      // knex logs a failed connection itself, on stdout: the command reports it, once, on stderr.
      log: { warn: ignore, error: ignore, deprecate: ignore, debug: ignore },
      ...config.knex,
      pool: { min: 0, max: 2, ...config.knex.pool },
    });
  } catch (error) {
    // knex throws here for an unknown client or a missing driver.
    throw new CliError(
      'CONFIG',
      `Cannot create the knex client from ${config.origin}: ${messageOf(error)}. Install the driver ` +
        `(pg, mysql2 or better-sqlite3) beside the CLI, or fix the client name.`,
      { cause: error },
    );
  }
}

function ignore(): void {}

async function openRedis(url: string, origin: string): Promise<Redis> {
  const { Redis } = await importPeer<typeof import('ioredis')>('ioredis', 'ioredis');
  let client: Redis;
  try {
    // One attempt, no reconnect: an operator's command should fail at once, not wait for a server.
    client = new Redis(url, {
      lazyConnect: true,
      connectTimeout: 5_000,
      maxRetriesPerRequest: 1,
      retryStrategy: () => null,
    });
  } catch (error) {
    throw new CliError('CONFIG', `The Redis URL of ${origin} is not valid: ${messageOf(error)}.`, {
      cause: error,
    });
  }
  client.on('error', () => {}); // reported by the command that meets it
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    throw new CliError(
      'UNREACHABLE',
      `Cannot reach Redis at ${redacted(url)} (${origin}): ${messageOf(error)}. Check that it runs and the URL ` +
        `(${origin.startsWith('IDEMPOTENT_MQ_') ? origin : `${origin}, or IDEMPOTENT_MQ_REDIS_URL`}).`,
      { cause: error },
    );
  }
  return client;
}

async function quit(client: Redis): Promise<void> {
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}

/** A peer dependency, imported only by the stores that need it, with the fix when it is missing. */
async function importPeer<T>(name: string, forWhat: string, driver?: unknown): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (error) {
    const install = typeof driver === 'string' ? `${name} ${driver}` : name;
    throw new CliError(
      'CONFIG',
      `The ${forWhat} package is not installed (${messageOf(error)}). Install it beside the CLI: npm install ${install}.`,
      { cause: error },
    );
  }
}

/** An adapter built from config options: an invalid option is a config error naming where it came from. */
function configured<T>(origin: string, build: () => T): T {
  try {
    return build();
  } catch (error) {
    if (error instanceof InvalidOptionError) {
      throw new CliError('CONFIG', `${error.message} Fix it in ${origin}.`, { cause: error });
    }
    throw error;
  }
}

function labelOf(dialect: string): string {
  return dialect === 'postgresql' ? 'PostgreSQL' : dialect === 'mysql' ? 'MySQL/MariaDB' : 'SQLite';
}

/** A URL without its password, for messages. */
export function redacted(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}
