import {
  type ClaimRequest,
  type IdempotencyCache,
  type IdempotencyContext,
  type IdempotencyRecord,
  IdempotencyStoreError,
  Idempotent,
  InconsistentStateError,
  MemoryIdempotencyCache,
  MemoryIdempotencyStore,
  type MemoryTransaction,
  StoreUnavailableError,
} from '@idempotent-mq/core/adapter';
import { type FakeClock, FaultyCache, FaultyStore, flush } from '@idempotent-mq/testing';
import { injectable } from 'inversify';
import { describe, expect, it } from 'vitest';
import { harness, type Message, msg, settle } from '../support/engine-harness.js';

const LEASE = 1_000;
const faultyStore = (clock: FakeClock) => new FaultyStore(new MemoryIdempotencyStore({ clock }));
const faultyCache = (clock: FakeClock) => new FaultyCache(new MemoryIdempotencyCache({ clock }));
const unavailable = () =>
  new StoreUnavailableError('claim', undefined, new Error('ECONNREFUSED 127.0.0.1:5432'));

function consumerClass(mode: 'lease' | 'transactional', extra: object = {}) {
  const ledger: string[] = [];
  @injectable()
  class Consumer {
    runs = 0;
    @Idempotent({ key: (m: Message) => m.keys, leaseMs: LEASE, mode, ...extra })
    async onMessage(m: Message, ctx: IdempotencyContext<MemoryTransaction | undefined>) {
      this.runs++;
      ledger.push(m.keys[0] as string);
      ctx.trx?.onRollback(() => ledger.pop());
    }
  }
  return { Consumer, ledger };
}

describe('when the store fails', () => {
  it('a failing claim is a typed error carrying its cause; the handler does not run', async () => {
    const h = harness({ store: faultyStore });
    const cause = new Error('deadlock detected');
    h.store.faults.inject('claim', { fail: cause }, 1);
    const { Consumer } = consumerClass('lease');
    const consumer = h.get(Consumer);
    const r = await settle(consumer.onMessage(msg('S-1')));
    const error = (r as { error: IdempotencyStoreError }).error;
    expect(error).toBeInstanceOf(IdempotencyStoreError);
    expect(error).toMatchObject({ step: 'claim', cause, code: 'STORE_FAILED' });
    expect(consumer.runs).toBe(0);
    await consumer.onMessage(msg('S-1'));
    expect(consumer.runs).toBe(1);
  });

  it('store unavailable, fail-closed (the default): the message fails and is redelivered later', async () => {
    const h = harness({ store: faultyStore });
    h.store.faults.inject('claim', { fail: unavailable() }, 1);
    const { Consumer } = consumerClass('lease');
    const consumer = h.get(Consumer);
    const r = await settle(consumer.onMessage(msg('S-2')));
    expect((r as { error: unknown }).error).toBeInstanceOf(StoreUnavailableError);
    expect(consumer.runs).toBe(0);
  });

  it('store unavailable, fail-open: the handler runs unprotected, and the outcome says so', async () => {
    const h = harness({ store: faultyStore, module: { onStoreUnavailable: 'failOpen' } });
    h.store.faults.inject('claim', { fail: unavailable() }, 1);
    const { Consumer } = consumerClass('lease');
    const consumer = h.get(Consumer);
    await consumer.onMessage(msg('S-3'));
    expect(consumer.runs).toBe(1);
    expect(h.outcomes[0]).toMatchObject({ kind: 'processed', unprotected: true });
  });

  it('a duplicate-key error is never taken for "unavailable": fail-open does not run a duplicate twice', async () => {
    const h = harness({ store: faultyStore, module: { onStoreUnavailable: 'failOpen' } });
    const { Consumer } = consumerClass('lease');
    const consumer = h.get(Consumer);
    await consumer.onMessage(msg('S-4'));
    await h.cache.delete(h.outcomes[0]?.token as never);
    const pgUniqueViolation = Object.assign(new Error('duplicate key value violates unique constraint'), {
      code: '23505',
    });
    h.store.faults.inject('claim', { fail: pgUniqueViolation });
    const r = await settle(consumer.onMessage(msg('S-4')));
    expect((r as { error: unknown }).error).toBeInstanceOf(IdempotencyStoreError);
    expect((r as { error: unknown }).error).not.toBeInstanceOf(StoreUnavailableError);
    expect(consumer.runs).toBe(1);
  });

  it('fail-open never reruns a handler that has run: an unavailable store at completion fails the message', async () => {
    const h = harness({ store: faultyStore, module: { onStoreUnavailable: 'failOpen' } });
    h.store.faults.inject(
      'complete',
      { fail: new StoreUnavailableError('complete', undefined, new Error('ECONNRESET')) },
      1,
    );
    const { Consumer } = consumerClass('lease');
    const consumer = h.get(Consumer);
    const r = await settle(consumer.onMessage(msg('S-4b')));
    expect((r as { error: unknown }).error).toBeInstanceOf(StoreUnavailableError);
    expect(consumer.runs).toBe(1);
    expect(h.outcomes[0]).toMatchObject({ kind: 'failed', unprotected: false });
  });

  it('a failing completion (lease mode) leaves the claim to expire; the redelivery then takes over', async () => {
    const h = harness({ store: faultyStore });
    h.store.faults.inject('complete', { fail: new Error('connection reset') }, 1);
    const { Consumer } = consumerClass('lease');
    const consumer = h.get(Consumer);
    const r = await settle(consumer.onMessage(msg('S-5')));
    expect((r as { error: unknown }).error).toMatchObject({ step: 'complete' });
    const early = await settle(consumer.onMessage(msg('S-5')));
    expect(early.ok).toBe(false);
    await h.clock.advance(LEASE + 1);
    await consumer.onMessage(msg('S-5'));
    expect(h.outcomes.map((o) => o.kind)).toEqual(['failed', 'inFlight', 'takeover']);
  });

  it('a failing completion inside a transaction rolls the business write back; the redelivery does it once', async () => {
    const h = harness({ store: faultyStore });
    h.store.faults.inject('complete', { fail: new Error('connection reset') }, 1);
    const { Consumer, ledger } = consumerClass('transactional');
    const consumer = h.get(Consumer);
    expect((await settle(consumer.onMessage(msg('S-6')))).ok).toBe(false);
    expect(ledger).toEqual([]);
    await consumer.onMessage(msg('S-6'));
    await consumer.onMessage(msg('S-6'));
    expect(ledger).toEqual(['S-6']);
  });

  it('a failing commit rolls back, writes no cache entry, and the redelivery does the work once', async () => {
    const h = harness({ store: faultyStore, cache: faultyCache });
    h.store.faults.inject('commit', { fail: new Error('could not serialize access') }, 1);
    const { Consumer, ledger } = consumerClass('transactional');
    const consumer = h.get(Consumer);
    const r = await settle(consumer.onMessage(msg('S-7')));
    expect(r.ok).toBe(false);
    expect(ledger).toEqual([]);
    expect(await h.cache.inner.get({ scope: h.outcomes[0]?.scope as string, key: 'S-7' })).toBeUndefined();
    await consumer.onMessage(msg('S-7'));
    expect(ledger).toEqual(['S-7']);
  });

  it('a failing release rethrows the handler error, reports the release error, and the claim expires', async () => {
    const h = harness({ store: faultyStore });
    const releaseFailure = new Error('socket hang up');
    h.store.faults.inject('release', { fail: releaseFailure }, 1);
    @injectable()
    class Failing {
      runs = 0;
      @Idempotent({ key: (m: Message) => m.keys, leaseMs: LEASE, mode: 'lease' })
      async onMessage(_m: Message) {
        if (this.runs++ === 0) throw new Error('handler failed');
      }
    }
    const consumer = h.get(Failing);
    const r = await settle(consumer.onMessage(msg('S-8')));
    expect((r as { error: Error }).error.message).toBe('handler failed');
    expect(h.outcomes[0]?.releaseError).toMatchObject({ step: 'release', cause: releaseFailure });
    await h.clock.advance(LEASE + 1);
    await consumer.onMessage(msg('S-8'));
    expect(h.outcomes.map((o) => o.kind)).toEqual(['failed', 'takeover']);
  });

  it('a claim that loses the insert and then finds the row gone claims again', async () => {
    class RacyStore extends MemoryIdempotencyStore {
      interference = 0;
      protected override async insertIfAbsent(request: ClaimRequest) {
        if (this.interference > 0) {
          // Another copy claims first, and releases just before our read-back.
          await super.insertIfAbsent({ ...request, owner: 'other' });
        }
        return super.insertIfAbsent(request);
      }
      protected override async find(token: ClaimRequest['token']): Promise<IdempotencyRecord | undefined> {
        if (this.interference > 0) {
          this.interference--;
          await this.release(token, 'other');
        }
        return super.find(token);
      }
    }
    const racy = new RacyStore({ maxClaimAttempts: 3 });
    racy.interference = 2;
    const ok = await racy.claim({ token: { scope: 's', key: 'k' }, owner: 'me', leaseMs: LEASE });
    expect(ok).toMatchObject({ status: 'claimed', record: { owner: 'me' } });

    racy.interference = 3;
    await expect(
      racy.claim({ token: { scope: 's', key: 'k2' }, owner: 'me', leaseMs: LEASE }),
    ).rejects.toBeInstanceOf(InconsistentStateError);
  });
});

describe('when the cache fails', () => {
  it('a cache that errors is bypassed: the store decides, and the outcome says the cache was skipped', async () => {
    const h = harness({ cache: faultyCache });
    const { Consumer } = consumerClass('transactional');
    const consumer = h.get(Consumer);
    await consumer.onMessage(msg('C-1'));
    h.cache.faults.inject('get', { fail: new Error('ECONNREFUSED 127.0.0.1:6379') });
    await consumer.onMessage(msg('C-1'));
    expect(consumer.runs).toBe(1);
    expect(h.outcomes[1]).toMatchObject({ kind: 'duplicate', tier: 'store', cacheBypassed: true });
  });

  it('a cache that hangs is abandoned after cacheTimeoutMs, and never decides a duplicate', async () => {
    const h = harness({ cache: faultyCache, module: { cacheTimeoutMs: 50 } });
    h.cache.faults.inject('get', { hang: true });
    const { Consumer } = consumerClass('transactional');
    const consumer = h.get(Consumer);
    const pending = consumer.onMessage(msg('C-2'));
    await flush();
    expect(consumer.runs).toBe(0);
    await h.clock.advance(50);
    await pending;
    expect(consumer.runs).toBe(1);
    expect(h.outcomes[0]).toMatchObject({ kind: 'processed', cacheBypassed: true });
  });

  it('a cache write that fails after commit changes nothing: the store still knows', async () => {
    const h = harness({ cache: faultyCache });
    h.cache.faults.inject('set', { fail: new Error('OOM command not allowed') });
    const { Consumer } = consumerClass('transactional');
    const consumer = h.get(Consumer);
    await consumer.onMessage(msg('C-3'));
    await consumer.onMessage(msg('C-3'));
    expect(consumer.runs).toBe(1);
    expect(h.outcomes.map((o) => [o.kind, o.tier])).toEqual([
      ['processed', undefined],
      ['duplicate', 'store'],
    ]);
  });

  it('the cache is written only after the store has committed', async () => {
    const h = harness({ cache: faultyCache });
    let seenDuringHandler: unknown = 'unset';
    @injectable()
    class Peek {
      @Idempotent({ key: (m: Message) => m.keys })
      async onMessage(_m: Message, ctx: IdempotencyContext) {
        seenDuringHandler = await h.cache.inner.get(ctx.token);
      }
    }
    await h.get(Peek).onMessage(msg('C-4'));
    expect(seenDuringHandler).toBeUndefined();
    expect(h.cache.faults.calls.get('set')).toBe(1);
    expect(await h.cache.inner.get(h.outcomes[0]?.token as never)).toBeDefined();
  });
});

describe('a cache in another process (not inProcess)', () => {
  it('bounds every read and write, the bounds of many messages sharing one timer', async () => {
    const h = harness({ cache: faultyCache, store: faultyStore, module: { cacheTimeoutMs: 4321 } });
    expect((h.cache as IdempotencyCache).inProcess).toBeFalsy();
    const bounds = countTimers(h.clock, 4321);
    const { Consumer } = consumerClass('lease', { keepAlive: false });
    const consumer = h.get(Consumer);
    for (let i = 0; i < 50; i++) await consumer.onMessage(msg(`NP-${i % 25}`));
    await flush();
    expect(consumer.runs).toBe(25);
    expect(h.outcomes.filter((o) => o.kind === 'duplicate' && o.tier === 'cache')).toHaveLength(25);
    // 50 reads and 25 writes were bounded: a timer each would be 75.
    expect(bounds.count).toBe(1);
    // And still bounded: a read that hangs is given up on at cacheTimeoutMs, and the store decides.
    h.cache.faults.inject('get', { hang: true });
    const pending = consumer.onMessage(msg('NP-0'));
    await flush();
    await h.clock.advance(4321);
    await pending;
    expect(h.outcomes.at(-1)).toMatchObject({ kind: 'duplicate', tier: 'store', cacheBypassed: true });
  });
});

describe('an in-process cache (inProcess)', () => {
  it('is not bounded in time, and a copy right after a first-time message meets its entry, not the store', async () => {
    const h = harness({
      cache: (clock) => new MemoryIdempotencyCache({ clock }),
      store: faultyStore,
      module: { cacheTimeoutMs: 4321 },
    });
    expect(h.cache.inProcess).toBe(true);
    const bounds = countTimers(h.clock, 4321);
    const { Consumer } = consumerClass('transactional', { keepAlive: false });
    const consumer = h.get(Consumer);
    await consumer.onMessage(msg('IP-1'));
    await flush();
    // No bound was armed for the cache's read or its write.
    expect(bounds.count).toBe(0);
    const claims = h.store.faults.calls.get('claim') ?? 0;
    await consumer.onMessage(msg('IP-1'));
    expect(h.outcomes.map((o) => [o.kind, o.tier])).toEqual([
      ['processed', undefined],
      ['duplicate', 'cache'],
    ]);
    expect(h.store.faults.calls.get('claim') ?? 0).toBe(claims);
  });

  it('a cache behind a connection (FaultyCache, not inProcess) stays bounded: a hung read is given up after cacheTimeoutMs', async () => {
    const h = harness({ cache: faultyCache, store: faultyStore, module: { cacheTimeoutMs: 50 } });
    expect((h.cache as { inProcess?: boolean }).inProcess).toBeUndefined();
    const bounds = countTimers(h.clock, 50);
    h.cache.faults.inject('get', { hang: true });
    const { Consumer } = consumerClass('transactional');
    const consumer = h.get(Consumer);
    const pending = consumer.onMessage(msg('IP-2'));
    await flush();
    expect(consumer.runs).toBe(0);
    await h.clock.advance(50);
    await pending;
    expect(consumer.runs).toBe(1);
    await flush();
    expect(bounds.count).toBe(2); // the read, and the write after the commit
  });
});

/** Counts the timers armed on `clock` for `ms`: the engine's bounds of cache calls. */
function countTimers(clock: FakeClock, ms: number): { count: number } {
  const seen = { count: 0 };
  const setTimeout = clock.setTimeout.bind(clock);
  clock.setTimeout = (fn: () => void, after: number) => {
    if (after === ms) seen.count++;
    return setTimeout(fn, after);
  };
  return seen;
}

describe('when the cache hangs on a write', () => {
  it('a copy that comes while the write is on its way is answered as the cache will answer it, not by the store', async () => {
    const h = harness({ cache: faultyCache, store: faultyStore, module: { cacheTimeoutMs: 50 } });
    h.cache.faults.inject('set', { hang: true });
    const { Consumer } = consumerClass('transactional');
    const consumer = h.get(Consumer);
    const first = consumer.onMessage(msg('W-2'));
    expect(await Promise.race([first.then(() => 'answered'), flush().then(() => 'held')])).toBe('answered');
    const claims = h.store.faults.calls.get('claim') ?? 0;
    await consumer.onMessage(msg('W-2'));
    expect(consumer.runs).toBe(1);
    expect(h.outcomes.map((o) => [o.kind, o.tier])).toEqual([
      ['processed', undefined],
      ['duplicate', 'cache'],
    ]);
    expect(h.store.faults.calls.get('claim') ?? 0).toBe(claims);
    await h.clock.advance(50);
  });

  it('the message is answered at commit, not held by the write, which is abandoned after cacheTimeoutMs', async () => {
    const h = harness({ cache: faultyCache, module: { cacheTimeoutMs: 50 } });
    h.cache.faults.inject('set', { hang: true });
    const { Consumer } = consumerClass('transactional');
    const consumer = h.get(Consumer);
    const pending = consumer.onMessage(msg('W-1'));
    // No time passes: the engine answers once the store has committed, whatever the cache does.
    const first = await Promise.race([
      pending.then(() => 'answered'),
      flush().then(() => 'held by the cache'),
    ]);
    expect(first).toBe('answered');
    expect(consumer.runs).toBe(1);
    expect(h.outcomes[0]).toMatchObject({ kind: 'processed' });
    expect(await h.store.get(h.outcomes[0]?.token as never)).toMatchObject({ status: 'completed' });
    // The write is still bounded: abandoned after cacheTimeoutMs, and the cache reported down once.
    expect(h.logger.at('warn')).toEqual([]);
    await h.clock.advance(50);
    await flush();
    expect(h.logger.at('warn')).toEqual([expect.stringContaining('the cache is out of reach')]);
    // A later copy is decided by the store, never by the hung cache.
    await consumer.onMessage(msg('W-1'));
    expect(consumer.runs).toBe(1);
  });
});
