import { MemoryIdempotencyCache, MemoryIdempotencyStore } from '@idempotent-mq/core';
import { describe, expect, it } from 'vitest';
import { describeCacheContract, describeStoreContract, FakeClock } from '../src/index.js';

describeStoreContract('MemoryIdempotencyStore', async () => {
  const clock = new FakeClock();
  return { store: new MemoryIdempotencyStore({ clock }), advance: (ms) => clock.advance(ms) };
});

describeCacheContract('MemoryIdempotencyCache', async () => {
  const clock = new FakeClock();
  return { cache: new MemoryIdempotencyCache({ clock }), advance: (ms) => clock.advance(ms) };
});

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
});
