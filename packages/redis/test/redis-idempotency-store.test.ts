/**
 * What the contract suite does not pin down: round trips per path, the server's clock, key TTLs, commands
 * re-sent after a reconnect, option validation. On a redis-server of our own, so command counts are exact.
 */
import {
  IDEMPOTENCY_CLOCK,
  type IdempotencyContext,
  type IdempotencyRecord,
  Idempotent,
  InvalidOptionError,
  SystemClock,
} from '@idempotent-mq/core';
import { injectable } from 'inversify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { harness, type Message, msg } from '../../../test/support/engine-harness.js';
import { RedisIdempotencyCache, RedisIdempotencyStore } from '../src/index.js';
import { RedisServer } from './support/redis-server.js';

let server: RedisServer;
let client: Redis;

beforeAll(async () => {
  server = await RedisServer.start();
  client = new Redis({ host: '127.0.0.1', port: server.port });
  await new Promise((resolve) => client.once('ready', resolve));
});
afterAll(async () => {
  client?.disconnect();
  await server?.stop();
});

/**
 * How many times each command a client can send ran on our server since the last call (commandstats
 * also counts the commands a script runs; those are left out).
 */
const CLIENT_COMMANDS = new Set(['evalsha', 'eval', 'get', 'mget', 'set']);
async function commandCounts(): Promise<Record<string, number>> {
  const info = await client.info('commandstats');
  await client.config('RESETSTAT');
  const counts: Record<string, number> = {};
  for (const [, name, calls] of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) {
    if (CLIENT_COMMANDS.has(name as string)) counts[name as string] = Number(calls);
  }
  return counts;
}

/**
 * The commands clients sent (one round trip each; a script's own commands are not counted), as the
 * server's MONITOR saw them while `work` ran, with their first arguments.
 */
async function sent(work: () => Promise<unknown>): Promise<string[]> {
  const monitor = await client.monitor();
  const seen: string[] = [];
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== 'lua' && args[0]?.toLowerCase() !== 'ping')
      seen.push(args.slice(0, 1).join(' ').toLowerCase());
  });
  try {
    await work();
    // MONITOR's feed lags the replies a little: a PING through it marks the end.
    await client.ping();
    await new Promise((resolve) => setTimeout(resolve, 50));
  } finally {
    monitor.disconnect();
  }
  return seen;
}

const serverTime = async () => {
  const [seconds, micros] = await client.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
};

describe('RedisIdempotencyStore', () => {
  it('one round trip for a duplicate, two for a first-time message, one of them a plain SET (cache on another Redis)', async () => {
    const shared = new Redis({ host: '127.0.0.1', port: 6379 });
    try {
      @injectable()
      class Counted {
        runs = 0;
        @Idempotent({ key: (m: Message) => m.keys, ttlMs: 600_000, leaseMs: 120_000, keepAliveMs: 60_000 })
        async onMessage(_m: Message, _ctx: IdempotencyContext) {
          this.runs++;
        }
      }
      const store = new RedisIdempotencyStore(client);
      // A cache that always misses, so the duplicate reaches the store.
      const cache = new RedisIdempotencyCache(shared, { keyPrefix: `imq-test:miss:${Date.now()}:` });
      cache.set = async () => {};
      const h = harness({ store: () => store, cache: () => cache });
      h.container.rebind(IDEMPOTENCY_CLOCK).toConstantValue(new SystemClock());
      const consumer = h.get(Counted);
      await consumer.onMessage(msg('WARM-UP')); // loads the scripts on this server (NOSCRIPT → EVAL once)

      // First time: the claim is a plain SET … NX GET, the completion one script.
      expect(await sent(() => consumer.onMessage(msg('ROUND-1')))).toEqual(['set', 'evalsha']);
      // A duplicate: the SET finds the completed record and that answers it.
      expect(await sent(() => consumer.onMessage(msg('ROUND-1')))).toEqual(['set']);
      expect(consumer.runs).toBe(2);
      expect(h.outcomes.at(-1)).toMatchObject({ kind: 'duplicate', tier: 'store' });
    } finally {
      shared.disconnect();
    }
  });

  it("a duplicate is answered from the SET's reply only once the store has read that node's clock", async () => {
    const token = { scope: 'v1:fresh-store', key: 'F-1' };
    const writer = new RedisIdempotencyStore(client);
    await writer.check(); // SCRIPT LOAD, so that no NOSCRIPT → EVAL is counted below
    await writer.claim({ token, owner: 'o', leaseMs: 10_000 });
    await writer.complete({ token, owner: 'o', ttlMs: 600_000 });
    // A store (a process) that has not heard this node's time yet cannot tell the retention from the value.
    const fresh = new RedisIdempotencyStore(client);
    expect(await sent(() => fresh.claim({ token, owner: 'p', leaseMs: 10_000 }))).toEqual(['set', 'evalsha']);
    // The script's answer carried the time: the next duplicate is one SET.
    expect(await sent(() => fresh.claim({ token, owner: 'q', leaseMs: 10_000 }))).toEqual(['set']);
    // A claim in flight is always the script's (its lease is the key's TTL, which the SET does not return).
    const live = { scope: 'v1:fresh-store', key: 'F-2' };
    await writer.claim({ token: live, owner: 'o', leaseMs: 10_000 });
    expect(await sent(() => fresh.claim({ token: live, owner: 'p', leaseMs: 10_000 }))).toEqual([
      'set',
      'evalsha',
    ]);
  });

  it('leases and retention are on the Redis clock, and the keys carry matching TTLs', async () => {
    const store = new RedisIdempotencyStore(client, { abandonedClaimTtlMs: 30_000, expiryGraceMs: 5_000 });
    const token = { scope: 'v1:clock', key: 'T-1' };
    const before = await serverTime();
    await store.claim({ token, owner: 'o', leaseMs: 10_000 });
    const after = await serverTime();
    const record = (await store.get(token)) as IdempotencyRecord;
    // A client-written claim carries no creation time: the scripts derive it from the key's PTTL and
    // TIME, two readings a millisecond apart at most (record.lua), so it may show 1 ms either side.
    expect(record.createdAt).toBeGreaterThanOrEqual(before - 1);
    expect(record.createdAt).toBeLessThanOrEqual(after + 1);
    expect(record.leaseExpiresAt).toBe(record.createdAt + 10_000);
    const claimTtl = await client.pttl(store.layout.key('record', token));
    expect(claimTtl).toBeGreaterThan(39_000);
    expect(claimTtl).toBeLessThanOrEqual(40_000);

    await store.complete({ token, owner: 'o', ttlMs: 20_000, result: '{"ok":true}' });
    const done = await store.get(token);
    expect(done).toMatchObject({ status: 'completed', result: '{"ok":true}', leaseExpiresAt: undefined });
    expect((done?.expiresAt ?? 0) - (done?.completedAt ?? 0)).toBe(20_000);
    const doneTtl = await client.pttl(store.layout.key('record', token));
    expect(doneTtl).toBeGreaterThan(24_000);
    expect(doneTtl).toBeLessThanOrEqual(25_000);
  });

  it('a claim or completion the client re-sends after a reconnect is recognised as the same one', async () => {
    const store = new RedisIdempotencyStore(client);
    const token = { scope: 'v1:resend', key: 'R-1' };
    const first = await store.claim({ token, owner: 'owner-1', leaseMs: 10_000 });
    await expect(store.claim({ token, owner: 'owner-1', leaseMs: 10_000 })).resolves.toMatchObject({
      status: 'claimed',
      record: { owner: 'owner-1', fence: first.record.fence },
    });
    await expect(store.claim({ token, owner: 'owner-2', leaseMs: 10_000 })).resolves.toMatchObject({
      status: 'exists',
    });
    await expect(store.complete({ token, owner: 'owner-1', ttlMs: 60_000 })).resolves.toBe(true);
    await expect(store.complete({ token, owner: 'owner-1', ttlMs: 60_000 })).resolves.toBe(true);
    await expect(store.complete({ token, owner: 'owner-2', ttlMs: 60_000 })).resolves.toBe(false);
    await expect(store.claim({ token, owner: 'owner-1', leaseMs: 10_000 })).resolves.toMatchObject({
      status: 'exists',
      record: { status: 'completed' },
    });
  });

  it('a cache batch of one scope is one MGET, whatever its size', async () => {
    const cache = new RedisIdempotencyCache(client);
    const tokens = Array.from({ length: 200 }, (_, i) => ({ scope: 'v1:batch', key: `B-${i}` }));
    await cache.set(tokens[7] as (typeof tokens)[number], { result: '7' }, 60_000);
    await commandCounts();
    const found = await cache.getMany(tokens);
    expect(await commandCounts()).toEqual({ mget: 1 });
    expect(found.filter(Boolean)).toEqual([{ result: '7' }]);
  });

  it('invalid options fail at construction, naming the option', () => {
    const cases: [string, () => unknown][] = [
      ['keyPrefix', () => new RedisIdempotencyStore(client, { keyPrefix: 'a{b}' })],
      ['keyPrefix', () => new RedisIdempotencyCache(client, { keyPrefix: '}' })],
      ['maxKeyBytes', () => new RedisIdempotencyCache(client, { maxKeyBytes: 8 })],
      ['timeoutMs', () => new RedisIdempotencyCache(client, { timeoutMs: 0 })],
      ['readyTimeoutMs', () => new RedisIdempotencyStore(client, { readyTimeoutMs: -1 })],
      ['expiryGraceMs', () => new RedisIdempotencyStore(client, { expiryGraceMs: 1.5 })],
    ];
    for (const [option, make] of cases) {
      expect(make).toThrow(InvalidOptionError);
      expect(make).toThrow(option);
    }
  });
});
