import { FakeClock, FaultyCache } from '@idempotent-mq/testing';
import { describeCacheContract } from '@idempotent-mq/testing/vitest';
import { describe, expect, it } from 'vitest';
import type { NearIdempotencyCacheOptions } from '../src/cache/near-idempotency-cache.js';
import { MemoryIdempotencyCache, NearIdempotencyCache, type TokenRef } from '../src/index.js';
import type { CacheInvalidationListener, CacheInvalidations } from '../src/ports/cache-invalidations.js';

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

/** An invalidation source driven by the test, as Redis tracking drives the real one. */
class TestInvalidations implements CacheInvalidations {
  live = false;
  watchedByReading = false;
  check?: CacheInvalidations['check'];
  readonly listeners = new Set<CacheInvalidationListener>();
  nameOf(token: TokenRef): string {
    return `k:${token.scope}/${token.key}`;
  }
  subscribe(listener: CacheInvalidationListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  setLive(live: boolean): void {
    this.live = live;
    for (const l of this.listeners) l.invalidateAll();
  }
  invalidate(...tokens: TokenRef[]): void {
    for (const l of this.listeners) l.invalidate(tokens.map((t) => this.nameOf(t)));
  }
}

function tracked(
  options: { live?: boolean; watchedByReading?: boolean; maxTrackedStalenessMs?: number } = {},
) {
  const clock = new FakeClock();
  const shared = new FaultyCache(new MemoryIdempotencyCache({ clock }));
  const source = new TestInvalidations();
  source.live = options.live ?? true;
  source.watchedByReading = options.watchedByReading ?? false;
  const near = new NearIdempotencyCache(shared, {
    clock,
    maxStalenessMs: 1000,
    invalidations: source,
    ...(options.maxTrackedStalenessMs ? { maxTrackedStalenessMs: options.maxTrackedStalenessMs } : {}),
  });
  return { clock, shared, source, near, calls: (m: 'get' | 'getMany') => shared.faults.calls.get(m) ?? 0 };
}

describeCacheContract('NearIdempotencyCache with a live invalidation source', async () => {
  const clock = new FakeClock();
  const source = new TestInvalidations();
  source.live = true;
  source.watchedByReading = true;
  return {
    cache: new NearIdempotencyCache(new MemoryIdempotencyCache({ clock }), { clock, invalidations: source }),
    advance: (ms) => clock.advance(ms),
  };
});

describe('NearIdempotencyCache with invalidations', () => {
  it('an invalidation drops the entry at once: the next read asks the shared cache', async () => {
    const t = tracked();
    await t.shared.set(token('I1'), {}, HOUR);
    expect(await t.near.get(token('I1'))).toEqual({});
    await t.shared.delete(token('I1')); // a forget elsewhere ...
    expect(await t.near.get(token('I1'))).toEqual({}); // ... not told yet: still answered from memory
    t.source.invalidate(token('I1'));
    expect(await t.near.get(token('I1'))).toBeUndefined();
    expect(t.calls('get')).toBe(2);
    expect(t.near.size).toBe(0);
  });

  it('while the source is live, entries are trusted for maxTrackedStalenessMs, not maxStalenessMs', async () => {
    const t = tracked({ maxTrackedStalenessMs: 60_000 });
    await t.shared.set(token('I2'), {}, HOUR);
    await t.near.get(token('I2'));
    await t.clock.advance(59_000);
    expect(await t.near.get(token('I2'))).toEqual({});
    expect(t.calls('get')).toBe(1);
    await t.clock.advance(1001);
    await t.near.get(token('I2'));
    expect(t.calls('get')).toBe(2);
  });

  it('while the source is not live, maxStalenessMs bounds what is learnt', async () => {
    const t = tracked({ live: false });
    await t.shared.set(token('I3'), {}, HOUR);
    await t.near.get(token('I3'));
    await t.clock.advance(1001);
    await t.near.get(token('I3'));
    expect(t.calls('get')).toBe(2);
  });

  it('going live, going down and a flush each forget everything held', async () => {
    const t = tracked({ live: false });
    await t.shared.set(token('I4'), {}, HOUR);
    await t.near.get(token('I4'));
    t.source.setLive(true);
    expect(t.near.size).toBe(0);
    await t.near.get(token('I4'));
    t.source.setLive(false);
    expect(t.near.size).toBe(0);
    t.source.setLive(true);
    await t.near.get(token('I4'));
    for (const l of t.source.listeners) l.invalidateAll(); // FLUSHDB
    expect(t.near.size).toBe(0);
    expect(t.calls('get')).toBe(3);
  });

  it('a read overtaken by an invalidation on its way back is answered, not remembered', async () => {
    const t = tracked();
    await t.shared.set(token('I5'), {}, HOUR);
    const [get, getMany] = [t.shared.get.bind(t.shared), t.shared.getMany.bind(t.shared)];
    t.shared.get = async (tk) => {
      const value = await get(tk);
      t.source.invalidate(tk); // the delete's invalidation arrives before the GET's reply is handled
      return value;
    };
    t.shared.getMany = async (tks) => {
      const values = await getMany(tks);
      t.source.invalidate(...tks);
      return values;
    };
    expect(await t.near.get(token('I5'))).toEqual({});
    expect(t.near.size).toBe(0);
    expect(await t.near.getMany([token('I5')])).toEqual([{}]);
    expect(t.near.size).toBe(0);
  });

  it('a read sent before a reconnect is not remembered, even if it answers after tracking is back', async () => {
    const t = tracked();
    await t.shared.set(token('I6'), {}, HOUR);
    const inner = t.shared.get.bind(t.shared);
    t.shared.get = async (tk) => {
      t.source.setLive(false);
      t.source.setLive(true);
      return inner(tk);
    };
    expect(await t.near.get(token('I6'))).toEqual({});
    expect(t.near.size).toBe(0);
  });

  it('a source that watches only reads: what is written is read back, then trusted for longer', async () => {
    const t = tracked({ watchedByReading: true, maxTrackedStalenessMs: 60_000 });
    await t.near.set(token('I7'), {}, HOUR);
    expect(t.calls('get')).toBe(1); // the read-back
    await t.clock.advance(30_000);
    expect(await t.near.get(token('I7'))).toEqual({});
    expect(t.calls('get')).toBe(1);
    t.source.invalidate(token('I7'));
    expect(t.near.size).toBe(0);
  });

  it('a read-back that finds nothing (a forget raced the write) drops the entry', async () => {
    const t = tracked({ watchedByReading: true });
    const inner = t.shared.get.bind(t.shared);
    t.shared.get = async (tk) => {
      await t.shared.inner.delete(tk);
      return inner(tk);
    };
    await t.near.set(token('I8'), {}, HOUR);
    expect(t.near.size).toBe(0);
  });

  it('a failed read-back keeps the entry within maxStalenessMs', async () => {
    const t = tracked({ watchedByReading: true });
    t.shared.faults.inject('get', { fail: new Error('ECONNRESET') }, 1);
    await t.near.set(token('I9'), {}, HOUR);
    expect(await t.near.get(token('I9'))).toEqual({});
    await t.clock.advance(1001);
    expect(await t.near.get(token('I9'))).toEqual({});
    expect(t.calls('get')).toBe(2); // the failed read-back, then the read after the bound
  });

  it('a write while the source is not live is not read back', async () => {
    const t = tracked({ live: false, watchedByReading: true });
    await t.near.set(token('I10'), {}, HOUR);
    expect(t.calls('get')).toBe(0);
  });

  it('close() stops listening and falls back to maxStalenessMs', async () => {
    const t = tracked();
    await t.shared.set(token('I11'), {}, HOUR);
    await t.near.get(token('I11'));
    t.near.close();
    expect(t.source.listeners.size).toBe(0);
    expect(t.near.size).toBe(0);
    await t.near.get(token('I11'));
    await t.clock.advance(1001);
    await t.near.get(token('I11'));
    expect(t.calls('get')).toBe(3);
  });

  it('the source checks itself after the shared cache', async () => {
    const t = tracked();
    Object.assign(t.shared, { check: () => t.shared.inner.check?.({ transactional: false }) });
    t.source.check = async () => [{ name: 'client-side tracking', status: 'ok', detail: 'on.' }];
    const checks = await t.near.check({ transactional: false });
    expect(checks.map((c) => c.name)).toEqual(['memory cache', 'client-side tracking']);
  });

  it('refuses a source that is not one, a tracked bound without a source, and a misspelt option', () => {
    const shared = new MemoryIdempotencyCache();
    expect(() => new NearIdempotencyCache(shared, { invalidations: {} as CacheInvalidations })).toThrow(
      '"NearIdempotencyCache.invalidations"',
    );
    expect(() => new NearIdempotencyCache(shared, { maxTrackedStalenessMs: 60_000 })).toThrow(
      /"NearIdempotencyCache.maxTrackedStalenessMs".*only with `invalidations`/,
    );
    const source = new TestInvalidations();
    expect(
      () =>
        new NearIdempotencyCache(shared, {
          invalidations: source,
          maxStalenessMs: 5000,
          maxTrackedStalenessMs: 10,
        }),
    ).toThrow(/"NearIdempotencyCache.maxTrackedStalenessMs".*from 5000/);
    expect(
      () =>
        new NearIdempotencyCache(shared, { invalidation: source } as unknown as NearIdempotencyCacheOptions),
    ).toThrow(/did you mean "invalidations"/);
  });
});
