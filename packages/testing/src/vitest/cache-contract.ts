/**
 * The contract every {@link IdempotencyCache} keeps, as a vitest suite any adapter runs with one call.
 */
import { randomUUID } from 'node:crypto';
import type { IdempotencyCache, TokenRef } from '@idempotent-mq/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

export interface CacheContractHarness {
  readonly cache: IdempotencyCache;
  /** Moves the cache's clock forward by `ms` (a `FakeClock`'s advance, or a real sleep). */
  advance(ms: number): Promise<void>;
  /** The TTL the suite writes with; short for caches on real time. @defaultValue 1000 */
  readonly ttlMs?: number;
  cleanup?(): Promise<void>;
}

/** Registers the cache contract suite under `name`; `setup` runs before each test. */
export function describeCacheContract(name: string, setup: () => Promise<CacheContractHarness>): void {
  describe(`${name} keeps the cache contract`, () => {
    let h: CacheContractHarness;
    let cache: IdempotencyCache;
    let ttl: number;
    let scope: string;
    const token = (key = 'ORDER-1', s = scope): TokenRef => ({ scope: s, key });

    beforeEach(async () => {
      h = await setup();
      cache = h.cache;
      ttl = h.ttlMs ?? 1000;
      scope = `contract-${randomUUID()}`;
    });
    afterEach(async () => {
      await h.cleanup?.();
    });

    it('a token never written is a miss', async () => {
      expect(await cache.get(token())).toBeUndefined();
    });

    it('a written completion reads back with its fingerprint and result', async () => {
      await cache.set(token(), { fingerprint: 'fp', result: '{"ok":true}' }, ttl);
      expect(await cache.get(token())).toEqual({ fingerprint: 'fp', result: '{"ok":true}' });
      await cache.set(token('BARE'), {}, ttl);
      expect(await cache.get(token('BARE'))).toEqual({});
    });

    it('an entry expires after its ttl', async () => {
      await cache.set(token(), {}, ttl);
      await h.advance(ttl + 50);
      expect(await cache.get(token())).toBeUndefined();
    });

    it('getMany reads many tokens at once, aligned with the request', async () => {
      await cache.set(token('A'), { result: '1' }, ttl);
      await cache.set(token('C'), { result: '3' }, ttl);
      const found = await cache.getMany([token('A'), token('B'), token('C')]);
      expect(found.map((v) => v?.result)).toEqual(['1', undefined, '3']);
      expect(await cache.getMany([])).toEqual([]);
    });

    it('delete forgets a token', async () => {
      await cache.set(token(), {}, ttl);
      await cache.delete(token());
      expect(await cache.get(token())).toBeUndefined();
    });

    it("scopes are separate: one scope never reads or deletes another one's entries", async () => {
      const other = `contract-${randomUUID()}`;
      await cache.set(token('SAME'), { result: '"mine"' }, ttl);
      expect(await cache.get(token('SAME', other))).toBeUndefined();
      await cache.delete(token('SAME', other));
      expect(await cache.get(token('SAME'))).toEqual({ result: '"mine"' });
    });

    it('keys with separators, braces, wildcards, unicode, case and trailing spaces stay exact and apart', async () => {
      const keys = [
        'a:b',
        '{tag}',
        'a b',
        '*',
        'line\nbreak',
        '😀',
        'a,b',
        'a\\,b',
        'k',
        'k ',
        'K',
        '\u00e9',
        'e\u0301',
      ];
      for (const [i, key] of keys.entries()) await cache.set(token(key), { result: String(i) }, ttl);
      const found = await cache.getMany(keys.map((k) => token(k)));
      expect(found.map((v) => v?.result)).toEqual(keys.map((_, i) => String(i)));
      expect(await cache.get(token('a'))).toBeUndefined();
    });

    it('inspect shows an entry with its time left; a token never written has none', async () => {
      const inspect = cache.inspect?.bind(cache);
      if (!inspect) {
        expect(cache.inspect).toBeUndefined();
        return;
      }
      expect(await inspect(token('NONE'))).toBeUndefined();
      await cache.set(token(), { fingerprint: 'fp', result: '{"ok":true}' }, ttl);
      const entry = await inspect(token());
      expect(entry?.value).toEqual({ fingerprint: 'fp', result: '{"ok":true}' });
      expect(entry?.ttlMs).toBeGreaterThan(0);
      expect(entry?.ttlMs).toBeLessThanOrEqual(ttl);
      await cache.delete(token());
      expect(await inspect(token())).toBeUndefined();
    });
  });
}
