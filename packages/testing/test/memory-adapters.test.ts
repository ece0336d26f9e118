import { MemoryIdempotencyCache, MemoryIdempotencyStore } from '@idempotent-mq/core';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../src/index.js';
import { describeCacheContract, describeStoreContract } from '../src/vitest/index.js';

describeStoreContract('MemoryIdempotencyStore', async () => {
  const clock = new FakeClock();
  return { store: new MemoryIdempotencyStore({ clock }), advance: (ms) => clock.advance(ms) };
});

describeCacheContract('MemoryIdempotencyCache', async () => {
  const clock = new FakeClock();
  return { cache: new MemoryIdempotencyCache({ clock }), advance: (ms) => clock.advance(ms) };
});

/**
 * Times 50 000 calls of `op` on an empty adapter of 50 000 entries (filling it), then, after another
 * 50 000, 50 000 more on the full one (each evicting).
 */
async function fillingThenFull(op: (i: number) => Promise<void>): Promise<{ filling: number; full: number }> {
  const lap = async (from: number) => {
    const started = performance.now();
    for (let i = from; i < from + 50_000; i++) await op(i);
    return performance.now() - started;
  };
  const filling = await lap(0);
  await lap(50_000);
  return { filling, full: await lap(100_000) };
}

describe('MemoryIdempotencyCache bounds', () => {
  it('keeps at most maxEntries, evicting the least recently used first', async () => {
    const cache = new MemoryIdempotencyCache({ maxEntries: 3, clock: new FakeClock() });
    const t = (key: string) => ({ scope: 's', key });
    for (const key of ['a', 'b', 'c']) await cache.set(t(key), {}, 60_000);
    await cache.get(t('a')); // a is now the most recent
    await cache.set(t('d'), {}, 60_000);
    expect(cache.size).toBe(3);
    expect(await cache.getMany(['a', 'b', 'c', 'd'].map(t))).toEqual([{}, undefined, {}, {}]);
  });

  it('keeps LRU order across many reads and evictions, as a plain list model does', async () => {
    const cache = new MemoryIdempotencyCache({ maxEntries: 100, clock: new FakeClock() });
    const model: string[] = []; // least recent first
    const touch = (key: string) => {
      const at = model.indexOf(key);
      if (at >= 0) model.splice(at, 1);
      model.push(key);
    };
    const t = (key: string) => ({ scope: 's', key });
    for (let i = 0; i < 1_000; i++) {
      await cache.set(t(`k${i}`), {}, 60_000);
      touch(`k${i}`);
      if (model.length > 100) model.shift();
      const again = `k${i - 50 + (i % 7)}`;
      if ((await cache.get(t(again))) !== undefined) touch(again);
      else expect(model).not.toContain(again);
    }
    expect(cache.size).toBe(100);
    const keys = Array.from({ length: 1_000 }, (_, i) => `k${i}`);
    const alive = (await cache.getMany(keys.map(t))).flatMap((v, i) => (v ? [keys[i]] : []));
    expect(alive.sort()).toEqual([...model].sort());
  });

  it('evicts in constant time: a full cache keeps the speed it had while filling', async () => {
    const cache = new MemoryIdempotencyCache({ maxEntries: 50_000 });
    const { filling, full } = await fillingThenFull(async (i) => {
      await cache.set({ scope: 's', key: `k${i}` }, {}, 60_000);
      await cache.get({ scope: 's', key: `k${i - 10}` });
    });
    expect(cache.size).toBe(50_000);
    expect(full).toBeLessThan(4 * filling);
  });

  it('rejects a maxEntries that is not a positive integer, by name', () => {
    expect(() => new MemoryIdempotencyCache({ maxEntries: 0 })).toThrow('"maxEntries"');
  });
});

describe('MemoryIdempotencyStore bounds', () => {
  it('past maxRecords forgets the oldest completed record, never a claim in progress', async () => {
    const store = new MemoryIdempotencyStore({ maxRecords: 3, clock: new FakeClock() });
    const t = (key: string) => ({ scope: 's', key });
    await store.claim({ token: t('live'), owner: 'o', leaseMs: 60_000 });
    for (const key of ['a', 'b']) {
      await store.claim({ token: t(key), owner: 'o', leaseMs: 60_000 });
      await store.complete({ token: t(key), owner: 'o', ttlMs: 60_000 });
    }
    await store.claim({ token: t('c'), owner: 'o', leaseMs: 60_000 });
    expect(store.size).toBe(3);
    expect((await store.getMany(['live', 'a', 'b', 'c'].map(t))).map((r) => r?.status)).toEqual([
      'inProgress',
      undefined,
      'completed',
      'inProgress',
    ]);
    expect(() => new MemoryIdempotencyStore({ maxRecords: 0 })).toThrow('"maxRecords"');
  });

  it('skips records released or taken over since they completed, and evicts in completion order', async () => {
    const clock = new FakeClock();
    const store = new MemoryIdempotencyStore({ maxRecords: 3, clock });
    const t = (key: string) => ({ scope: 's', key });
    const done = async (key: string, ttlMs = 60_000) => {
      await store.claim({ token: t(key), owner: key, leaseMs: 60_000 });
      await store.complete({ token: t(key), owner: key, ttlMs });
    };
    await done('short', 1_000); // completes first, expires, is taken over: no longer completed
    await done('a');
    await clock.advance(2_000);
    await store.claim({ token: t('short'), owner: 'again', leaseMs: 60_000 });
    await done('b'); // 3 records: short (in progress), a, b
    await done('c'); // evicts a, the oldest completed; the stale 'short' entry is skipped
    expect((await store.getMany(['short', 'a', 'b', 'c'].map(t))).map((r) => r?.status)).toEqual([
      'inProgress',
      undefined,
      'completed',
      'completed',
    ]);
  });

  it('evicts in constant time: a full store keeps the speed it had while filling', async () => {
    // Scanning the Map from its start for the oldest completed record walked every hole that earlier
    // evictions left: 50 000 tokens through a full 50 000 store took ~15× as long as filling it.
    const store = new MemoryIdempotencyStore({ maxRecords: 50_000 });
    const { filling, full } = await fillingThenFull(async (i) => {
      const token = { scope: 's', key: `k${i}` };
      await store.claim({ token, owner: 'o', leaseMs: 60_000 });
      await store.complete({ token, owner: 'o', ttlMs: 60_000 });
    });
    expect(store.size).toBe(50_000);
    expect(full).toBeLessThan(4 * filling);
  });
});
