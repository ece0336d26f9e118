/**
 * Redis client-side tracking behind a near cache, against real servers: the shared Redis for what only
 * reads and writes our own prefix, private servers (killed, restarted, flushed, refusing TRACKING) for
 * the rest. Every wait below is bounded and polled; nothing sleeps for a fixed time to pass.
 */
import {
  InvalidOptionError,
  NearIdempotencyCache,
  type NearIdempotencyCacheOptions,
  type TokenRef,
} from '@idempotent-mq/core';
import { FakeClock, FaultyCache } from '@idempotent-mq/testing';
import { Cluster, Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisCacheInvalidations, RedisIdempotencyCache } from '../src/index.js';
import { RedisServer } from './support/redis-server.js';
import { deletePrefix, pause, REDIS_URL, runPrefix } from './support/shared-redis.js';

const HOUR = 3_600_000;
const token = (key: string): TokenRef => ({ scope: 'v1:tracking', key });

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** A client that reconnects quickly, as an application's would; disconnected by the cleanup. */
function clientOf(url: string): Redis {
  const client = new Redis(url, { retryStrategy: () => 50, maxRetriesPerRequest: 2 });
  client.on('error', () => {});
  cleanup.push(async () => client.disconnect());
  return client;
}

/** {@link clientOf}, once it is ready. */
async function readyClient(url: string): Promise<Redis> {
  const client = clientOf(url);
  await until('the client is ready', () => client.status === 'ready');
  return client;
}

async function until(what: string, condition: () => boolean | Promise<boolean>, ms = 3000): Promise<number> {
  const started = performance.now();
  while (!(await condition())) {
    if (performance.now() - started > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await pause(5);
  }
  return performance.now() - started;
}

/** Names the source told, in order, and how many times it said "everything". */
function spy(source: RedisCacheInvalidations) {
  const seen = { names: [] as string[], all: 0 };
  source.subscribe({ invalidate: (names) => seen.names.push(...names), invalidateAll: () => seen.all++ });
  return seen;
}

interface Process {
  readonly client: Redis;
  readonly source: RedisCacheInvalidations;
  readonly shared: FaultyCache;
  readonly near: NearIdempotencyCache;
  /** Reads that reached the Redis cache (near-cache misses and read-backs). */
  readonly redisReads: () => number;
}

/** One consumer process: its own client, a tracked near cache over the Redis cache. */
async function consumer(
  url: string,
  keyPrefix: string,
  near: Omit<NearIdempotencyCacheOptions, 'invalidations'> = {},
  { live = true } = {},
): Promise<Process> {
  const client = clientOf(url);
  const source = new RedisCacheInvalidations(client, { keyPrefix, logger: quiet });
  cleanup.push(() => source.close());
  const shared = new FaultyCache(new RedisIdempotencyCache(client, { keyPrefix }));
  const cache = new NearIdempotencyCache(shared, { maxStalenessMs: 60_000, ...near, invalidations: source });
  if (live) await until('tracking on', () => source.live);
  return {
    client,
    source,
    shared,
    near: cache,
    redisReads: () => (shared.faults.calls.get('get') ?? 0) + (shared.faults.calls.get('getMany') ?? 0),
  };
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

async function privateServer(): Promise<RedisServer> {
  const server = await RedisServer.start();
  cleanup.push(() => server.stop());
  return server;
}

describe('RedisCacheInvalidations on the shared Redis', () => {
  async function twoProcesses() {
    const keyPrefix = runPrefix('tracking');
    const here = await consumer(REDIS_URL, keyPrefix);
    const elsewhere = new RedisIdempotencyCache(await readyClient(REDIS_URL), { keyPrefix });
    cleanup.push(() => deletePrefix(here.client, keyPrefix));
    return { keyPrefix, here, elsewhere };
  }

  it('a delete by another process drops the token here within milliseconds; the next read asks Redis', async () => {
    const { here, elsewhere } = await twoProcesses();
    await elsewhere.set(token('T1'), { fingerprint: 'f' }, HOUR);
    expect(await here.near.get(token('T1'))).toEqual({ fingerprint: 'f' });
    expect(await here.near.get(token('T1'))).toEqual({ fingerprint: 'f' });
    expect(here.redisReads()).toBe(1);

    await elsewhere.delete(token('T1')); // `idempotent-mq forget`, in another process
    const ms = await until('the near cache drops T1', () => here.near.size === 0, 1000);
    expect(ms).toBeLessThan(500);
    expect(await here.near.get(token('T1'))).toBeUndefined(); // 60 s staleness bound, yet not stale
    expect(here.redisReads()).toBe(2);
  });

  it('a token this process wrote (not read) is watched too: it is read back after the write', async () => {
    const { here, elsewhere } = await twoProcesses();
    await here.near.set(token('T2'), {}, HOUR);
    expect(here.redisReads()).toBe(1); // the read-back that makes Redis track the key
    expect(await here.near.get(token('T2'))).toEqual({});
    expect(here.redisReads()).toBe(1);
    await elsewhere.delete(token('T2'));
    await until('the near cache drops T2', () => here.near.size === 0, 1000);
    expect(await here.near.get(token('T2'))).toBeUndefined();
  });

  it('a token learnt as a miss is not remembered; one completed elsewhere later is found', async () => {
    const { here, elsewhere } = await twoProcesses();
    expect(await here.near.get(token('T3'))).toBeUndefined();
    await elsewhere.set(token('T3'), { result: '"ok"' }, HOUR);
    expect(await here.near.getMany([token('T3')])).toEqual([{ result: '"ok"' }]);
  });

  it('our own writes and deletes send us no invalidation (NOLOOP)', async () => {
    const { here, elsewhere } = await twoProcesses();
    const seen = spy(here.source);
    await elsewhere.set(token('T4'), {}, HOUR);
    await here.near.get(token('T4')); // tracked
    await here.near.set(token('T4'), { result: '2' }, HOUR); // our own SET of a key we track
    await here.near.get(token('T5')); // a marker: tracked, then changed elsewhere
    await elsewhere.set(token('T5'), {}, HOUR);
    // Invalidations arrive in order on one connection: once T5's is here, T4's would have been.
    await until("the marker's invalidation", () => seen.names.includes(here.source.nameOf(token('T5'))));
    expect(seen.names).toEqual([here.source.nameOf(token('T5'))]);
    expect(await here.near.get(token('T4'))).toEqual({ result: '2' });
  });

  it('invalidations of the store, or of other keys read on the client, are not passed on', async () => {
    const { keyPrefix, here, elsewhere } = await twoProcesses();
    const seen = spy(here.source);
    const other = await readyClient(REDIS_URL);
    const storeKey = here.source.layout.key('record', token('T6'));
    await here.client.get(storeKey);
    await here.client.get(`${keyPrefix}plain`);
    await other.set(storeKey, 'x');
    await other.set(`${keyPrefix}plain`, 'x');
    await here.near.get(token('T7'));
    await elsewhere.set(token('T7'), {}, HOUR);
    await until("the marker's invalidation", () => seen.names.length > 0);
    expect(seen.names).toEqual([here.source.nameOf(token('T7'))]);
  });

  it('ready: one check line, ok, naming the redirect', async () => {
    const { here } = await twoProcesses();
    const checks = await here.near.check({ transactional: false });
    const line = checks.find((c) => c.name === 'client-side tracking');
    expect(line?.status).toBe('ok');
    expect(line?.detail).toMatch(/^on \(CLIENT TRACKING ON REDIRECT \d+ NOLOOP\)/);
  });

  it('close() turns tracking off on the server, ends the subscriber and tells listeners to forget', async () => {
    const { here } = await twoProcesses();
    const seen = spy(here.source);
    await here.source.close();
    expect(here.source.live).toBe(false);
    expect(seen.all).toBe(1);
    const info = (await here.client.call('CLIENT', 'TRACKINGINFO')) as unknown[];
    expect((info[1] as string[]).includes('off')).toBe(true);
  });
});

describe('RedisCacheInvalidations when the server changes under it', () => {
  it('FLUSHDB (and FLUSHALL) clear the near cache: Redis sends a null invalidation', async () => {
    const server = await privateServer();
    const here = await consumer(server.url, 'imq:');
    const other = await readyClient(server.url);
    const elsewhere = new RedisIdempotencyCache(other);
    await elsewhere.set(token('F1'), {}, HOUR);
    await elsewhere.set(token('F2'), {}, HOUR);
    await here.near.getMany([token('F1'), token('F2')]);
    expect(here.near.size).toBe(2);
    await other.flushdb();
    await until('the near cache is cleared', () => here.near.size === 0, 1000);
    expect(await here.near.get(token('F1'))).toBeUndefined();

    await elsewhere.set(token('F1'), {}, HOUR);
    await here.near.get(token('F1'));
    await other.flushall();
    await until('the near cache is cleared again', () => here.near.size === 0, 1000);
    expect(here.source.live).toBe(true);
  });

  it('a restart of the server clears the near tier; tracking comes back on and still invalidates', async () => {
    const server = await privateServer();
    const here = await consumer(server.url, 'imq:');
    const seen = spy(here.source);
    await here.near.set(token('R1'), {}, HOUR);
    expect(here.near.size).toBe(1);

    await server.restart(); // killed by PID, started again on the same port (no persistence)
    await until('tracking lost', () => !here.source.live || seen.all > 0);
    expect(here.near.size).toBe(0); // invalidations were lost meanwhile: nothing held is trusted
    await until('tracking back on', () => here.source.live, 10_000);
    const info = (await here.client.call('CLIENT', 'TRACKINGINFO')) as unknown[];
    expect(info[1]).toEqual(['on', 'noloop']);

    const elsewhere = new RedisIdempotencyCache(await readyClient(server.url));
    await here.near.set(token('R2'), {}, HOUR);
    expect(await here.near.get(token('R2'))).toEqual({});
    await elsewhere.delete(token('R2'));
    await until('the near cache drops R2 after the restart', () => here.near.size === 0, 1000);
  });

  it('the subscriber connection killed alone: the redirect is renewed and invalidations flow again', async () => {
    const server = await privateServer();
    const here = await consumer(server.url, 'imq:');
    const admin = await readyClient(server.url);
    const elsewhere = new RedisIdempotencyCache(admin);
    const before = ((await here.client.call('CLIENT', 'TRACKINGINFO')) as unknown[])[3];
    await here.near.set(token('S1'), {}, HOUR);

    await admin.call('CLIENT', 'KILL', 'ID', String(before));
    await until('the near cache is cleared', () => here.near.size === 0);
    await until('tracking back on', async () => {
      if (!here.source.live) return false;
      const info = (await here.client.call('CLIENT', 'TRACKINGINFO')) as unknown[];
      return info[3] !== before;
    });

    await here.near.set(token('S2'), {}, HOUR);
    await elsewhere.delete(token('S2'));
    await until('the near cache drops S2', () => here.near.size === 0, 1000);
  });

  it('the cache connection killed alone: tracking is turned on again on the new one', async () => {
    const server = await privateServer();
    const here = await consumer(server.url, 'imq:');
    const admin = await readyClient(server.url);
    const elsewhere = new RedisIdempotencyCache(admin);
    await here.near.set(token('C1'), {}, HOUR);
    const id = await here.client.call('CLIENT', 'ID');

    await admin.call('CLIENT', 'KILL', 'ID', String(id));
    await until('the near cache is cleared', () => here.near.size === 0);
    await until('tracking back on a new connection', async () => {
      if (!here.source.live) return false;
      return (await here.client.call('CLIENT', 'ID')) !== id;
    });

    await here.near.set(token('C2'), {}, HOUR);
    await elsewhere.delete(token('C2'));
    await until('the near cache drops C2', () => here.near.size === 0, 1000);
  });

  it('a server that refuses CLIENT TRACKING: not live, a degraded check line, and the staleness bound holds', async () => {
    const server = await privateServer();
    const admin = await readyClient(server.url);
    // As a proxy or a managed Redis without tracking would: the subcommand is refused (NOPERM).
    await admin.call('ACL', 'SETUSER', 'default', '-client|tracking');
    const clock = new FakeClock();
    const here = await consumer(
      server.url,
      'imq:',
      { clock, maxStalenessMs: 1000, maxTrackedStalenessMs: 60_000 },
      { live: false },
    );
    const checks = await here.source.check();
    expect(checks).toHaveLength(1);
    expect(checks[0]).toMatchObject({ name: 'client-side tracking', status: 'degraded' });
    expect(checks[0]?.detail).toMatch(/^the server refused CLIENT TRACKING \(NOPERM.*maxStalenessMs bound/);
    expect(checks[0]?.fix).toMatch(/Redis 6\.0 or later/);
    expect(here.source.live).toBe(false);

    const elsewhere = new RedisIdempotencyCache(admin);
    await elsewhere.set(token('N1'), {}, HOUR);
    await here.near.get(token('N1'));
    await here.near.set(token('N2'), {}, HOUR);
    expect(here.redisReads()).toBe(1); // no read-back: nothing would watch it
    await clock.advance(999);
    expect(await here.near.get(token('N1'))).toEqual({});
    expect(here.redisReads()).toBe(1);
    await clock.advance(2);
    await elsewhere.delete(token('N1'));
    expect(await here.near.get(token('N1'))).toBeUndefined(); // asked again after maxStalenessMs
    expect(here.redisReads()).toBe(2);
  });

  it('a server that is not up: not live, and a degraded check line that says so', async () => {
    const server = await privateServer();
    await server.kill();
    const client = clientOf(server.url);
    const source = new RedisCacheInvalidations(client, { logger: quiet });
    cleanup.push(() => source.close());
    const [line] = await source.check();
    expect(line).toMatchObject({ name: 'client-side tracking', status: 'degraded' });
    expect(line?.detail).toMatch(
      /^not on after 2000 ms \(the cache connection is "(connecting|reconnecting)"/,
    );
  });
});

describe('RedisCacheInvalidations refuses', () => {
  it('a Cluster client, saying why and what to do instead', () => {
    const cluster = new Cluster([{ host: '127.0.0.1', port: 7999 }], { lazyConnect: true });
    expect(() => new RedisCacheInvalidations(cluster)).toThrow(InvalidOptionError);
    expect(() => new RedisCacheInvalidations(cluster)).toThrow(
      /"RedisCacheInvalidations.client".*tracking is per node.*without `invalidations`/,
    );
  });

  it('a URL where a client belongs, a misspelt option, and a key prefix the cache would refuse', () => {
    expect(() => new RedisCacheInvalidations(REDIS_URL as unknown as Redis)).toThrow(/pass new Redis\(url\)/);
    const client = new Redis(REDIS_URL, { lazyConnect: true });
    expect(() => new RedisCacheInvalidations(client, { keyprefix: 'x:' } as never)).toThrow(
      /"RedisCacheInvalidations.keyprefix".*did you mean "keyPrefix"/,
    );
    expect(() => new RedisCacheInvalidations(client, { keyPrefix: 'a{b}' })).toThrow(/"keyPrefix"/);
    client.disconnect();
  });
});
