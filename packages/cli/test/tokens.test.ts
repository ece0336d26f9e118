/** `inspect` and `forget` against every real store, with the Redis cache beside it. */
import { canonicalKey, type TokenRef } from '@idempotent-mq/core/adapter';
import type { RedisIdempotencyStore } from '@idempotent-mq/redis';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type Backend,
  cli,
  openBackend,
  REDIS_URL,
  removeScratch,
  STORE_KINDS,
  sleep,
  uniqueScope,
} from './support/cli.js';

afterAll(removeScratch);

for (const kind of STORE_KINDS) {
  describe(`inspect and forget on ${kind}`, () => {
    let b: Backend;
    let scope: string;
    const token = (key: string): TokenRef => ({ scope, key });
    beforeAll(async () => {
      b = await openBackend(kind);
    });
    afterAll(async () => {
      await b.close();
    });
    beforeEach(() => {
      scope = uniqueScope();
    });

    it('inspect shows a completed record beside its cache entry, and what the next copy meets', async () => {
      await b.seed(token('PAY-1'), { owner: 'owner-1', ttlMs: 3_600_000, result: '{"ok":true}' });
      await b.cache.set(token('PAY-1'), { fingerprint: 'fp-1', result: '{"ok":true}' }, 3_600_000);
      const run = await cli(['inspect', scope, 'PAY-1', '--json'], { env: b.env });
      expect(run.code).toBe(0);
      const doc = run.json<{ store: { record: { expiresInMs: number } }; cache: { ttlMs: number } }>();
      expect(doc).toMatchObject({
        command: 'inspect',
        token: { scope, key: 'PAY-1' },
        store: {
          state: 'completed',
          record: { owner: 'owner-1', fence: 1, status: 'completed', result: '{"ok":true}' },
        },
        cache: { state: 'completed', fingerprint: 'fp-1', result: '{"ok":true}' },
        nextCopy: 'duplicate',
      });
      expect(doc.store.record.expiresInMs).toBeGreaterThan(3_500_000);
      expect(doc.cache.ttlMs).toBeGreaterThan(3_500_000);

      const text = await cli(['inspect', scope, 'PAY-1'], { env: b.env });
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/^store {3}completed/m);
      expect(text.stdout).toMatch(/^cache {3}completed/m);
      expect(text.stdout).toContain('owner-1');
      expect(text.stdout).toContain('next copy: duplicate');
    });

    it('inspect tells a live claim from a lapsed one, on the store clock', async () => {
      await b.seed(token('LIVE'), { owner: 'worker-a', leaseMs: 60_000 });
      await b.seed(token('LAPSED'), { owner: 'worker-b', leaseMs: 300 });
      await sleep(400);
      const live = (await cli(['inspect', scope, 'LIVE', '--json'], { env: b.env })).json();
      expect(live).toMatchObject({
        store: { state: 'inProgress', record: { owner: 'worker-a' } },
        nextCopy: 'inFlight',
      });
      const lapsed = (await cli(['inspect', scope, 'LAPSED', '--json'], { env: b.env })).json();
      expect(lapsed).toMatchObject({
        store: { state: 'lapsed' },
        nextCopy: 'processed',
        cache: { state: 'absent' },
      });
    });

    it('inspect turns key parts into the stored key as the engine does; --exact takes the stored key', async () => {
      const joined = canonicalKey(['ORDER-7', 'LINE-2'], 250) as { key: string };
      const escaped = canonicalKey('a,b', 250) as { key: string };
      await b.seed(token(joined.key), { ttlMs: 60_000 });
      await b.seed(token(escaped.key), { ttlMs: 60_000 });
      expect((await cli(['inspect', scope, 'ORDER-7', 'LINE-2'], { env: b.env })).code).toBe(0);
      expect((await cli(['inspect', scope, 'a,b'], { env: b.env })).code).toBe(0);
      expect((await cli(['inspect', scope, escaped.key, '--exact'], { env: b.env })).code).toBe(0);
      expect((await cli(['inspect', scope, 'a,b', '--exact'], { env: b.env })).code).toBe(3);
    });

    it('inspect of a token neither holds exits 3; an unversioned scope gets a hint', async () => {
      const run = await cli(['inspect', scope, 'NOPE'], { env: b.env });
      expect(run.code).toBe(3);
      expect(run.stdout).toMatch(/^store {3}absent/m);
      const hinted = await cli(['inspect', 'billing:Payments.onMessage', 'NOPE', '--json'], { env: b.env });
      expect(hinted.code).toBe(3);
      expect(hinted.json()).toMatchObject({
        hint: expect.stringContaining('"v1:billing:Payments.onMessage"'),
      });
    });

    it('inspect says when the cache still answers for a token the store no longer holds', async () => {
      await b.cache.set(token('STALE'), {}, 60_000);
      const run = await cli(['inspect', scope, 'STALE', '--json'], { env: b.env });
      expect(run.code).toBe(0);
      expect(run.json()).toMatchObject({
        store: { state: 'absent', record: null },
        cache: { state: 'completed' },
        nextCopy: 'duplicate',
        explanation: expect.stringContaining('forget clears both'),
      });
    });

    it('forget deletes a completed record and its cache entry together; the next copy runs', async () => {
      await b.seed(token('PAY-2'), { ttlMs: 3_600_000 });
      await b.cache.set(token('PAY-2'), {}, 3_600_000);
      const run = await cli(['forget', scope, 'PAY-2', '--json'], { env: b.env });
      expect(run.code).toBe(0);
      expect(run.json()).toMatchObject({
        command: 'forget',
        dryRun: false,
        store: { outcome: 'forgotten', record: { status: 'completed' } },
        cache: { hadEntry: true, deleted: true },
      });
      expect(await b.store.get(token('PAY-2'))).toBeUndefined();
      expect(await b.cache.get(token('PAY-2'))).toBeUndefined();
      const again = await b.store.claim({ token: token('PAY-2'), owner: 'next', leaseMs: 60_000 });
      expect(again.status).toBe('claimed');
    });

    it('forget refuses a live claim with exit 4 and touches nothing; --force deletes it', async () => {
      await b.seed(token('BUSY'), { owner: 'worker-a', leaseMs: 60_000 });
      await b.cache.set(token('BUSY'), {}, 60_000);
      const refused = await cli(['forget', scope, 'BUSY'], { env: b.env });
      expect(refused.code).toBe(4);
      expect(refused.stderr).toContain('Refused: a live claim holds the token (owner worker-a');
      expect(refused.stderr).toContain('--force');
      expect(await b.store.get(token('BUSY'))).toMatchObject({ status: 'inProgress', owner: 'worker-a' });
      expect(await b.cache.get(token('BUSY'))).toEqual({});

      const forced = await cli(['forget', scope, 'BUSY', '--force', '--json'], { env: b.env });
      expect(forced.code).toBe(0);
      expect(forced.json()).toMatchObject({
        force: true,
        store: { outcome: 'forgotten' },
        cache: { deleted: true },
      });
      expect(await b.store.get(token('BUSY'))).toBeUndefined();
      expect(await b.cache.get(token('BUSY'))).toBeUndefined();
    });

    it('forget --dry-run answers as forget would and deletes nothing', async () => {
      await b.seed(token('DONE'), { ttlMs: 60_000 });
      await b.cache.set(token('DONE'), {}, 60_000);
      await b.seed(token('BUSY'), { leaseMs: 60_000 });
      const dry = await cli(['forget', scope, 'DONE', '--dry-run', '--json'], { env: b.env });
      expect(dry.code).toBe(0);
      expect(dry.json()).toMatchObject({
        dryRun: true,
        store: { outcome: 'forgotten' },
        cache: { hadEntry: true, deleted: false },
      });
      const text = await cli(['forget', scope, 'DONE', '--dry-run'], { env: b.env });
      expect(text.stdout).toContain('would delete the completed record');
      expect(text.stdout).toContain('dry run: nothing was deleted');
      expect((await cli(['forget', scope, 'BUSY', '--dry-run'], { env: b.env })).code).toBe(4);
      expect(await b.store.get(token('DONE'))).toMatchObject({ status: 'completed' });
      expect(await b.cache.get(token('DONE'))).toEqual({});
      expect(await b.store.get(token('BUSY'))).toMatchObject({ status: 'inProgress' });
    });

    // Only the Redis store can hold a foreign value under its key; the SQL tables have typed columns.
    if (kind === 'redis')
      it('an entry under the record key that is not a record: inspect shows it, forget --force deletes it', async () => {
        const layout = (b.store as RedisIdempotencyStore).layout;
        const redis = new Redis(REDIS_URL, { lazyConnect: true });
        await redis.connect();
        try {
          await redis.set(layout.key('record', token('ODD')), 'not a hash', 'PX', 60_000);
          const inspect = await cli(['inspect', scope, 'ODD', '--json'], { env: b.env });
          expect(inspect.code).toBe(0);
          expect(inspect.json()).toMatchObject({
            store: { state: 'unreadable', unreadable: expect.stringContaining('holds a string') },
            nextCopy: 'failed',
          });
          const refused = await cli(['forget', scope, 'ODD'], { env: b.env });
          expect(refused.code).toBe(1);
          expect(refused.stderr).toContain('"forget --force" deletes it');
          const forced = await cli(['forget', scope, 'ODD', '--force'], { env: b.env });
          expect(forced.code).toBe(0);
          expect(forced.stdout).toContain('deleted the unreadable entry');
          expect(await redis.exists(layout.key('record', token('ODD')))).toBe(0);
        } finally {
          await redis.quit();
        }
      });

    it('forget of a token neither holds exits 3 and says so on stderr', async () => {
      const run = await cli(['forget', scope, 'NOPE', '--json'], { env: b.env });
      expect(run.code).toBe(3);
      expect(run.json()).toMatchObject({ store: { outcome: 'absent' }, cache: { hadEntry: false } });
      expect(run.stderr).toContain('Neither the store nor the cache holds the token');
    });
  });
}
