/**
 * A dead Redis never stalls consumption and never decides that a message is a duplicate: the cache is
 * bypassed at once (the outcome says so), the store decides, and the client reconnects by itself.
 */
import {
  IDEMPOTENCY_CLOCK,
  type IdempotencyContext,
  Idempotent,
  MemoryIdempotencyStore,
  StoreUnavailableError,
  SystemClock,
} from '@idempotent-mq/core';
import { injectable } from 'inversify';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { harness, type Message, msg } from '../../../test/support/engine-harness.js';
import { RedisIdempotencyCache, RedisIdempotencyStore, RedisNotReadyError } from '../src/index.js';
import { RedisServer, sleep, sparePorts } from './support/redis-server.js';
import { REDIS_URL } from './support/shared-redis.js';

function paymentsWaitingAtMost(cacheTimeoutMs: number) {
  @injectable()
  class Payments {
    readonly effects: string[] = [];
    @Idempotent({ key: (m: Message) => m.keys, mode: 'lease', ttlMs: 300_000, cacheTimeoutMs })
    async onMessage(m: Message, _ctx: IdempotencyContext) {
      this.effects.push(m.keys[0] as string);
    }
  }
  return Payments;
}

function setup(client: Redis, cacheTimeoutMs: number) {
  const clock = new SystemClock();
  const cache = new RedisIdempotencyCache(client, { keyPrefix: 'imq-degrade:', timeoutMs: 200 });
  const h = harness({ store: () => new MemoryIdempotencyStore({ clock }), cache: () => cache });
  h.container.rebind(IDEMPOTENCY_CLOCK).toConstantValue(clock);
  return { h, cache, consumer: h.get(paymentsWaitingAtMost(cacheTimeoutMs)) };
}

/** Delivers `m` and returns how long the engine took. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

describe('the Redis cache when Redis is down', () => {
  it('a client on a closed loopback port: every call fails at once, the store decides, nothing is a duplicate twice', async () => {
    const [port] = await sparePorts(1);
    const client = new Redis({ host: '127.0.0.1', port, retryStrategy: () => 200 });
    client.on('error', () => {});
    cleanup.push(async () => client.disconnect());
    // The engine would wait 2 s for a slow cache: the calls below are fast only because ours fails at once.
    const { h, cache, consumer } = setup(client, 2000);

    const started = performance.now();
    await expect(cache.get({ scope: 's', key: 'k' })).rejects.toBeInstanceOf(RedisNotReadyError);
    expect(performance.now() - started).toBeLessThan(20);

    const keys = Array.from({ length: 50 }, (_, i) => `DOWN-${i}`);
    // The first copies together, then their redeliveries together.
    const timings: number[] = [];
    for (const round of [keys, keys]) {
      timings.push(...(await Promise.all(round.map((key) => timed(() => consumer.onMessage(msg(key)))))));
    }
    const slowest = Math.max(...timings);
    expect(slowest).toBeLessThan(500);
    expect(consumer.effects.sort()).toEqual([...keys].sort());
    expect(h.outcomes).toHaveLength(100);
    expect(h.outcomes.every((o) => o.cacheBypassed)).toBe(true);
    expect(h.outcomes.filter((o) => o.kind === 'duplicate').every((o) => o.tier === 'store')).toBe(true);
    expect(h.outcomes.filter((o) => o.kind === 'processed')).toHaveLength(50);
  });

  it('a server killed mid-run: bypassed quickly while down, used again after it restarts, no double processing', async () => {
    const server = await RedisServer.start();
    cleanup.push(() => server.stop());
    const client = new Redis({ host: '127.0.0.1', port: server.port, retryStrategy: () => 50 });
    client.on('error', () => {});
    cleanup.push(async () => client.disconnect());
    await new Promise((resolve) => client.once('ready', resolve));
    const { h, consumer } = setup(client, 100);

    // Up: a redelivery is answered by the cache.
    await consumer.onMessage(msg('UP-1'));
    await consumer.onMessage(msg('UP-1'));
    expect(h.outcomes.at(-1)).toMatchObject({ kind: 'duplicate', tier: 'cache', cacheBypassed: false });
    // The engine does not wait for its cache write; a PING answered on the same connection means Redis
    // has it, so that nothing of UP-1 is still on its way when the server dies.
    await client.ping();

    await server.kill();
    const downFrom = h.outcomes.length;
    const timings: number[] = [];
    for (const key of ['UP-1', 'DOWN-1', 'DOWN-1', 'DOWN-2', 'UP-1']) {
      timings.push(await timed(() => consumer.onMessage(msg(key))));
    }
    const down = h.outcomes.slice(downFrom);
    // The first call may race the socket's close and wait out cacheTimeoutMs (100 ms); none waits longer.
    expect(Math.max(...timings)).toBeLessThan(400);
    expect(down.every((o) => o.cacheBypassed)).toBe(true);
    expect(down.map((o) => [o.kind, o.tier])).toEqual([
      ['duplicate', 'store'],
      ['processed', undefined],
      ['duplicate', 'store'],
      ['processed', undefined],
      ['duplicate', 'store'],
    ]);

    await server.restart();
    const reconnected = Date.now();
    while (client.status !== 'ready') {
      expect(Date.now() - reconnected).toBeLessThan(5000);
      await sleep(20);
    }
    const upFrom = h.outcomes.length;
    await consumer.onMessage(msg('AFTER-1'));
    await consumer.onMessage(msg('AFTER-1'));
    expect(h.outcomes.slice(upFrom).map((o) => [o.kind, o.tier, o.cacheBypassed])).toEqual([
      ['processed', undefined, false],
      ['duplicate', 'cache', false],
    ]);
    expect(consumer.effects).toEqual(['UP-1', 'DOWN-1', 'DOWN-2', 'AFTER-1']);
  });
});

describe('the Redis store when Redis is down', () => {
  const token = { scope: 'v1:degrade', key: `K-${Date.now()}` };

  it('a claim on a client that cannot connect fails with StoreUnavailableError after readyTimeoutMs, not later', async () => {
    const [port] = await sparePorts(1);
    const client = new Redis({ host: '127.0.0.1', port, retryStrategy: () => 50 });
    client.on('error', () => {});
    cleanup.push(async () => client.disconnect());
    for (const readyTimeoutMs of [0, 150]) {
      const store = new RedisIdempotencyStore(client, { readyTimeoutMs });
      const started = performance.now();
      const claims = Array.from({ length: 20 }, () => store.claim({ token, owner: 'o', leaseMs: 1000 }));
      for (const claim of claims) await expect(claim).rejects.toBeInstanceOf(StoreUnavailableError);
      const elapsed = performance.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(readyTimeoutMs * 0.9);
      expect(elapsed).toBeLessThan(readyTimeoutMs + 300);
    }
    expect(client.listenerCount('ready')).toBe(0);
  });

  it('a lazyConnect client is connected by the first call: the cache bypasses that one, the store waits', async () => {
    const client = new Redis(REDIS_URL, { lazyConnect: true });
    cleanup.push(async () => {
      await client.quit();
    });
    const cache = new RedisIdempotencyCache(client, { keyPrefix: 'imq-degrade:' });
    await expect(cache.get(token)).rejects.toBeInstanceOf(RedisNotReadyError);
    await new Promise((resolve) => client.once('ready', resolve));
    await expect(cache.get(token)).resolves.toBeUndefined();

    const lazy = new Redis(REDIS_URL, { lazyConnect: true });
    const store = new RedisIdempotencyStore(lazy, { keyPrefix: 'imq-degrade:' });
    cleanup.push(async () => {
      await lazy.del(store.layout.key('record', token));
      await lazy.quit();
    });
    await expect(store.get(token)).resolves.toBeUndefined();
  });

  it('a claim on a client still connecting waits for it (start-up is not an outage)', async () => {
    const client = new Redis(REDIS_URL);
    cleanup.push(async () => {
      await client.del(
        new RedisIdempotencyStore(client, { keyPrefix: 'imq-degrade:' }).layout.key('record', token),
      );
      await client.quit();
    });
    expect(client.status).not.toBe('ready');
    const store = new RedisIdempotencyStore(client, { keyPrefix: 'imq-degrade:' });
    await expect(store.claim({ token, owner: 'o', leaseMs: 1000 })).resolves.toMatchObject({
      status: 'claimed',
    });
  });

  it('a completion sent while Redis restarts waits for it and lands (AOF on): the effect is not run again', async () => {
    const server = await RedisServer.start({ aof: true });
    cleanup.push(() => server.stop());
    const client = new Redis({ host: '127.0.0.1', port: server.port, retryStrategy: () => 50 });
    client.on('error', () => {});
    cleanup.push(async () => client.disconnect());
    const store = new RedisIdempotencyStore(client);
    await expect(store.claim({ token, owner: 'o', leaseMs: 10_000 })).resolves.toMatchObject({
      status: 'claimed',
    });
    await server.kill();
    const completion = store.complete({ token, owner: 'o', ttlMs: 60_000 });
    await sleep(200);
    await server.restart();
    await expect(completion).resolves.toBe(true);
    expect(await store.get(token)).toMatchObject({ status: 'completed', owner: 'o' });
  });
});
