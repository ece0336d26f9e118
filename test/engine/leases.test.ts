import {
  deliveryInfo,
  type IdempotencyContext,
  IdempotencyInFlightError,
  Idempotent,
  LeaseLostError,
  MemoryIdempotencyStore,
  MemoryTransaction,
  type TokenRef,
} from '@idempotent-mq/core';
import { FaultyStore, flush } from '@idempotent-mq/testing';
import { injectable } from 'inversify';
import { describe, expect, it } from 'vitest';
import { deferred, harness, type Message, msg, renewalsOf, settle } from '../support/engine-harness.js';

const LEASE = 1_000;

describe('leases, keep-alive and takeover', () => {
  it('a slow but live handler keeps its lease: a copy arriving much later is in flight, not a takeover', async () => {
    const gate = deferred();
    @injectable()
    class Slow {
      runs = 0;
      @Idempotent({ key: (m: Message) => m.keys, leaseMs: LEASE, mode: 'lease', maxHandlerMs: LEASE * 10 })
      async onMessage(_m: Message) {
        this.runs++;
        await gate.promise;
      }
    }
    const h = harness();
    const consumer = h.get(Slow);
    const first = consumer.onMessage(msg('K-1'));
    await flush();
    expect(consumer.runs).toBe(1);
    await h.clock.advance(LEASE * 5);
    const late = await settle(consumer.onMessage(msg('K-1')));
    expect((late as { error: unknown }).error).toBeInstanceOf(IdempotencyInFlightError);
    gate.resolve();
    await first;
    expect(consumer.runs).toBe(1);
    expect(h.outcomes.map((o) => o.kind)).toEqual(['inFlight', 'processed']);
    // The keep-alive stopped with the handler: nothing is renewed after it, and once the handler's bound
    // has passed (its shared timer fires, finds nothing due, and is not armed again) no timer is left.
    const renewals = renewalsOf(h.store);
    await h.clock.advance(LEASE * 10);
    expect(renewals).toEqual([]);
    expect(h.clock.pending).toBe(0);
  });

  it('a store that throws on renew (instead of rejecting) costs one renewal, not the keep-alive', async () => {
    const gate = deferred();
    @injectable()
    class Slow {
      @Idempotent({ key: (m: Message) => m.keys, leaseMs: LEASE, mode: 'lease', maxHandlerMs: LEASE * 10 })
      async onMessage(_m: Message) {
        await gate.promise;
      }
    }
    const h = harness();
    const renew = h.store.renew.bind(h.store);
    let calls = 0;
    h.store.renew = (token: TokenRef, owner: string, leaseMs: number) => {
      calls++;
      if (calls === 1) throw new Error('renew blew up');
      return renew(token, owner, leaseMs);
    };
    const first = h.get(Slow).onMessage(msg('T-1'));
    await flush();
    await h.clock.advance(LEASE * 2);
    // The first renewal threw; the keep-alive went on, so the claim is still live two leases later.
    expect(h.logger.at('warn')).toEqual([expect.stringContaining('lease renewal failed')]);
    expect(calls).toBeGreaterThanOrEqual(3);
    const copy = await settle(h.get(Slow).onMessage(msg('T-1')));
    expect((copy as { error: unknown }).error).toBeInstanceOf(IdempotencyInFlightError);
    gate.resolve();
    await first;
    expect(h.outcomes.map((o) => o.kind)).toEqual(['inFlight', 'processed']);
  });

  it('a dead handler stops renewing: its lease expires, a copy takes over, and the stale owner cannot complete', async () => {
    const gate = deferred();
    const contexts: IdempotencyContext[] = [];
    @injectable()
    class Hung {
      @Idempotent({ key: (m: Message) => m.keys, leaseMs: LEASE, mode: 'lease' })
      async onMessage(_m: Message, ctx: IdempotencyContext) {
        contexts.push(ctx);
        if (contexts.length === 1) await gate.promise;
      }
    }
    const h = harness({ store: (clock) => new FaultyStore(new MemoryIdempotencyStore({ clock })) });
    // The first owner's process is wedged: its renewals never reach the store.
    h.store.faults.inject('renew', { fail: new Error('process frozen') });
    const consumer = h.get(Hung);
    const stale = consumer.onMessage(msg('K-2'));
    await flush();
    expect(contexts).toHaveLength(1);
    await h.clock.advance(LEASE + 1);
    await consumer.onMessage(msg('K-2'));
    expect(contexts[1]).toMatchObject({ takeover: true, replay: true, fence: 2 });
    gate.resolve();
    const result = await settle(stale);
    expect((result as { error: unknown }).error).toBeInstanceOf(LeaseLostError);
    expect(h.outcomes.map((o) => o.kind)).toEqual(['takeover', 'failed']);
    expect(await h.store.get(h.outcomes[0]?.token as never)).toMatchObject({ status: 'completed', fence: 2 });
  });

  it('in a transaction, a stale owner is refused at completion and its business writes roll back', async () => {
    const gate = deferred();
    const ledger: string[] = [];
    let calls = 0;
    @injectable()
    class Charges {
      @Idempotent({ key: (m: Message) => m.keys, leaseMs: LEASE })
      async onMessage(m: Message, ctx: IdempotencyContext<MemoryTransaction>) {
        const n = ++calls;
        ledger.push(`${m.keys[0]}#${n}`);
        ctx.trx.onRollback(() => ledger.splice(ledger.indexOf(`${m.keys[0]}#${n}`), 1));
        if (n === 1) await gate.promise;
      }
    }
    const h = harness({ store: (clock) => new FaultyStore(new MemoryIdempotencyStore({ clock })) });
    h.store.faults.inject('renew', { fail: new Error('process frozen') });
    const consumer = h.get(Charges);
    const stale = consumer.onMessage(msg('K-3'));
    await flush();
    expect(calls).toBe(1);
    await h.clock.advance(LEASE + 1);
    await consumer.onMessage(msg('K-3'));
    gate.resolve();
    expect((await settle(stale)).ok).toBe(false);
    expect(ledger).toEqual(['K-3#2']);
    expect(h.outcomes.map((o) => o.kind)).toEqual(['takeover', 'failed']);
    expect(h.outcomes[1]?.error).toBeInstanceOf(LeaseLostError);
  });

  it("onFailure: 'keep' keeps a failed claim until its lease expires, then a copy takes over", async () => {
    @injectable()
    class Keeper {
      runs = 0;
      @Idempotent({ key: (m: Message) => m.keys, leaseMs: LEASE, mode: 'lease', onFailure: 'keep' })
      async onMessage(_m: Message) {
        if (this.runs++ === 0) throw new Error('downstream 503');
      }
    }
    const h = harness();
    const consumer = h.get(Keeper);
    await settle(consumer.onMessage(msg('K-4')));
    const early = await settle(consumer.onMessage(msg('K-4')));
    expect((early as { error: unknown }).error).toBeInstanceOf(IdempotencyInFlightError);
    await h.clock.advance(LEASE + 1);
    await consumer.onMessage(msg('K-4'));
    expect(consumer.runs).toBe(2);
    expect(h.outcomes.map((o) => o.kind)).toEqual(['failed', 'inFlight', 'takeover']);
  });

  it("onFailure: 'keepOnFinalAttempt' releases on earlier attempts and keeps on the last one", async () => {
    @injectable()
    class Final {
      @Idempotent({ key: (m: Message) => m.keys, mode: 'lease', onFailure: 'keepOnFinalAttempt' })
      async onMessage(_m: Message) {
        throw new Error('always');
      }
    }
    const h = harness();
    const consumer = h.get(Final);
    await settle(consumer.onMessage(msg('K-5'), deliveryInfo({ attempt: 1, maxAttempts: 3 })));
    expect(await h.store.get(h.outcomes[0]?.token as never)).toBeUndefined();
    await settle(consumer.onMessage(msg('K-5'), deliveryInfo({ attempt: 3, maxAttempts: 3 })));
    expect(await h.store.get(h.outcomes[0]?.token as never)).toMatchObject({ status: 'inProgress' });
    expect(h.outcomes.map((o) => o.attempt)).toEqual([1, 3]);
  });

  it("the default 'release' frees a failed claim at once, so the redelivery is not held back", async () => {
    @injectable()
    class Once {
      runs = 0;
      @Idempotent({ key: (m: Message) => m.keys, mode: 'lease' })
      async onMessage(_m: Message) {
        if (this.runs++ === 0) throw new Error('first try fails');
      }
    }
    const h = harness();
    const consumer = h.get(Once);
    await settle(consumer.onMessage(msg('K-6')));
    await consumer.onMessage(msg('K-6'));
    expect(h.outcomes.map((o) => o.kind)).toEqual(['failed', 'processed']);
  });

  it('a completed record expires after its ttl and the key is processed again', async () => {
    @injectable()
    class Short {
      runs = 0;
      @Idempotent({ key: (m: Message) => m.keys, ttlMs: 60_000 })
      async onMessage(_m: Message) {
        this.runs++;
      }
    }
    const h = harness();
    const consumer = h.get(Short);
    await consumer.onMessage(msg('K-7'));
    await h.clock.advance(59_000);
    await consumer.onMessage(msg('K-7'));
    await h.clock.advance(2_000);
    await consumer.onMessage(msg('K-7'));
    expect(consumer.runs).toBe(2);
  });
});
