/** The store and cache contracts on a 3-master Redis Cluster that this file starts and stops itself. */
import { describeCacheContract, describeStoreContract } from '@idempotent-mq/testing/vitest';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisIdempotencyCache, RedisIdempotencyStore } from '../src/index.js';
import { RedisTestCluster } from './support/redis-cluster.js';
import { pause } from './support/shared-redis.js';

let cluster: RedisTestCluster;
let client: Cluster;

beforeAll(async () => {
  cluster = await RedisTestCluster.start(3);
  client = cluster.client();
  await new Promise<void>((resolve, reject) => {
    client.once('ready', resolve);
    client.once('error', reject);
  });
});
afterAll(async () => {
  await client?.quit();
  await cluster?.stop();
});

describeStoreContract('RedisIdempotencyStore (cluster)', async () => ({
  store: new RedisIdempotencyStore(client),
  advance: pause,
  leaseMs: 300,
}));

describeCacheContract('RedisIdempotencyCache (cluster)', async () => ({
  cache: new RedisIdempotencyCache(client),
  advance: pause,
  ttlMs: 300,
}));

describe('on a cluster', () => {
  it('a batch spanning scopes on different nodes is read, aligned, one MGET / script call per scope', async () => {
    const cache = new RedisIdempotencyCache(client);
    const store = new RedisIdempotencyStore(client);
    const scopes = Array.from({ length: 12 }, (_, i) => `spread-${i}-${Date.now()}`);
    const slots = new Set(scopes.map((s) => cache.layout.scopeTag(s)));
    expect(slots.size).toBe(12);
    for (const [i, scope] of scopes.entries()) {
      await cache.set({ scope, key: 'K' }, { result: String(i) }, 60_000);
      await store.claim({ token: { scope, key: 'K' }, owner: `o${i}`, leaseMs: 60_000 });
    }
    const tokens = scopes.flatMap((scope) => [
      { scope, key: 'K' },
      { scope, key: 'MISSING' },
    ]);
    const cached = await cache.getMany(tokens);
    expect(cached.map((v) => v?.result)).toEqual(scopes.flatMap((_, i) => [String(i), undefined]));
    const records = await store.getMany(tokens);
    expect(records.map((r) => r?.owner)).toEqual(scopes.flatMap((_, i) => [`o${i}`, undefined]));
    // The keys really are spread over the masters.
    const owners = await Promise.all(client.nodes('master').map(async (node) => (await node.dbsize()) > 0));
    expect(owners.filter(Boolean).length).toBeGreaterThan(1);
  });

  it('reads and writes of one tick spanning scopes on different nodes: one command per slot, no CROSSSLOT', async () => {
    const cache = new RedisIdempotencyCache(client, { keyPrefix: 'tick:' });
    const scopes = Array.from({ length: 12 }, (_, i) => `tick-${i}-${Date.now()}`);
    const tokens = scopes.flatMap((scope) => [0, 1, 2].map((n) => ({ scope, key: `K${n}` })));
    // All writes in one tick, then all reads in one tick.
    await Promise.all(tokens.map((token, i) => cache.set(token, { result: String(i) }, 60_000)));
    const read = await Promise.all(
      [...tokens, { scope: scopes[0] as string, key: 'MISSING' }].map((token) => cache.get(token)),
    );
    expect(read.map((v) => v?.result)).toEqual([...tokens.map((_, i) => String(i)), undefined]);
  });
});
