import { FakeClock, FaultyCache } from '@idempotent-mq/testing';
import { describeCacheContract } from '@idempotent-mq/testing/vitest';
import { describe, expect, it } from 'vitest';
import { MemoryIdempotencyCache, NearIdempotencyCache } from '../src/index.js';

const token = (key: string) => ({ scope: 'v1:near', key });
const HOUR = 3_600_000;

function tiers(maxStalenessMs = 1000) {
  const clock = new FakeClock();
  const shared = new FaultyCache(new MemoryIdempotencyCache({ clock }));
  const near = new NearIdempotencyCache(shared, { clock, maxStalenessMs });
  return {
    clock,
    shared,
    near,
    calls: (m: 'get' | 'getMany' | 'set' | 'delete') => shared.faults.calls.get(m) ?? 0,
  };
}

describeCacheContract('NearIdempotencyCache over MemoryIdempotencyCache', async () => {
  const clock = new FakeClock();
  return {
    cache: new NearIdempotencyCache(new MemoryIdempotencyCache({ clock }), { clock }),
    advance: (ms) => clock.advance(ms),
  };
});

describe('NearIdempotencyCache', () => {
  it('answers a token it learnt from process memory, without asking the shared cache again', async () => {
    const t = tiers();
    await t.shared.set(token('A'), { fingerprint: 'f' }, HOUR);
    expect(await t.near.get(token('A'))).toEqual({ fingerprint: 'f' });
    expect(await t.near.get(token('A'))).toEqual({ fingerprint: 'f' });
    expect(await t.near.getMany([token('A'), token('A')])).toEqual([
      { fingerprint: 'f' },
      { fingerprint: 'f' },
    ]);
    expect(t.calls('get')).toBe(1);
    expect(t.calls('getMany')).toBe(0);
  });

  it('never remembers a miss: a token completed elsewhere is found at the next look', async () => {
    const t = tiers();
    expect(await t.near.get(token('B'))).toBeUndefined();
    await t.shared.set(token('B'), {}, HOUR); // another process completed it
    expect(await t.near.get(token('B'))).toEqual({});
  });

  it('trusts an entry for maxStalenessMs at most: a forget in another process is seen after that', async () => {
    const t = tiers(1000);
    await t.near.set(token('C'), {}, HOUR);
    await t.shared.delete(token('C')); // an operator's forget, elsewhere
    expect(await t.near.get(token('C'))).toEqual({}); // stale, within the bound
    await t.clock.advance(1001);
    expect(await t.near.get(token('C'))).toBeUndefined();
  });

  it('a delete here is seen here at once and reaches the shared cache', async () => {
    const t = tiers();
    await t.near.set(token('D'), {}, HOUR);
    await t.near.delete(token('D'));
    expect(await t.near.get(token('D'))).toBeUndefined();
    expect(await t.shared.get(token('D'))).toBeUndefined();
  });

  it('a batch asks the shared cache only for what memory lacks, in one call, answers aligned', async () => {
    const t = tiers();
    await t.near.set(token('E1'), { result: '1' }, HOUR);
    await t.shared.set(token('E3'), { result: '3' }, HOUR);
    expect(await t.near.getMany([token('E1'), token('E2'), token('E3')])).toEqual([
      { result: '1' },
      undefined,
      { result: '3' },
    ]);
    expect(t.calls('getMany')).toBe(1);
    expect(await t.near.getMany([token('E3')])).toEqual([{ result: '3' }]);
    expect(t.calls('getMany')).toBe(1);
  });

  it('a duplicate it knows is answered even while the shared cache is down', async () => {
    const t = tiers();
    await t.near.set(token('F'), {}, HOUR);
    t.shared.faults.inject('get', { fail: new Error('ECONNREFUSED') });
    expect(await t.near.get(token('F'))).toEqual({});
    await expect(t.near.get(token('G'))).rejects.toThrow('ECONNREFUSED');
  });

  it('refuses a staleness bound that is not a positive integer, naming it', () => {
    expect(() => new NearIdempotencyCache(new MemoryIdempotencyCache(), { maxStalenessMs: 0 })).toThrow(
      '"NearIdempotencyCache.maxStalenessMs"',
    );
  });
});
