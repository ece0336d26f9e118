/**
 * Record format 2 (a string whose first claim is a plain SET … NX) beside format 1 (the hash that
 * stores before it wrote): format-1 records written by that version's own scripts are read, completed,
 * renewed, released and taken over by the current store, and format 2 keeps the fencing promises with
 * owners that JSON and the value's separators would trip over.
 */
import type { TokenRef } from '@idempotent-mq/core';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DUPLICATE_MARGIN_MS, RedisIdempotencyStore } from '../src/redis-idempotency-store.js';
import { claimV1, completeV1 } from './support/format-1.js';
import { connect, deletePrefix, pause, runPrefix } from './support/shared-redis.js';

const prefix = runPrefix('record-format');
let client: Redis;
let store: RedisIdempotencyStore;
let n = 0;
const token = (key = 'PAY-1'): TokenRef => ({ scope: `v1:format-${n++}`, key });
const keyOf = (t: TokenRef) => store.layout.key('record', t);

beforeAll(async () => {
  client = await connect();
  store = new RedisIdempotencyStore(client, { keyPrefix: prefix });
});
afterAll(async () => {
  await deletePrefix(client, prefix);
  await client.quit();
});

describe('format-1 records (hashes written before format 2) stay readable and are handled', () => {
  it('a completed one answers a claim as a duplicate, with its result, and reads alike everywhere', async () => {
    const t = token();
    await claimV1(client, keyOf(t), t, 'old-owner', 60_000, 'fp-1');
    expect(await completeV1(client, keyOf(t), 'old-owner', 600_000, '{"n":1}')).toBe(1);
    expect(await client.type(keyOf(t))).toBe('hash');

    const again = await store.claim({ token: t, owner: 'new-owner', leaseMs: 60_000, fingerprint: 'fp-1' });
    expect(again).toMatchObject({
      status: 'exists',
      record: { status: 'completed', owner: 'old-owner', fence: 1, fingerprint: 'fp-1', result: '{"n":1}' },
    });
    expect(await store.get(t)).toMatchObject({ status: 'completed', result: '{"n":1}' });
    expect((await store.inspect(t)).record).toMatchObject({ status: 'completed', owner: 'old-owner' });
    await expect(store.release(t, 'old-owner')).resolves.toBe(false);
    await expect(store.complete({ token: t, owner: 'new-owner', ttlMs: 1000 })).resolves.toBe(false);
    // The owner's completion re-sent after a reconnect is still recognised.
    await expect(store.complete({ token: t, owner: 'old-owner', ttlMs: 1000 })).resolves.toBe(true);
    expect(await client.type(keyOf(t))).toBe('hash');
  });

  it('a live one is not taken; its owner renews, then completes it (still a hash)', async () => {
    const t = token();
    await claimV1(client, keyOf(t), t, 'old-owner', 60_000);
    expect(await store.claim({ token: t, owner: 'other', leaseMs: 60_000 })).toMatchObject({
      status: 'exists',
      record: { status: 'inProgress', owner: 'old-owner', fence: 1 },
    });
    const before = (await store.get(t))?.leaseExpiresAt as number;
    await pause(5);
    await expect(store.renew(t, 'other', 60_000)).resolves.toBe(false);
    await expect(store.renew(t, 'old-owner', 120_000)).resolves.toBe(true);
    expect((await store.get(t))?.leaseExpiresAt).toBeGreaterThan(before + 59_000);
    await expect(store.complete({ token: t, owner: 'other', ttlMs: 60_000 })).resolves.toBe(false);
    await expect(
      store.complete({ token: t, owner: 'old-owner', ttlMs: 60_000, result: '"r"' }),
    ).resolves.toBe(true);
    expect(await store.get(t)).toMatchObject({ status: 'completed', owner: 'old-owner', result: '"r"' });
    expect(await client.type(keyOf(t))).toBe('hash');
  });

  it('its owner releases it, and the token is claimed afresh in format 2', async () => {
    const t = token();
    await claimV1(client, keyOf(t), t, 'old-owner', 60_000);
    await expect(store.release(t, 'other')).resolves.toBe(false);
    await expect(store.release(t, 'old-owner')).resolves.toBe(true);
    expect(await store.claim({ token: t, owner: 'new-owner', leaseMs: 60_000 })).toMatchObject({
      status: 'claimed',
      takeover: false,
      record: { fence: 1 },
    });
    expect(await client.type(keyOf(t))).toBe('string');
  });

  it('an expired one is taken over with the next fence (in format 2); the old owner is fenced out', async () => {
    const t = token();
    await claimV1(client, keyOf(t), t, 'old-owner', 100, 'fp-1');
    await pause(150);
    const taken = await store.claim({ token: t, owner: 'new-owner', leaseMs: 60_000, fingerprint: 'fp-1' });
    expect(taken).toMatchObject({
      status: 'claimed',
      takeover: true,
      record: { fence: 2, owner: 'new-owner' },
    });
    expect(await client.type(keyOf(t))).toBe('string');
    await expect(store.renew(t, 'old-owner', 60_000)).resolves.toBe(false);
    await expect(store.complete({ token: t, owner: 'old-owner', ttlMs: 60_000 })).resolves.toBe(false);
    await expect(store.release(t, 'old-owner')).resolves.toBe(false);
    // A consumer still on the old version cannot complete it either (a rolling upgrade): its script
    // finds no format-1 claim of its owner and writes nothing; its claim reports a record it cannot read.
    const value = await client.get(keyOf(t));
    expect(await completeV1(client, keyOf(t), 'old-owner', 60_000)).toBe(0);
    expect(await claimV1(client, keyOf(t), t, 'old-owner-2', 60_000)).toEqual([
      'corrupt',
      'holds a string, not an idempotency record',
    ]);
    expect(await client.get(keyOf(t))).toBe(value);
    await expect(store.complete({ token: t, owner: 'new-owner', ttlMs: 60_000 })).resolves.toBe(true);
    expect(await store.get(t)).toMatchObject({
      status: 'completed',
      owner: 'new-owner',
      fence: 2,
      fingerprint: 'fp-1',
    });
  });

  it('an expired completed one is reclaimed (fence 1), purged, and counted by stats', async () => {
    const scope = `v1:format-stats-${n++}`;
    const done = { scope, key: 'DONE' };
    const expired = { scope, key: 'EXPIRED' };
    const live = { scope, key: 'LIVE' };
    await claimV1(client, keyOf(done), done, 'o', 60_000);
    await completeV1(client, keyOf(done), 'o', 600_000);
    await claimV1(client, keyOf(expired), expired, 'o', 60_000);
    await completeV1(client, keyOf(expired), 'o', 1);
    await claimV1(client, keyOf(live), live, 'o', 60_000);
    await pause(10);
    expect(await store.stats({ scope })).toMatchObject({
      inProgress: 1,
      completed: 2,
      expired: 1,
      unreadable: 0,
    });
    expect(await store.get(expired)).toBeUndefined();
    const copy = { scope, key: 'EXPIRED-2' };
    await claimV1(client, keyOf(copy), copy, 'o', 60_000);
    await completeV1(client, keyOf(copy), 'o', 1);
    await pause(10);
    expect(await store.claim({ token: copy, owner: 'n', leaseMs: 60_000 })).toMatchObject({
      status: 'claimed',
      takeover: false,
      record: { fence: 1 },
    });
    expect(await store.purgeExpired()).toBeGreaterThanOrEqual(1);
    expect(await client.exists(keyOf(expired))).toBe(0);
    expect(await store.forget(done)).toMatchObject({ outcome: 'forgotten', record: { status: 'completed' } });
  });
});

describe('format 2', () => {
  it('a first claim is a string holding its lease in the TTL; reads derive the times on the Redis clock', async () => {
    const t = token();
    const before = await serverTime();
    await store.claim({ token: t, owner: 'o', leaseMs: 10_000, fingerprint: 'fp' });
    const after = await serverTime();
    expect(await client.get(keyOf(t))).toMatch(
      /^imq2\|i\|1\|10000\|3600000\|0\|\["o","fp","v1:format-\d+","PAY-1"\]$/,
    );
    const stored = await store.get(t);
    expect(stored).toMatchObject({ status: 'inProgress', owner: 'o', fence: 1, fingerprint: 'fp' });
    expect(stored?.createdAt).toBeGreaterThanOrEqual(before - 1);
    expect(stored?.createdAt).toBeLessThanOrEqual(after + 1);
    expect((stored?.leaseExpiresAt as number) - (stored?.createdAt as number)).toBe(10_000);
  });

  it('a renewal moves the lease and keeps the creation time', async () => {
    const t = token();
    await store.claim({ token: t, owner: 'o', leaseMs: 10_000 });
    const first = await store.get(t);
    await pause(30);
    await expect(store.renew(t, 'o', 10_000)).resolves.toBe(true);
    const renewed = await store.get(t);
    expect(renewed?.createdAt).toBe(first?.createdAt);
    expect(renewed?.leaseExpiresAt).toBeGreaterThanOrEqual((first?.leaseExpiresAt as number) + 25);
    expect(await client.pttl(keyOf(t))).toBeGreaterThan(3_600_000 + 9_000);
  });

  it('owners are compared whole: quotes, separators, backslashes and prefixes of another owner never match', async () => {
    const owners = ['a"b|c\\d', '支付|😀', 'plain', 'pla', '', '],['];
    for (const owner of owners) {
      const t = token();
      await store.claim({ token: t, owner, leaseMs: 60_000 });
      for (const other of owners.filter((o) => o !== owner)) {
        await expect(store.renew(t, other, 60_000)).resolves.toBe(false);
        await expect(store.release(t, other)).resolves.toBe(false);
        await expect(store.complete({ token: t, owner: other, ttlMs: 60_000 })).resolves.toBe(false);
      }
      await expect(store.renew(t, owner, 60_000)).resolves.toBe(true);
      await expect(store.complete({ token: t, owner, ttlMs: 60_000, result: '{"o":"|"}' })).resolves.toBe(
        true,
      );
      expect(await store.get(t)).toMatchObject({ status: 'completed', owner, result: '{"o":"|"}' });
    }
  });

  it('results and keys survive exactly, lone surrogates and JSON text included', async () => {
    const results = ['"\\ud800"', '\u2028\u0000\n', '{"a":[1,2]}', 'not json at all |]', ''];
    for (const result of results) {
      const t = token('key-\ud800-|]');
      await store.claim({ token: t, owner: 'o', leaseMs: 60_000 });
      await store.complete({ token: t, owner: 'o', ttlMs: 60_000, result });
      expect((await store.get(t))?.result).toBe(result);
      // Answered from the value SET … NX GET returned, and through the script alike.
      expect(await store.claim({ token: t, owner: 'x', leaseMs: 60_000 })).toMatchObject({
        status: 'exists',
        record: { result, status: 'completed', owner: 'o' },
      });
    }
  });

  it('fences keep rising over repeated takeovers', async () => {
    const t = token();
    await store.claim({ token: t, owner: 'o1', leaseMs: 50 });
    for (const [owner, fence] of [
      ['o2', 2],
      ['o3', 3],
    ] as const) {
      await pause(80);
      expect(await store.claim({ token: t, owner, leaseMs: 50 })).toMatchObject({
        status: 'claimed',
        takeover: true,
        record: { fence },
      });
    }
    await expect(store.complete({ token: t, owner: 'o2', ttlMs: 60_000 })).resolves.toBe(false);
    await expect(store.complete({ token: t, owner: 'o3', ttlMs: 60_000 })).resolves.toBe(true);
  });

  it(`a completed record within ${DUPLICATE_MARGIN_MS} ms of its retention's end is decided on the server's clock`, async () => {
    const t = token();
    await store.claim({ token: t, owner: 'o', leaseMs: 60_000 });
    await store.complete({ token: t, owner: 'o', ttlMs: 400 });
    // Inside the margin: the script answers (still a duplicate) …
    expect(await store.claim({ token: t, owner: 'x', leaseMs: 60_000 })).toMatchObject({ status: 'exists' });
    await pause(450);
    // … and, past the retention, reclaims; an answer from the value alone would have said "duplicate".
    expect(await store.claim({ token: t, owner: 'y', leaseMs: 60_000 })).toMatchObject({
      status: 'claimed',
      takeover: false,
      record: { fence: 1, owner: 'y' },
    });
  });

  it('a foreign string that looks like ours but is not well formed is refused, never a duplicate', async () => {
    for (const value of [
      'imq2|c|1|2|3|x|["o",null,"s","k"]',
      'imq2|c|1|2|3|9999999999999|not json',
      'imq2|i|1|2|3|0|[',
    ]) {
      const t = token();
      await client.set(keyOf(t), value, 'PX', 60_000);
      await expect(store.claim({ token: t, owner: 'o', leaseMs: 1000 })).rejects.toThrow(
        /not an idempotency record/,
      );
      expect(await client.get(keyOf(t))).toBe(value);
    }
  });
});

async function serverTime(): Promise<number> {
  const [seconds, micros] = await client.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}
