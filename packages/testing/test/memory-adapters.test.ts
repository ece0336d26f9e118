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
