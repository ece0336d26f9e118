/**
 * The cache sends the reads (and writes) made within one tick together: one MGET and one pipeline
 * instead of a command each. Counted on a private server, so that no other test's commands mix in.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisIdempotencyCache } from '../src/index.js';
import { RedisServer } from './support/redis-server.js';

let server: RedisServer;
let client: Redis;

beforeAll(async () => {
  server = await RedisServer.start();
  client = new Redis(server.url);
  await new Promise((resolve) => client.once('ready', resolve));
});
afterAll(async () => {
  client?.disconnect();
  await server?.stop();
});

/** Calls per command since the last reset, from INFO commandstats. */
async function commandCalls(): Promise<Record<string, number>> {
  const info = await client.info('commandstats');
  const calls: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm))
    calls[match[1] as string] = Number(match[2]);
  return calls;
}

const token = (key: string) => ({ scope: 'coalesce', key });

/** A client of an ACL user that may touch only the keys matching `pattern`: others are refused (NOPERM). */
async function clientAllowedOnly(user: string, pattern: string): Promise<Redis> {
  await client.call('ACL', 'SETUSER', user, 'on', 'nopass', pattern, '+@all');
  const limited = new Redis(server.url, { username: user, password: 'x' });
  await new Promise((resolve) => limited.once('ready', resolve));
  return limited;
}

describe('RedisIdempotencyCache under concurrency', () => {
  it('answers the reads of one tick with one MGET, each read its own value', async () => {
    const cache = new RedisIdempotencyCache(client, { keyPrefix: 'co1:' });
    for (let i = 0; i < 64; i += 2) await cache.set(token(`K${i}`), { result: String(i) }, 60_000);
    // A value that is not ours, among them: read as a miss, without failing the others.
    await client.set(cache.layout.key('cache', token('K1')), 'garbage');
    await client.config('RESETSTAT');

    const read = await Promise.all(Array.from({ length: 64 }, (_, i) => cache.get(token(`K${i}`))));

    expect(read.map((value) => value?.result)).toEqual(
      Array.from({ length: 64 }, (_, i) => (i % 2 === 0 ? String(i) : undefined)),
    );
    const calls = await commandCalls();
    // The first read goes out at once (nothing to wait for); the 63 made meanwhile as one MGET.
    expect({ get: calls.get, mget: calls.mget }).toEqual({ get: 1, mget: 1 });
  });

  it('batches read while another read is on its way share one MGET; a lone batch goes out at once', async () => {
    const cache = new RedisIdempotencyCache(client, { keyPrefix: 'co5:' });
    const batch = (b: number) => Array.from({ length: 32 }, (_, j) => token(`B${b}-${j}`));
    for (let b = 0; b < 8; b++)
      for (const t of batch(b)) await cache.set(t, { result: JSON.stringify(t.key) }, 60_000);
    await client.config('RESETSTAT');

    // Alone: nothing to wait for, its own MGET at once.
    expect((await cache.getMany(batch(0))).map((v) => v?.result)).toEqual(
      batch(0).map((t) => JSON.stringify(t.key)),
    );
    // Eight batches at once: the first goes out alone, the seven read meanwhile wait for the tick's end.
    const read = await Promise.all(Array.from({ length: 8 }, (_, b) => cache.getMany(batch(b))));
    read.forEach((values, b) => {
      expect(values.map((v) => v?.result)).toEqual(batch(b).map((t) => JSON.stringify(t.key)));
    });
    const calls = await commandCalls();
    expect({ get: calls.get, mget: calls.mget }).toEqual({ get: undefined, mget: 3 });
  });

  it('a tick of more reads than one MGET may carry goes out as several, each read answered its own', async () => {
    const cache = new RedisIdempotencyCache(client, { keyPrefix: 'co6:' });
    const tokens = Array.from({ length: 2500 }, (_, i) => token(`M${i}`));
    await Promise.all(
      tokens
        .filter((_, i) => i % 3 === 0)
        .map((t) => cache.set(t, { result: JSON.stringify(t.key) }, 60_000)),
    );
    await client.config('RESETSTAT');
    // One read on its way first, so that all 2 500 wait for the same tick.
    const [first, rest] = await Promise.all([cache.get(token('M0')), cache.getMany(tokens)]);
    expect(first).toEqual({ result: '"M0"' });
    expect(rest.map((v) => v?.result)).toEqual(
      tokens.map((t, i) => (i % 3 === 0 ? JSON.stringify(t.key) : undefined)),
    );
    const calls = await commandCalls();
    // 2 500 keys: MGETs of 1 024, 1 024 and 452.
    expect({ get: calls.get, mget: calls.mget }).toEqual({ get: 1, mget: 3 });
  });

  it('a read alone goes out at once as a GET', async () => {
    const cache = new RedisIdempotencyCache(client, { keyPrefix: 'co2:' });
    await cache.set(token('ALONE'), { result: '"x"' }, 60_000);
    await client.config('RESETSTAT');
    expect(await cache.get(token('ALONE'))).toEqual({ result: '"x"' });
    expect(await cache.get(token('NOT-THERE'))).toBeUndefined();
    const calls = await commandCalls();
    expect({ get: calls.get, mget: calls.mget }).toEqual({ get: 2, mget: undefined });
  });

  it('writes of one tick go out as one pipeline; a write Redis refuses fails alone', async () => {
    // A user allowed only keys whose token starts with OK: a write of another is refused (NOPERM).
    const limited = await clientAllowedOnly('limited', '~co3:*=OK*');
    try {
      const cache = new RedisIdempotencyCache(limited, { keyPrefix: 'co3:' });
      const name = (i: number) => (i === 7 ? 'REFUSED' : `OK${i}`);
      const writes = Array.from({ length: 20 }, (_, i) =>
        cache.set(token(name(i)), { result: String(i) }, 60_000),
      );
      const settled = await Promise.allSettled(writes);
      expect(settled.map((s) => s.status)).toEqual(
        Array.from({ length: 20 }, (_, i) => (i === 7 ? 'rejected' : 'fulfilled')),
      );
      expect(String((settled[7] as PromiseRejectedResult).reason)).toMatch(/NOPERM/);
      for (let i = 0; i < 20; i++) {
        const stored = await client.get(cache.layout.key('cache', token(name(i))));
        expect(stored === null).toBe(i === 7);
      }
      const ttl = await client.pttl(cache.layout.key('cache', token('OK3')));
      expect(ttl).toBeGreaterThan(50_000);
      expect(ttl).toBeLessThanOrEqual(60_000);
    } finally {
      limited.disconnect();
    }
  });

  it('a refused MGET fails every read of its tick, and later reads go on', async () => {
    const reader = await clientAllowedOnly('reader', '~co4:*=OK*');
    try {
      const cache = new RedisIdempotencyCache(reader, { keyPrefix: 'co4:' });
      await cache.set(token('OK'), { result: '1' }, 60_000);
      // The engine treats a failed read as "bypass the cache": the store decides, nothing is lost.
      const first = cache.get(token('OK')); // alone: sent at once, succeeds
      const batch = await Promise.allSettled([cache.get(token('OK')), cache.get(token('REFUSED'))]);
      expect(await first).toEqual({ result: '1' });
      expect(batch.map((s) => s.status)).toEqual(['rejected', 'rejected']);
      expect(await cache.get(token('OK'))).toEqual({ result: '1' });
    } finally {
      reader.disconnect();
    }
  });

  it('a client that throws instead of rejecting fails the reads of its batch, and later reads still go out at once', async () => {
    let throwNext = true;
    // The real client, with one synchronous throw injected (as a client with a broken argument might do).
    const throwing = new Proxy(client, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver);
        if ((property === 'get' || property === 'mget') && throwNext) {
          return () => {
            throwNext = false;
            throw new Error('thrown, not rejected');
          };
        }
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const cache = new RedisIdempotencyCache(throwing, { keyPrefix: 'co5:' });
    await cache.set(token('T'), { result: '1' }, 60_000);
    await expect(cache.get(token('T'))).rejects.toThrow('thrown, not rejected');
    await client.config('RESETSTAT');
    const [first, second] = await Promise.all([cache.get(token('T')), cache.get(token('T'))]);
    expect([first, second]).toEqual([{ result: '1' }, { result: '1' }]);
    const calls = await commandCalls();
    // The first went out at once, the second alone after the tick: the failed read is not counted in
    // flight (if it were, both would have waited and gone out as one MGET).
    expect({ get: calls.get, mget: calls.mget }).toEqual({ get: 2, mget: undefined });
  });
});
