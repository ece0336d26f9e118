/** The store and cache contracts, on the shared local Redis, under a key prefix unique to this run. */
import { describeCacheContract, describeStoreContract } from '@idempotent-mq/testing/vitest';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { RedisIdempotencyCache, RedisIdempotencyStore } from '../src/index.js';
import { connect, deletePrefix, pause, runPrefix } from './support/shared-redis.js';

const prefix = runPrefix('contract');
let client: Redis;

beforeAll(async () => {
  client = await connect();
});
afterAll(async () => {
  await deletePrefix(client, prefix);
  await client.quit();
});

// Leases and TTLs run on the Redis server's clock, so the suites really wait: keep them short.
describeStoreContract('RedisIdempotencyStore (single node)', async () => ({
  store: new RedisIdempotencyStore(client, { keyPrefix: prefix }),
  advance: pause,
  leaseMs: 300,
}));

describeCacheContract('RedisIdempotencyCache (single node)', async () => ({
  cache: new RedisIdempotencyCache(client, { keyPrefix: prefix }),
  advance: pause,
  ttlMs: 300,
}));
