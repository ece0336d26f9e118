/**
 * Builds the demo's storage from its options: the embedded defaults (a SQLite file, a memory cache), or
 * the servers it is given (`DATABASE_URL` postgres:// or mysql://, `REDIS_URL`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type IdempotencyCache,
  MemoryIdempotencyCache,
  MemoryIdempotencyStore,
  NearIdempotencyCache,
} from '@idempotent-mq/core';
import { createIdempotencyTable, dropIdempotencyTable, KnexIdempotencyStore } from '@idempotent-mq/knex';
import { RedisCacheInvalidations, RedisIdempotencyCache } from '@idempotent-mq/redis';
import { Redis } from 'ioredis';
import knexFactory, { type Knex } from 'knex';
import { MemoryLedger, SqlLedger } from './ledger.js';
import type { Storage } from './scenario.js';

export type StoreKind = 'sqlite' | 'memory' | 'url';

export interface StorageOptions {
  /** `sqlite` (a temporary file), `memory`, or `url` for `databaseUrl`. */
  readonly store: StoreKind;
  /** postgres://… or mysql://… when `store` is `url`. */
  readonly databaseUrl?: string;
  /** redis://… for the cache; a memory cache otherwise. */
  readonly redisUrl?: string;
  /** Tables and keys are named after it, so runs never meet. @defaultValue a random one */
  readonly namespace?: string;
}

export async function openStorage(options: StorageOptions): Promise<Storage> {
  const ns = options.namespace ?? `demo_${process.pid}_${Date.now().toString(36)}`;
  const closers: (() => Promise<void>)[] = [];
  let cache: IdempotencyCache = new MemoryIdempotencyCache();
  let cacheLabel = 'memory cache';
  if (options.redisUrl) {
    const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
    await redis.connect(); // the cache fails fast until its client is ready
    closers.push(async () => {
      // The demo's markers are its own: remove them rather than leave them for their retention.
      for await (const keys of redis.scanStream({ match: `${ns}:*`, count: 1000 })) {
        if ((keys as string[]).length > 0) await redis.unlink(...(keys as string[]));
      }
      redis.disconnect();
    });
    // A near cache in front of Redis: duplicates this process saw lately cost no round trip, and Redis
    // client-side tracking drops a token from it as soon as any process forgets it.
    const invalidations = new RedisCacheInvalidations(redis, { keyPrefix: `${ns}:` });
    const near = new NearIdempotencyCache(new RedisIdempotencyCache(redis, { keyPrefix: `${ns}:` }), {
      invalidations,
    });
    closers.unshift(async () => {
      near.close();
      await invalidations.close();
    });
    cache = near;
    cacheLabel = `near cache + Redis cache (${options.redisUrl}, tracked)`;
  }
  if (options.store === 'memory') {
    return {
      store: new MemoryIdempotencyStore(),
      cache,
      ledger: new MemoryLedger(),
      label: `memory store + ${cacheLabel}`,
      close: () => closeAll(closers),
    };
  }

  let knex: Knex;
  let label: string;
  if (options.store === 'sqlite') {
    const dir = await mkdtemp(join(tmpdir(), 'idempotent-mq-demo-'));
    closers.push(() => rm(dir, { recursive: true, force: true }));
    const filename = join(dir, 'payments.sqlite');
    knex = knexFactory({ client: 'better-sqlite3', connection: { filename }, useNullAsDefault: true });
    await knex.raw('PRAGMA journal_mode = WAL');
    label = `SQLite store (${filename})`;
  } else {
    const url = options.databaseUrl ?? '';
    const client = /^postgres(ql)?:/.test(url) ? 'pg' : /^(mysql|mariadb):/.test(url) ? 'mysql2' : undefined;
    if (!client) throw new Error(`DATABASE_URL must start with postgres:// or mysql://, got "${url}"`);
    knex = knexFactory({ client, connection: url.replace(/^mariadb:/, 'mysql:'), pool: { min: 0, max: 16 } });
    label = `${client === 'pg' ? 'PostgreSQL' : 'MySQL/MariaDB'} store (${url.replace(/\/\/[^@]*@/, '//')})`;
  }
  const tableName = `${ns}_tokens`;
  const ledger = new SqlLedger(knex, ns);
  await ledger.reset();
  await createIdempotencyTable(knex, { tableName });
  // Closed in reverse: tables first, then the connection.
  closers.unshift(async () => {
    await ledger.drop();
    await dropIdempotencyTable(knex, { tableName });
    await knex.destroy();
  });
  return {
    store: new KnexIdempotencyStore(knex, { tableName }),
    cache,
    ledger,
    label: `${label} + ${cacheLabel}`,
    close: () => closeAll(closers),
  };
}

async function closeAll(closers: (() => Promise<void>)[]): Promise<void> {
  for (const close of closers) await close();
}
