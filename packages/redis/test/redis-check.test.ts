/**
 * The Redis adapters' start-up checks on private servers this file starts and stops: a ready server
 * passes (and the store's scripts are loaded by it); a stopped server fails the store and only degrades
 * the cache; a replica, an eviction policy and a user without scripting are found before the first
 * message; on a cluster every master is asked; and a URL bound where a client belongs is refused at once.
 */
import { createHash } from 'node:crypto';
import { InvalidOptionError, type ReadinessCheck } from '@idempotent-mq/core';
import { type Cluster, Redis, type RedisOptions } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisIdempotencyCache, RedisIdempotencyStore } from '../src/index.js';
import { loadScript } from '../src/lua-scripts.js';
import { RedisTestCluster } from './support/redis-cluster.js';
import { RedisServer, sparePorts } from './support/redis-server.js';
import { pause } from './support/shared-redis.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function server(): Promise<RedisServer> {
  const started = await RedisServer.start();
  cleanup.push(() => started.stop());
  return started;
}

/** A client that keeps reconnecting quickly, as an application's would; quit by the cleanup. */
function clientOf(port: number, options: RedisOptions = {}): Redis {
  const client = new Redis({ host: '127.0.0.1', port, retryStrategy: () => 50, ...options });
  client.on('error', () => {});
  cleanup.push(async () => client.disconnect());
  return client;
}

const summary = (checks: readonly ReadinessCheck[]) => checks.map((c) => [c.name, c.status]);

describe('a ready Redis', () => {
  it('store: reachable, a master recent enough, its scripts loaded and a TIME-then-write script run', async () => {
    const redis = await server();
    const client = clientOf(redis.port);
    const store = new RedisIdempotencyStore(client, { keyPrefix: 'chk:' });
    const checks = await store.check();
    expect(summary(checks)).toEqual([
      ['reachable', 'ok'],
      ['server', 'ok'],
      ['scripts', 'ok'],
    ]);
    expect(checks[0]?.detail).toMatch(
      new RegExp(`^127\\.0\\.0\\.1:${redis.port} answered PING in \\d+ ms\\.$`),
    );
    expect(checks[1]?.detail).toMatch(/^Redis 7\.\d+\.\d+, master; appendonly is off, so a restart forgets/);
    expect(checks[2]?.detail).toMatch(/the store's 9 scripts load on the server/);
    // The check loaded the scripts: the first claim needs no EVAL.
    const claimSha = createHash('sha1').update(loadScript('claim')).digest('hex');
    expect(await client.script('EXISTS', claimSha)).toEqual([1]);
    // Its probe key is outside the store's own keys: stats and purges never see it.
    expect(await client.keys('chk:*')).toEqual(['chk:readiness-probe']);
    expect((await store.stats()).unreadable).toBe(0);
  });

  it('cache: reachable, a master, and a write accepted', async () => {
    const redis = await server();
    const cache = new RedisIdempotencyCache(clientOf(redis.port));
    expect(summary(await cache.check())).toEqual([
      ['reachable', 'ok'],
      ['server', 'ok'],
      ['writes', 'ok'],
    ]);
  });

  it('a lazyConnect client not connected yet is connected by the check', async () => {
    const redis = await server();
    const client = clientOf(redis.port, { lazyConnect: true });
    expect(client.status).toBe('wait');
    const checks = await new RedisIdempotencyStore(client).check();
    expect(checks.every((c) => c.status === 'ok')).toBe(true);
    expect(client.status).toBe('ready');
  });
});

describe('a Redis that is down', () => {
  it('stopped under a connected client: the store fails "reachable", the cache only degrades; both pass again once it is back', async () => {
    const redis = await server();
    const client = clientOf(redis.port);
    const store = new RedisIdempotencyStore(client);
    const cache = new RedisIdempotencyCache(client);
    expect(summary(await store.check())).toEqual([
      ['reachable', 'ok'],
      ['server', 'ok'],
      ['scripts', 'ok'],
    ]);

    await redis.kill();
    // The client notices within a moment (a check made before would meet a PING that fails instead).
    while (client.status === 'ready') await pause(5);
    const started = performance.now();
    const [storeChecks, cacheChecks] = await Promise.all([store.check(), cache.check()]);
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(storeChecks).toEqual([
      {
        name: 'reachable',
        status: 'failed',
        detail: expect.stringMatching(
          /^the store's Redis client is "(connecting|reconnecting)", not "ready", after 2000 ms: .*ECONNREFUSED/,
        ),
        fix: expect.stringMatching(/REDIS_URL.*claims fail \(StoreUnavailableError\)/),
      },
    ]);
    expect(cacheChecks).toEqual([
      {
        name: 'reachable',
        status: 'degraded',
        detail: expect.stringMatching(/^the cache's Redis client is .*not "ready"/),
        fix: expect.stringMatching(/every message goes to the store/),
      },
    ]);

    await redis.restart();
    // Within the check's own wait for the client to reconnect.
    expect((await cache.check()).every((c) => c.status === 'ok')).toBe(true);
    expect((await store.check()).every((c) => c.status === 'ok')).toBe(true);
  });

  it('a client on a closed port from the start: failed after the bound, with the connection error', async () => {
    const [port] = await sparePorts(1);
    const store = new RedisIdempotencyStore(clientOf(port as number));
    const [reachable, ...rest] = await store.check();
    expect(rest).toEqual([]);
    expect(reachable?.status).toBe('failed');
    expect(reachable?.detail).toContain(`ECONNREFUSED 127.0.0.1:${port}`);
  });
});

describe('a Redis that answers but would refuse the work', () => {
  it('a replica: the store fails (its writes would be refused), the cache degrades', async () => {
    const primary = await server();
    const replica = await server();
    const client = clientOf(replica.port);
    await client.replicaof('127.0.0.1', primary.port);
    const storeChecks = await new RedisIdempotencyStore(client).check();
    expect(storeChecks.find((c) => c.name === 'server')).toMatchObject({
      status: 'failed',
      detail: expect.stringMatching(/is a replica \(role slave\): it refuses writes \(READONLY\)/),
      fix: expect.stringMatching(/at a master/),
    });
    expect(storeChecks.find((c) => c.name === 'scripts')).toMatchObject({
      status: 'failed',
      detail: expect.stringMatching(/reads TIME and then writes was refused: READONLY/),
    });
    const cacheChecks = await new RedisIdempotencyCache(client).check();
    expect(cacheChecks.filter((c) => c.status !== 'ok').map((c) => [c.name, c.status])).toEqual([
      ['server', 'degraded'],
      ['writes', 'degraded'],
    ]);
  });

  it('an eviction policy under a memory limit degrades the store: a record could go before its retention', async () => {
    const redis = await server();
    const client = clientOf(redis.port);
    await client.config('SET', 'maxmemory', '100mb');
    await client.config('SET', 'maxmemory-policy', 'allkeys-lru');
    const check = (await new RedisIdempotencyStore(client).check()).find((c) => c.name === 'server');
    expect(check).toMatchObject({
      status: 'degraded',
      detail: expect.stringMatching(/maxmemory-policy allkeys-lru/),
      fix: expect.stringMatching(/noeviction/),
    });
    // The cache does not mind: eviction only costs it a store round trip.
    expect((await new RedisIdempotencyCache(client).check()).every((c) => c.status === 'ok')).toBe(true);
  });

  it('a user who may not run scripts: the store fails on SCRIPT LOAD, the cache passes', async () => {
    const redis = await server();
    const admin = clientOf(redis.port);
    await admin.call('ACL', 'SETUSER', 'nolua', 'on', '>pw', '~*', '+@all', '-@scripting');
    const client = clientOf(redis.port, { username: 'nolua', password: 'pw' });
    const scripts = (await new RedisIdempotencyStore(client).check()).find((c) => c.name === 'scripts');
    expect(scripts).toMatchObject({
      status: 'failed',
      detail: expect.stringMatching(/^SCRIPT LOAD was refused: NOPERM/),
      fix: expect.stringMatching(/\+@scripting/),
    });
    expect((await new RedisIdempotencyCache(client).check()).every((c) => c.status === 'ok')).toBe(true);
  });
});

describe('on a cluster', () => {
  let cluster: RedisTestCluster;
  let client: Cluster;
  beforeAll(async () => {
    cluster = await RedisTestCluster.start(3);
    client = cluster.client();
    client.on('error', () => {});
    await new Promise<void>((resolve) => client.once('ready', resolve));
  });
  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  it('every master is asked; one that stops is named', async () => {
    const store = new RedisIdempotencyStore(client);
    const checks = await store.check();
    expect(summary(checks)).toEqual([
      ['reachable', 'ok'],
      ['server', 'ok'],
      ['scripts', 'ok'],
    ]);
    expect(checks[0]?.detail).toMatch(/^all 3 masters answered PING/);
    expect(checks[2]?.detail).toMatch(/load on all 3 masters/);

    const stopped = cluster.nodes[1] as RedisServer;
    await stopped.kill();
    const [reachable, ...rest] = await store.check();
    expect(rest).toEqual([]);
    expect(reachable).toMatchObject({
      name: 'reachable',
      status: 'failed',
      detail: expect.stringMatching(
        new RegExp(`^1 of 3 masters do not answer: 127\\.0\\.0\\.1:${stopped.port}`),
      ),
    });
    const cacheReachable = (await new RedisIdempotencyCache(client).check())[0];
    expect(cacheReachable?.status).toBe('degraded');
  });
});

describe('what is bound where a client belongs', () => {
  const refusal = (make: () => unknown): InvalidOptionError => {
    try {
      make();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidOptionError);
      return error as InvalidOptionError;
    }
    throw new Error('expected the constructor to refuse it');
  };

  it('a URL string: refused in the constructor (not "client.once is not a function" on the first message), its password hidden', () => {
    const url = 'redis://:s3cret@cache.internal:6379/0';
    for (const make of [
      () => new RedisIdempotencyStore(url as unknown as Redis),
      () => new RedisIdempotencyCache(url as unknown as Redis),
    ]) {
      const error = refusal(make);
      expect(error.option).toBe('client');
      expect(error.message).toMatch(/pass new Redis\(url\), not the URL/);
      expect(error.message).toContain('redis://:***@cache.internal:6379/0');
      expect(error.message).not.toContain('s3cret');
    }
  });

  it('an options object, a node-redis client and nothing at all are refused with their own fix', () => {
    expect(
      refusal(() => new RedisIdempotencyStore({ host: 'h', port: 6379 } as unknown as Redis)).message,
    ).toMatch(/pass new Redis\(options\), not the options/);
    const nodeRedis = { isOpen: false, sendCommand: async () => undefined, connect: async () => undefined };
    expect(refusal(() => new RedisIdempotencyCache(nodeRedis as unknown as Redis)).message).toMatch(
      /node-redis clients \(createClient\) are not supported/,
    );
    expect(refusal(() => new RedisIdempotencyCache(undefined as unknown as Redis)).message).toMatch(
      /^Invalid option "client": expected an ioredis client/,
    );
  });
});
