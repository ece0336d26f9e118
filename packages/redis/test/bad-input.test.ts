/**
 * Hostile keys and foreign data on a shared Redis: key names stay bounded and inside their scope's slot,
 * scopes never see each other, anything under our keys that we did not write never reads as "processed",
 * and purging touches only our own records.
 */
import {
  IDEMPOTENCY_CLOCK,
  type IdempotencyContext,
  type IdempotencyStoreError,
  Idempotent,
  MemoryIdempotencyStore,
  SystemClock,
  type TokenRef,
} from '@idempotent-mq/core';
import { injectable } from 'inversify';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { harness, type Message, msg, settle } from '../../../test/support/engine-harness.js';
import {
  CorruptRecordError,
  type InvalidCacheValue,
  RedisIdempotencyCache,
  RedisIdempotencyStore,
} from '../src/index.js';
import { connect, deletePrefix, pause, runPrefix } from './support/shared-redis.js';

const prefix = runPrefix('bad-input');
const foreignPrefix = runPrefix('foreign');
let client: Redis;
const invalid: InvalidCacheValue[] = [];
let cache: RedisIdempotencyCache;
let store: RedisIdempotencyStore;

beforeAll(async () => {
  client = await connect();
  cache = new RedisIdempotencyCache(client, { keyPrefix: prefix, onInvalidValue: (e) => invalid.push(e) });
  store = new RedisIdempotencyStore(client, { keyPrefix: prefix });
});
afterAll(async () => {
  await deletePrefix(client, prefix);
  await deletePrefix(client, foreignPrefix);
  await client.quit();
});

const MB = 'x'.repeat(1024 * 1024);
const HOSTILE = [
  '{',
  '}',
  '{a}',
  '}{',
  '{}',
  'a b',
  'line\nbreak',
  '*',
  '?',
  '[a-z]',
  '\\',
  `${MB}-1`,
  `${MB}-2`,
];
const HOSTILE_SCOPES = ['v1:{tag}', 'v1:}{', 'v1:*', 'v1: spaced\nscope', 'v1:{', `v1:${'s'.repeat(10_000)}`];
const maxKeyName = (p: string) => Buffer.byteLength(p) + 2 + 16 + 3 + 1 + 512;

/** The hash tag Redis Cluster would slot a key by: the first `{…}` with something inside. */
function hashTag(name: string): string {
  const open = name.indexOf('{');
  const close = name.indexOf('}', open + 1);
  return open >= 0 && close > open + 1 ? name.slice(open + 1, close) : name;
}

describe('hostile keys and scopes', () => {
  it('round-trip exactly, with key names bounded and slotted by their scope alone', async () => {
    for (const scope of HOSTILE_SCOPES) {
      const tokens = HOSTILE.map((key): TokenRef => ({ scope, key }));
      for (const [i, token] of tokens.entries()) {
        await cache.set(token, { result: String(i) }, 60_000);
        await store.claim({ token, owner: `o${i}`, leaseMs: 60_000 });
      }
      expect((await cache.getMany(tokens)).map((v) => v?.result)).toEqual(HOSTILE.map((_, i) => String(i)));
      expect((await store.getMany(tokens)).map((r) => r?.owner)).toEqual(HOSTILE.map((_, i) => `o${i}`));
      for (const token of tokens) {
        for (const name of [cache.layout.key('cache', token), store.layout.key('record', token)]) {
          expect(Buffer.byteLength(name)).toBeLessThanOrEqual(maxKeyName(prefix));
          expect(hashTag(name)).toBe(cache.layout.scopeTag(scope));
        }
      }
    }
    // What Redis actually holds under our prefix is bounded too.
    let cursor = '0';
    do {
      const [next, names] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      for (const name of names) expect(Buffer.byteLength(name)).toBeLessThanOrEqual(maxKeyName(prefix));
    } while (cursor !== '0');
  });

  it('scopes that would collide if joined naively stay apart; one scope cannot read, delete or release another', async () => {
    const pairs: [TokenRef, TokenRef][] = [
      [
        { scope: 'v1:a:', key: 'b' },
        { scope: 'v1:a', key: ':b' },
      ],
      [
        { scope: 'v1:{x}', key: 'y' },
        { scope: 'v1:', key: '{x}y' },
      ],
      [
        { scope: 'v1:s', key: 'k' },
        { scope: 'v1:S', key: 'k' },
      ],
    ];
    for (const [mine, theirs] of pairs) {
      await cache.set(mine, { result: '"mine"' }, 60_000);
      await store.claim({ token: mine, owner: 'me', leaseMs: 60_000 });
      expect(await cache.get(theirs)).toBeUndefined();
      expect(await store.get(theirs)).toBeUndefined();
      await cache.delete(theirs);
      await expect(store.release(theirs, 'me')).resolves.toBe(false);
      await expect(store.complete({ token: theirs, owner: 'me', ttlMs: 60_000 })).resolves.toBe(false);
      expect(await cache.get(mine)).toEqual({ result: '"mine"' });
      expect(await store.get(mine)).toMatchObject({ status: 'inProgress', owner: 'me' });
    }
  });

  it('through the engine: hostile, 1 MB and (raised-limit) 10 000-character keys are processed once, deduplicated by the Redis cache', async () => {
    const clock = new SystemClock();
    @injectable()
    class Hostile {
      readonly effects: string[] = [];
      @Idempotent({ key: (m: Message) => m.keys, mode: 'lease', maxKeyLength: 10_000, ttlMs: 300_000 })
      async onMessage(m: Message, _ctx: IdempotencyContext) {
        this.effects.push(m.keys.join('|'));
      }
    }
    const engineCache = new RedisIdempotencyCache(client, { keyPrefix: prefix });
    const h = harness({ store: () => new MemoryIdempotencyStore({ clock }), cache: () => engineCache });
    h.container.rebind(IDEMPOTENCY_CLOCK).toConstantValue(clock);
    const consumer = h.get(Hostile);
    const keys = [...HOSTILE, '支'.repeat(9_999), `${'支'.repeat(9_999)}!`];
    for (const key of keys) await consumer.onMessage(msg(key));
    for (const key of keys) await consumer.onMessage(msg(key));
    expect(consumer.effects).toHaveLength(keys.length);
    const redeliveries = h.outcomes.slice(keys.length);
    expect(redeliveries.map((o) => [o.kind, o.tier])).toEqual(keys.map(() => ['duplicate', 'cache']));
    // ~30 KB keys reach the adapter whole (the engine's limit was raised) and are hashed there.
    const long = h.outcomes.map((o) => o.token as TokenRef).filter((t) => Buffer.byteLength(t.key) > 20_000);
    expect(long.length).toBeGreaterThanOrEqual(4);
    for (const t of long) {
      expect(Buffer.byteLength(engineCache.layout.key('cache', t))).toBeLessThanOrEqual(maxKeyName(prefix));
    }
  });
});

describe('foreign or corrupt values under our keys', () => {
  const token = (key: string): TokenRef => ({ scope: 'v1:corrupt', key });

  it('the cache reads anything it did not write as a miss, and reports it', async () => {
    const values = [
      'OK',
      '1',
      'true',
      '{}',
      'imq1:',
      'imq1:{broken',
      'imq1:[]',
      'imq1:{"f":1}',
      'imq1:{"r":"{"}',
    ];
    invalid.length = 0;
    for (const [i, value] of values.entries())
      await client.set(cache.layout.key('cache', token(`C${i}`)), value);
    const found = await cache.getMany(values.map((_, i) => token(`C${i}`)));
    expect(found).toEqual(values.map(() => undefined));
    expect(invalid.map((e) => e.token.key)).toEqual(values.map((_, i) => `C${i}`));
    // A different type under the key is an error (a bypass), never a hit.
    await client.hset(cache.layout.key('cache', token('HASH')), 'f', 'x');
    await expect(cache.get(token('HASH'))).rejects.toThrow(/WRONGTYPE/);
  });

  it('through the engine: a corrupt cache value does not make a first delivery a duplicate', async () => {
    const clock = new SystemClock();
    @injectable()
    class Once {
      runs = 0;
      @Idempotent({ key: (m: Message) => m.keys, mode: 'lease', ttlMs: 300_000, scope: 'corrupt-engine' })
      async onMessage(_m: Message, _ctx: IdempotencyContext) {
        this.runs++;
      }
    }
    const h = harness({ store: () => new MemoryIdempotencyStore({ clock }), cache: () => cache });
    h.container.rebind(IDEMPOTENCY_CLOCK).toConstantValue(clock);
    await client.set(cache.layout.key('cache', { scope: 'v1:corrupt-engine', key: 'PAY-1' }), 'processed');
    const consumer = h.get(Once);
    await consumer.onMessage(msg('PAY-1'));
    expect(consumer.runs).toBe(1);
    expect(h.outcomes[0]).toMatchObject({ kind: 'processed' });
  });

  it('the store refuses a record it did not write: claim fails with CorruptRecordError, never "exists"', async () => {
    const name = (key: string) => store.layout.key('record', token(key));
    await client.set(name('STRING'), 'completed');
    await client.hset(name('V2'), {
      v: '2',
      st: 'c',
      ow: 'x',
      fe: '1',
      ca: '1',
      co: '1',
      ex: '9999999999999',
    });
    await client.hset(name('NO-EX'), { v: '1', st: 'c', ow: 'x', fe: '1', ca: '1', co: '1' });
    await client.hset(name('STATUS'), { v: '1', st: 'done', ow: 'x', fe: '1', ca: '1' });
    await client.rpush(name('LIST'), 'c');
    for (const key of ['STRING', 'V2', 'NO-EX', 'STATUS', 'LIST']) {
      const r = await settle(store.claim({ token: token(key), owner: 'o', leaseMs: 1000 }));
      expect(r.ok).toBe(false);
      expect((r as { error: unknown }).error).toBeInstanceOf(CorruptRecordError);
      await expect(store.get(token(key))).rejects.toBeInstanceOf(CorruptRecordError);
      await expect(store.complete({ token: token(key), owner: 'x', ttlMs: 1000 })).resolves.toBe(false);
      await expect(store.release(token(key), 'x')).resolves.toBe(false);
    }
    expect(await client.get(name('STRING'))).toBe('completed'); // left as found
    const wrongType = await settle(store.claim({ token: token('LIST'), owner: 'o', leaseMs: 1000 }));
    expect(String((wrongType as { error: unknown }).error)).toMatch(
      /holds a list, not an idempotency record/,
    );
  });

  it('through the engine: a corrupt record fails the message (redelivered), the handler does not run', async () => {
    const clock = new SystemClock();
    @injectable()
    class Guarded {
      runs = 0;
      @Idempotent({ key: (m: Message) => m.keys, mode: 'lease', ttlMs: 300_000, scope: 'corrupt-store' })
      async onMessage(_m: Message, _ctx: IdempotencyContext) {
        this.runs++;
      }
    }
    const h = harness({
      store: () => new RedisIdempotencyStore(client, { keyPrefix: prefix }),
      cache: () => new RedisIdempotencyCache(client, { keyPrefix: prefix }),
    });
    h.container.rebind(IDEMPOTENCY_CLOCK).toConstantValue(clock);
    await client.set(store.layout.key('record', { scope: 'v1:corrupt-store', key: 'PAY-2' }), 'done');
    const consumer = h.get(Guarded);
    const r = await settle(consumer.onMessage(msg('PAY-2')));
    expect((r as { error: IdempotencyStoreError }).error).toBeInstanceOf(CorruptRecordError);
    expect(consumer.runs).toBe(0);
    expect(h.outcomes[0]).toMatchObject({ kind: 'failed' });
  });
});

describe('purgeExpired on a shared Redis', () => {
  it('deletes only our own expired records; other prefixes, look-alikes and live records survive', async () => {
    const own = new RedisIdempotencyStore(client, { keyPrefix: `${prefix}purge:` });
    // Another tenant whose prefix starts like ours, and one that is a glob of ours.
    const lookalike = new RedisIdempotencyStore(client, { keyPrefix: `${prefix}purge:x` });
    const globby = new RedisIdempotencyStore(client, { keyPrefix: `${foreignPrefix}*[?]` });
    const scope = 'v1:purge';
    for (const s of [own, lookalike, globby]) {
      for (const key of ['E1', 'E2', 'E3']) {
        await s.claim({ token: { scope, key }, owner: 'o', leaseMs: 1000 });
        await s.complete({ token: { scope, key }, owner: 'o', ttlMs: 1 });
      }
    }
    await own.claim({ token: { scope, key: 'LIVE' }, owner: 'o', leaseMs: 1 });
    // Foreign data: plain keys under another prefix, and a hash that matches our pattern but is not ours.
    await client.set(`${foreignPrefix}plain`, 'v');
    const fakeRecord = own.layout.key('record', { scope, key: 'FAKE' });
    await client.hset(fakeRecord, { st: 'c', ex: '1' });
    await pause(20);

    await expect(own.purgeExpired({ batchSize: 2 })).resolves.toBe(3);
    expect((await own.getMany(['E1', 'E2', 'E3'].map((key) => ({ scope, key })))).every((r) => !r)).toBe(
      true,
    );
    expect(await own.get({ scope, key: 'LIVE' })).toMatchObject({ status: 'inProgress' });
    expect(await client.exists(fakeRecord)).toBe(1);
    expect(await client.get(`${foreignPrefix}plain`)).toBe('v');
    for (const other of [lookalike, globby]) {
      for (const key of ['E1', 'E2', 'E3']) {
        expect(await client.exists(other.layout.key('record', { scope, key }))).toBe(1);
      }
    }
  });
});
