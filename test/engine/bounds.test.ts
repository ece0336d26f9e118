import {
  HandlerTimeoutError,
  type IdempotencyContext,
  IdempotencyInFlightError,
  Idempotent,
  LeaseLostError,
  MemoryIdempotencyStore,
  type MemoryTransaction,
} from '@idempotent-mq/core';
import { FaultyStore, flush } from '@idempotent-mq/testing';
import { injectable } from 'inversify';
import { describe, expect, it } from 'vitest';
import { deferred, harness, type Message, msg, renewalsOf, settle } from '../support/engine-harness.js';

const LEASE = 1_000;

/** A memory store whose failures marked `transient` the engine may rerun, as a SQL store's deadlocks. */
class DeadlockingStore extends MemoryIdempotencyStore {
  isTransient(error: unknown): boolean {
    return (error as { transient?: unknown } | null)?.transient === true;
  }
}
const deadlock = () =>
  Object.assign(new Error('Deadlock found when trying to get lock'), { transient: true });

describe('a handler is bounded: maxHandlerMs and keepAlive', () => {
  it('a hung lease-mode handler is given up on after maxHandlerMs; its claim is left to expire and be taken over', async () => {
    const hang = deferred();
    const contexts: IdempotencyContext[] = [];
    @injectable()
    class Hung {
      @Idempotent({ key: (m: Message) => m.keys, mode: 'lease', leaseMs: LEASE, maxHandlerMs: 3 * LEASE })
      async onMessage(_m: Message, ctx: IdempotencyContext) {
        contexts.push(ctx);
        if (contexts.length === 1) await hang.promise; // a socket that never answers
      }
    }
    const h = harness();
    const consumer = h.get(Hung);
    const first = settle(consumer.onMessage(msg('H-1')));
    await flush();
    // Renewed while within its bound: a copy meets a live claim.
    await h.clock.advance(2 * LEASE);
    expect(((await settle(consumer.onMessage(msg('H-1')))) as { error: unknown }).error).toBeInstanceOf(
      IdempotencyInFlightError,
    );
    await h.clock.advance(LEASE + 1);
    expect(((await first) as { error: unknown }).error).toBeInstanceOf(HandlerTimeoutError);
    // Given up on, not released: the hung handler may still act, so the next copy waits for the lease.
    expect(await h.store.get(h.outcomes[0]?.token as never)).toMatchObject({
      status: 'inProgress',
      fence: 1,
    });
    // Renewal stopped with the bound: a lease later nothing was renewed, and no timer is left.
    const renewals = renewalsOf(h.store);
    await h.clock.advance(LEASE + 1);
    expect(renewals).toEqual([]);
    expect(h.clock.pending).toBe(0);
    await consumer.onMessage(msg('H-1'));
    expect(contexts[1]).toMatchObject({ takeover: true, fence: 2 });
    expect(h.outcomes.map((o) => o.kind)).toEqual(['inFlight', 'failed', 'takeover']);
    hang.resolve();
  });

  it('a hung handler past its bound cannot complete: the takeover fenced it', async () => {
    const hang = deferred();
    let runs = 0;
    @injectable()
    class Late {
      @Idempotent({ key: (m: Message) => m.keys, mode: 'lease', leaseMs: LEASE, keepAlive: false })
      async onMessage(_m: Message) {
        if (++runs === 1) await hang.promise;
      }
    }
    const h = harness({ store: (clock) => new FaultyStore(new MemoryIdempotencyStore({ clock })) });
    const consumer = h.get(Late);
    const first = settle(consumer.onMessage(msg('H-2')));
    await flush();
    // keepAlive: false — no renewal at all, and the bound is one lease.
    await h.clock.advance(LEASE + 1);
    expect(((await first) as { error: unknown }).error).toBeInstanceOf(HandlerTimeoutError);
    expect(h.store.faults.calls.get('renew') ?? 0).toBe(0);
    await consumer.onMessage(msg('H-2'));
    expect(h.outcomes.map((o) => o.kind)).toEqual(['failed', 'takeover']);
    hang.resolve();
    await flush();
    expect(await h.store.get(h.outcomes[1]?.token as never)).toMatchObject({ status: 'completed', fence: 2 });
  });

  it('a transactional handler past maxHandlerMs has its transaction rolled back: the token is free at once', async () => {
    const hang = deferred();
    const effects: string[] = [];
    let runs = 0;
    @injectable()
    class Stuck {
      @Idempotent({ key: (m: Message) => m.keys, leaseMs: LEASE, maxHandlerMs: 2 * LEASE })
      async onMessage(m: Message, ctx: IdempotencyContext<MemoryTransaction>) {
        const run = ++runs;
        effects.push(`${m.keys[0]}#${run}`);
        ctx.trx.onRollback(() => effects.splice(effects.indexOf(`${m.keys[0]}#${run}`), 1));
        if (run === 1) await hang.promise;
      }
    }
    const h = harness();
    const consumer = h.get(Stuck);
    const first = settle(consumer.onMessage(msg('H-3')));
    await flush();
    await h.clock.advance(2 * LEASE + 1);
    expect(((await first) as { error: unknown }).error).toBeInstanceOf(HandlerTimeoutError);
    expect(effects).toEqual([]);
    await consumer.onMessage(msg('H-3'));
    expect(effects).toEqual(['H-3#2']);
    expect(h.outcomes.map((o) => o.kind)).toEqual(['failed', 'processed']);
    hang.resolve();
  });

  it('the bounds and renewals of many handlers share one timer per length, not one each', async () => {
    @injectable()
    class Quick {
      runs = 0;
      @Idempotent({ key: (m: Message) => m.keys, mode: 'lease', leaseMs: LEASE, maxHandlerMs: 3 * LEASE })
      async onMessage(_m: Message) {
        this.runs++;
      }
    }
    const h = harness();
    const armed: number[] = [];
    const setTimeout = h.clock.setTimeout.bind(h.clock);
    h.clock.setTimeout = (fn: () => void, ms: number) => {
      armed.push(ms);
      return setTimeout(fn, ms);
    };
    const consumer = h.get(Quick);
    for (let i = 0; i < 200; i++) await consumer.onMessage(msg(`Q-${i}`));
    expect(consumer.runs).toBe(200);
    // Each handler had a bound (3 leases) and a renewal (a third of a lease) pending while it ran: two
    // lanes, one timer each. A timer per handler and per renewal would be 400.
    expect(armed.sort()).toEqual([3 * LEASE, Math.round(LEASE / 3)].sort());
    await h.clock.advance(3 * LEASE);
    expect(h.clock.pending).toBe(0);
  });

  it('maxHandlerMs and keepAlive are validated, naming the option', () => {
    expect(() => {
      @injectable()
      class Bad {
        @Idempotent({ key: (m: Message) => m.keys, maxHandlerMs: 0 })
        async onMessage(_m: Message) {}
      }
      return Bad;
    }).toThrow('"@Idempotent(Bad.onMessage).maxHandlerMs"');
    expect(() => {
      @injectable()
      class Worse {
        @Idempotent({ key: (m: Message) => m.keys, keepAlive: 'no' as never })
        async onMessage(_m: Message) {}
      }
      return Worse;
    }).toThrow('"@Idempotent(Worse.onMessage).keepAlive"');
  });
});

describe('transient failures are retried in place', () => {
  it('a transaction that deadlocks is rerun at once, handler and all, and the message is processed on its delivery', async () => {
    let runs = 0;
    const committed: number[] = [];
    @injectable()
    class Charges {
      @Idempotent({ key: (m: Message) => m.keys })
      async onMessage(_m: Message, ctx: IdempotencyContext<MemoryTransaction>) {
        const run = ++runs;
        ctx.trx.onCommit(() => committed.push(run));
        if (run <= 2) throw deadlock();
        expect(ctx.replay).toBe(true);
      }
    }
    const h = harness({ store: (clock) => new DeadlockingStore({ clock }) });
    const consumer = h.get(Charges);
    const done = consumer.onMessage(msg('T-1'));
    for (let i = 0; i < 5; i++) await h.clock.advance(300);
    await done;
    expect(runs).toBe(3);
    expect(committed).toEqual([3]);
    expect(h.outcomes).toHaveLength(1);
    expect(h.outcomes[0]).toMatchObject({ kind: 'processed', transientRetries: 2 });
  });

  it('past transientRetries the deadlock goes back to the broker as a failure', async () => {
    @injectable()
    class Always {
      @Idempotent({ key: (m: Message) => m.keys, transientRetries: 1 })
      async onMessage(_m: Message) {
        throw deadlock();
      }
    }
    const h = harness({ store: (clock) => new DeadlockingStore({ clock }) });
    const consumer = h.get(Always);
    const done = settle(consumer.onMessage(msg('T-2')));
    for (let i = 0; i < 3; i++) await h.clock.advance(300);
    expect(((await done) as { error: Error }).error.message).toContain('Deadlock');
    expect(h.outcomes[0]).toMatchObject({ kind: 'failed', transientRetries: 1 });
  });

  it('in lease mode a handler that started is never rerun in place: its effects are outside the store', async () => {
    let runs = 0;
    @injectable()
    class Outside {
      @Idempotent({ key: (m: Message) => m.keys, mode: 'lease' })
      async onMessage(_m: Message) {
        runs++;
        throw deadlock();
      }
    }
    const h = harness({ store: (clock) => new DeadlockingStore({ clock }) });
    await settle(h.get(Outside).onMessage(msg('T-3')));
    expect(runs).toBe(1);
    expect(h.outcomes[0]?.transientRetries).toBeUndefined();
  });

  it('a failure the store does not call transient is not retried', async () => {
    let runs = 0;
    @injectable()
    class Plain {
      @Idempotent({ key: (m: Message) => m.keys })
      async onMessage(_m: Message) {
        runs++;
        throw new LeaseLostError({ scope: 's', key: 'k' }, 'o');
      }
    }
    const h = harness({ store: (clock) => new DeadlockingStore({ clock }) });
    await settle(h.get(Plain).onMessage(msg('T-4')));
    expect(runs).toBe(1);
  });
});
