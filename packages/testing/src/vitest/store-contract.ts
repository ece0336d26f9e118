/**
 * The contract every {@link IdempotencyStore} keeps, as a vitest suite any adapter runs with one call:
 *
 * ```ts
 * describeStoreContract('KnexIdempotencyStore (PostgreSQL)', async () => ({
 *   store: new KnexIdempotencyStore(knex),
 *   advance: (ms) => sleep(ms),
 * }));
 * ```
 */
import { randomUUID } from 'node:crypto';
import type { ClaimResult, IdempotencyRecord, IdempotencyStore, TokenRef } from '@idempotent-mq/core/adapter';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

export interface StoreContractHarness<Tx = unknown> {
  readonly store: IdempotencyStore<Tx>;
  /**
   * Moves the store's clock forward by `ms`: a `FakeClock`'s `advance`, or a real sleep for a store that
   * reads the database's clock.
   */
  advance(ms: number): Promise<void>;
  /** The lease the suite claims with; short for stores on real time. @defaultValue 1000 */
  readonly leaseMs?: number;
  /** Called after each test. */
  cleanup?(): Promise<void>;
}

const uniqueScope = () => `contract-${randomUUID()}`;

/** Registers the store contract suite under `name`; `setup` runs before each test. */
export function describeStoreContract<Tx>(
  name: string,
  setup: () => Promise<StoreContractHarness<Tx>>,
): void {
  describe(`${name} keeps the store contract`, () => {
    let h: StoreContractHarness<Tx>;
    let store: IdempotencyStore<Tx>;
    let lease: number;
    let scope: string;
    const token = (key = 'ORDER-1', s = scope): TokenRef => ({ scope: s, key });
    const claim = (t: TokenRef, owner: string = randomUUID(), fingerprint?: string, tx?: Tx) =>
      store.claim({ token: t, owner, leaseMs: lease, fingerprint }, tx);
    const claimed = (r: ClaimResult): IdempotencyRecord => {
      expect(r.status).toBe('claimed');
      return r.record;
    };

    beforeEach(async () => {
      h = await setup();
      store = h.store;
      lease = h.leaseMs ?? 1000;
      scope = uniqueScope();
    });
    afterEach(async () => {
      await h.cleanup?.();
    });

    it('a first claim holds the token in progress, fence 1, under a lease', async () => {
      const r = await claim(token(), 'owner-a', 'fp-1');
      expect(r).toMatchObject({ status: 'claimed', takeover: false });
      const stored = await store.get(token());
      expect(stored).toMatchObject({ status: 'inProgress', owner: 'owner-a', fence: 1, fingerprint: 'fp-1' });
      expect(stored?.leaseExpiresAt).toBeGreaterThan(stored?.createdAt ?? Number.POSITIVE_INFINITY);
    });

    it('a second claim meets the live claim and does not take it', async () => {
      await claim(token(), 'owner-a');
      const second = await claim(token(), 'owner-b');
      expect(second.status).toBe('exists');
      expect(second.record).toMatchObject({ status: 'inProgress', owner: 'owner-a' });
    });

    it('concurrent claims of one token: exactly one wins', async () => {
      const results = await Promise.all(Array.from({ length: 16 }, () => claim(token('RACE'))));
      expect(results.filter((r) => r.status === 'claimed')).toHaveLength(1);
    });

    it('the owner completes; the record then answers every claim as completed, with its result', async () => {
      await claim(token(), 'owner-a', 'fp-1');
      await expect(
        store.complete({ token: token(), owner: 'owner-a', ttlMs: 60_000, result: '{"n":1}' }),
      ).resolves.toBe(true);
      const again = await claim(token(), 'owner-b', 'fp-1');
      expect(again.status).toBe('exists');
      expect(again.record).toMatchObject({ status: 'completed', result: '{"n":1}', fingerprint: 'fp-1' });
      expect(again.record.completedAt).toBeTypeOf('number');
      expect(again.record.expiresAt).toBeGreaterThan(again.record.completedAt as number);
    });

    it('completion is fenced: another owner cannot complete, and nothing is written', async () => {
      await claim(token(), 'owner-a');
      await expect(store.complete({ token: token(), owner: 'owner-b', ttlMs: 60_000 })).resolves.toBe(false);
      expect(await store.get(token())).toMatchObject({ status: 'inProgress', owner: 'owner-a' });
      await expect(
        store.complete({ token: token('NEVER-CLAIMED'), owner: 'owner-a', ttlMs: 60_000 }),
      ).resolves.toBe(false);
      expect(await store.get(token('NEVER-CLAIMED'))).toBeUndefined();
    });

    it('the owner releases its claim and the token can be claimed afresh; others cannot release it', async () => {
      await claim(token(), 'owner-a');
      await expect(store.release(token(), 'owner-b')).resolves.toBe(false);
      await expect(store.release(token(), 'owner-a')).resolves.toBe(true);
      expect(await store.get(token())).toBeUndefined();
      const fresh = claimed(await claim(token(), 'owner-c'));
      expect(fresh.owner).toBe('owner-c');
    });

    it('a completed record cannot be released', async () => {
      await claim(token(), 'owner-a');
      await store.complete({ token: token(), owner: 'owner-a', ttlMs: 60_000 });
      await expect(store.release(token(), 'owner-a')).resolves.toBe(false);
      expect(await store.get(token())).toMatchObject({ status: 'completed' });
    });

    it('an expired lease is taken over with a higher fence; the stale owner can neither renew nor complete', async () => {
      await claim(token(), 'stale');
      await h.advance(lease + 50);
      const taken = await claim(token(), 'fresh');
      expect(taken).toMatchObject({ status: 'claimed', takeover: true });
      expect(taken.record.fence).toBe(2);
      await expect(store.renew(token(), 'stale', lease)).resolves.toBe(false);
      await expect(store.complete({ token: token(), owner: 'stale', ttlMs: 60_000 })).resolves.toBe(false);
      await expect(store.complete({ token: token(), owner: 'fresh', ttlMs: 60_000 })).resolves.toBe(true);
      expect(await store.get(token())).toMatchObject({ status: 'completed', owner: 'fresh', fence: 2 });
    });

    it('renewing keeps a live claim from being taken over', async () => {
      await claim(token(), 'owner-a');
      await h.advance(Math.floor(lease * 0.6));
      await expect(store.renew(token(), 'owner-a', lease)).resolves.toBe(true);
      await h.advance(Math.floor(lease * 0.6));
      expect((await claim(token(), 'owner-b')).status).toBe('exists');
    });

    it('a completed record past its retention is forgotten and the token can be claimed again', async () => {
      await claim(token(), 'owner-a');
      await store.complete({ token: token(), owner: 'owner-a', ttlMs: lease });
      await h.advance(lease + 50);
      expect(await store.get(token())).toBeUndefined();
      const again = await claim(token(), 'owner-b');
      expect(again).toMatchObject({ status: 'claimed', takeover: false });
    });

    it('getMany answers many tokens at once, aligned with the request', async () => {
      await claim(token('A'), 'owner-a');
      await claim(token('C'), 'owner-c');
      await store.complete({ token: token('C'), owner: 'owner-c', ttlMs: 60_000 });
      const found = await store.getMany([token('A'), token('B'), token('C')]);
      expect(found.map((r) => r?.status)).toEqual(['inProgress', undefined, 'completed']);
      expect(await store.getMany([])).toEqual([]);
    });

    it('purgeExpired deletes expired completed records only, in bounded batches', async () => {
      for (const key of ['E1', 'E2', 'E3', 'E4', 'E5']) {
        await claim(token(key), 'o');
        await store.complete({ token: token(key), owner: 'o', ttlMs: lease });
      }
      await claim(token('KEEP'), 'o');
      await store.complete({ token: token('KEEP'), owner: 'o', ttlMs: 3_600_000 });
      await h.advance(lease + 50);
      await claim(token('LIVE'), 'o2');
      const purged = await store.purgeExpired({ batchSize: 2 });
      expect(purged).toBeGreaterThanOrEqual(5);
      const left = await store.getMany(['E1', 'E5', 'KEEP', 'LIVE'].map((k) => token(k)));
      expect(left.map((r) => r?.status)).toEqual([undefined, undefined, 'completed', 'inProgress']);
    });

    it('scopes are separate key spaces', async () => {
      const other = uniqueScope();
      await claim(token('SAME'), 'owner-a');
      expect((await claim(token('SAME', other), 'owner-b')).status).toBe('claimed');
      await expect(store.release(token('SAME', other), 'owner-a')).resolves.toBe(false);
    });

    it('keys survive the round trip exactly: unicode, astral plane, separators, control characters', async () => {
      const keys = [
        '支付-100',
        'emoji-😀-𝄞',
        'a,b\\c',
        ' spaced key ',
        'tab\tnew\nline',
        'quote\'"`',
        'x'.repeat(250),
      ];
      for (const key of keys) {
        await claim(token(key), 'o');
        await store.complete({
          token: token(key),
          owner: 'o',
          ttlMs: 60_000,
          result: JSON.stringify({ key }),
        });
      }
      const found = await store.getMany(keys.map((k) => token(k)));
      expect(found.map((r) => r?.key)).toEqual(keys);
      expect(found.map((r) => JSON.parse(r?.result ?? 'null').key)).toEqual(keys);
    });

    it('keys that differ only in trailing spaces, case or normalisation are different tokens', async () => {
      const keys = ['k', 'k ', 'K', '\u00e9', 'e\u0301', 'ss', '\u00df'];
      const results = [];
      for (const key of keys) results.push(await claim(token(key), `owner-${results.length}`));
      expect(results.map((r) => r.status)).toEqual(keys.map(() => 'claimed'));
      const found = await store.getMany(keys.map((k) => token(k)));
      expect(found.map((r) => r?.owner)).toEqual(keys.map((_, i) => `owner-${i}`));
    });

    it('in a transaction: a rollback leaves nothing behind, a commit completes', async () => {
      const begin = store.transaction?.bind(store);
      if (!begin) {
        expect(store.transaction).toBeUndefined();
        return;
      }
      const boom = new Error('handler crashed');
      await expect(
        begin(async (tx) => {
          claimed(await claim(token('TX'), 'owner-a', undefined, tx));
          await store.complete({ token: token('TX'), owner: 'owner-a', ttlMs: 60_000 }, tx);
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await store.get(token('TX'))).toBeUndefined();

      await begin(async (tx) => {
        claimed(await claim(token('TX'), 'owner-b', undefined, tx));
        await expect(
          store.complete({ token: token('TX'), owner: 'owner-b', ttlMs: 60_000 }, tx),
        ).resolves.toBe(true);
      });
      expect(await store.get(token('TX'))).toMatchObject({ status: 'completed', owner: 'owner-b' });
    });

    it('in a transaction: a copy arriving meanwhile never claims the token, and never sees it completed before commit', async () => {
      const begin = store.transaction?.bind(store);
      if (!begin) {
        expect(store.transaction).toBeUndefined();
        return;
      }
      let outside: Promise<ClaimResult> | undefined;
      let seenBeforeCommit: IdempotencyRecord | undefined;
      await begin(async (tx) => {
        claimed(await claim(token('TXR'), 'owner-a', undefined, tx));
        await store.complete({ token: token('TXR'), owner: 'owner-a', ttlMs: 60_000 }, tx);
        // The second copy either answers at once (in progress) or waits for this transaction.
        outside = claim(token('TXR'), 'owner-b');
        const early = await Promise.race([
          outside,
          new Promise<undefined>((r) => setTimeout(() => r(undefined), 50)),
        ]);
        seenBeforeCommit = early?.record;
      });
      const result = await (outside as Promise<ClaimResult>);
      expect(result.status).toBe('exists');
      if (seenBeforeCommit) expect(seenBeforeCommit.status).toBe('inProgress');
      expect(await store.get(token('TXR'))).toMatchObject({ status: 'completed', owner: 'owner-a' });
    });

    // The operators' methods (inspect, forget, stats) are optional: a store without them skips these.

    it('inspect shows the record as stored with the store time, an expired one included', async () => {
      const inspect = store.inspect?.bind(store);
      if (!inspect) {
        expect(store.inspect).toBeUndefined();
        return;
      }
      const absent = await inspect(token('NONE'));
      expect(absent.record).toBeUndefined();
      expect(absent.now).toBeTypeOf('number');
      await claim(token(), 'owner-a', 'fp-1');
      const live = await inspect(token());
      expect(live.record).toMatchObject({
        status: 'inProgress',
        owner: 'owner-a',
        fence: 1,
        fingerprint: 'fp-1',
      });
      const leaseLeft = (live.record?.leaseExpiresAt as number) - live.now;
      expect(leaseLeft).toBeGreaterThan(0);
      expect(leaseLeft).toBeLessThanOrEqual(lease);
      await store.complete({ token: token(), owner: 'owner-a', ttlMs: lease, result: '{"n":1}' });
      await h.advance(lease + 50);
      expect(await store.get(token())).toBeUndefined();
      const expired = await inspect(token());
      expect(expired.record).toMatchObject({ status: 'completed', owner: 'owner-a', result: '{"n":1}' });
      expect(expired.record?.expiresAt).toBeLessThanOrEqual(expired.now);
    });

    it('forget deletes a completed record whatever its owner, and the token runs afresh', async () => {
      const forget = store.forget?.bind(store);
      if (!forget) {
        expect(store.forget).toBeUndefined();
        return;
      }
      await claim(token(), 'owner-a', 'fp-1');
      await store.complete({ token: token(), owner: 'owner-a', ttlMs: 60_000 });
      const forgotten = await forget(token());
      expect(forgotten).toMatchObject({
        outcome: 'forgotten',
        record: { status: 'completed', owner: 'owner-a' },
      });
      expect(await store.get(token())).toBeUndefined();
      expect(await claim(token(), 'owner-b')).toMatchObject({ status: 'claimed', takeover: false });
      expect(await forget(token('NEVER-HELD'))).toEqual({ outcome: 'absent' });
    });

    it('forget refuses a live claim unless forced; a lapsed claim goes without force', async () => {
      const forget = store.forget?.bind(store);
      if (!forget) {
        expect(store.forget).toBeUndefined();
        return;
      }
      await claim(token('LIVE'), 'owner-a');
      const refused = await forget(token('LIVE'));
      expect(refused).toMatchObject({
        outcome: 'refused',
        reason: 'liveClaim',
        record: { owner: 'owner-a' },
      });
      expect(await store.get(token('LIVE'))).toMatchObject({ status: 'inProgress', owner: 'owner-a' });
      expect(await forget(token('LIVE'), { force: true })).toMatchObject({ outcome: 'forgotten' });
      expect(await store.get(token('LIVE'))).toBeUndefined();
      // The stale owner finds no claim: its completion writes nothing.
      await expect(store.complete({ token: token('LIVE'), owner: 'owner-a', ttlMs: 60_000 })).resolves.toBe(
        false,
      );

      await claim(token('LAPSED'), 'owner-b');
      await h.advance(lease + 50);
      expect(await forget(token('LAPSED'))).toMatchObject({
        outcome: 'forgotten',
        record: { owner: 'owner-b' },
      });
      expect(await claim(token('LAPSED'), 'owner-c')).toMatchObject({ status: 'claimed', takeover: false });
    });

    it('forget with dryRun answers as forget would and deletes nothing', async () => {
      const forget = store.forget?.bind(store);
      if (!forget) {
        expect(store.forget).toBeUndefined();
        return;
      }
      await claim(token('DONE'), 'owner-a');
      await store.complete({ token: token('DONE'), owner: 'owner-a', ttlMs: 60_000 });
      await claim(token('LIVE'), 'owner-b');
      expect(await forget(token('DONE'), { dryRun: true })).toMatchObject({ outcome: 'forgotten' });
      expect(await forget(token('LIVE'), { dryRun: true })).toMatchObject({ outcome: 'refused' });
      expect(await forget(token('LIVE'), { dryRun: true, force: true })).toMatchObject({
        outcome: 'forgotten',
      });
      expect((await store.getMany([token('DONE'), token('LIVE')])).map((r) => r?.status)).toEqual([
        'completed',
        'inProgress',
      ]);
    });

    it("stats counts one scope's records by status, lapsed, expired and expiring soon, and names the oldest", async () => {
      const stats = store.stats?.bind(store);
      if (!stats) {
        expect(store.stats).toBeUndefined();
        return;
      }
      const done = async (key: string, ttlMs: number) => {
        await claim(token(key), 'o');
        await store.complete({ token: token(key), owner: 'o', ttlMs });
      };
      expect(await stats({ scope })).toMatchObject({ scope, inProgress: 0, completed: 0, expired: 0 });
      await done('OLD', 48 * 3_600_000); // outside the 24 h window
      await h.advance(5);
      await claim(token('LAPSED'), 'o');
      await h.advance(5);
      await done('EXPIRED', lease);
      await done('SOON', 3_600_000);
      await h.advance(lease + 50);
      // A long lease: on a slow machine a short one could lapse before the count, and count twice.
      await store.claim({ token: token('LIVE'), owner: 'o', leaseMs: 60_000 });
      await claim(token('ELSEWHERE', uniqueScope()), 'o');
      const counted = await stats({ scope });
      expect(counted).toMatchObject({
        scope,
        inProgress: 2,
        completed: 3,
        lapsedClaims: 1,
        expired: 1,
        expiringWithinMs: 86_400_000,
        expiringSoon: 1,
      });
      expect(counted.now).toBeTypeOf('number');
      expect(counted.oldest).toMatchObject({ scope, key: 'OLD', status: 'completed' });
      expect(counted.oldestInProgress).toMatchObject({ scope, key: 'LAPSED', status: 'inProgress' });
      expect(await stats({ scope, expiringWithinMs: 0 })).toMatchObject({
        expiringSoon: 0,
        expiringWithinMs: 0,
      });
    });
  });
}
