import {
  type IdempotencyContext,
  IdempotencyInFlightError,
  Idempotent,
  MemoryTransaction,
  PayloadConflictError,
} from '@idempotent-mq/core';
import { injectable } from 'inversify';
import { describe, expect, it } from 'vitest';
import { deferred, harness, type Message, msg, settle } from '../support/engine-harness.js';

@injectable()
class Payments {
  charged: string[] = [];
  contexts: IdempotencyContext[] = [];

  @Idempotent({ key: (m: Message) => m.keys, storeResult: true })
  async onMessage(m: Message, ctx: IdempotencyContext) {
    this.contexts.push(ctx);
    this.charged.push(m.keys[0] as string);
    return { receipt: `R-${m.keys[0]}` };
  }
}

describe('the message path', () => {
  it('runs a first copy, and answers later copies as duplicates without calling the handler', async () => {
    const h = harness();
    const consumer = h.get(Payments);
    await expect(consumer.onMessage(msg('PAY-1'))).resolves.toEqual({ receipt: 'R-PAY-1' });
    await expect(consumer.onMessage(msg('PAY-1'))).resolves.toEqual({ receipt: 'R-PAY-1' });
    expect(consumer.charged).toEqual(['PAY-1']);
    expect(h.outcomes.map((o) => [o.kind, o.tier])).toEqual([
      ['processed', undefined],
      ['duplicate', 'cache'],
    ]);
  });

  it('the store catches a duplicate the cache has forgotten', async () => {
    const h = harness();
    const consumer = h.get(Payments);
    await consumer.onMessage(msg('PAY-2'));
    await h.cache.delete(h.outcomes[0]?.token as never);
    await expect(consumer.onMessage(msg('PAY-2'))).resolves.toEqual({ receipt: 'R-PAY-2' });
    expect(consumer.charged).toEqual(['PAY-2']);
    expect(h.outcomes[1]).toMatchObject({ kind: 'duplicate', tier: 'store' });
  });

  it('a void result completes the record, and replays as a duplicate', async () => {
    @injectable()
    class Silent {
      runs = 0;
      @Idempotent({ key: (m: Message) => m.keys, storeResult: true })
      async onMessage(_m: Message) {
        this.runs++;
      }
    }
    const h = harness();
    const consumer = h.get(Silent);
    await expect(consumer.onMessage(msg('V-1'))).resolves.toBeUndefined();
    await expect(consumer.onMessage(msg('V-1'))).resolves.toBeUndefined();
    expect(consumer.runs).toBe(1);
    expect(h.outcomes.map((o) => o.kind)).toEqual(['processed', 'duplicate']);
    expect(await h.store.get(h.outcomes[0]?.token as never)).toMatchObject({
      status: 'completed',
      result: undefined,
    });
  });

  it('results are not stored unless asked: a duplicate then answers undefined', async () => {
    @injectable()
    class NoResult {
      @Idempotent({ key: (m: Message) => m.keys })
      async onMessage(_m: Message) {
        return 42;
      }
    }
    const consumer = harness().get(NoResult);
    await expect(consumer.onMessage(msg('N-1'))).resolves.toBe(42);
    await expect(consumer.onMessage(msg('N-1'))).resolves.toBeUndefined();
  });

  it('hands the handler its token, attempt, transaction and whether it is a replay', async () => {
    const h = harness();
    const consumer = h.get(Payments);
    await consumer.onMessage(msg('CTX-1', { amount: 1 }, 3));
    const ctx = consumer.contexts[0] as IdempotencyContext;
    expect(ctx.token).toEqual({ scope: 'v1:Payments.onMessage', key: 'CTX-1' });
    expect(ctx).toMatchObject({ attempt: 3, replay: true, takeover: false, fence: 1, unprotected: false });
    expect(ctx.trx).toBeInstanceOf(MemoryTransaction);
  });

  it('a second copy in flight is told to retry later, not dropped; after the first completes it is a duplicate', async () => {
    const gate = deferred();
    @injectable()
    class Slow {
      runs = 0;
      @Idempotent({ key: (m: Message) => m.keys })
      async onMessage(_m: Message) {
        this.runs++;
        await gate.promise;
      }
    }
    const h = harness();
    const consumer = h.get(Slow);
    const first = consumer.onMessage(msg('F-1'));
    await Promise.resolve();
    const second = await settle(consumer.onMessage(msg('F-1')));
    expect(second.ok).toBe(false);
    expect((second as { error: unknown }).error).toBeInstanceOf(IdempotencyInFlightError);
    gate.resolve();
    await first;
    await consumer.onMessage(msg('F-1'));
    expect(consumer.runs).toBe(1);
    expect(h.outcomes.map((o) => o.kind)).toEqual(['inFlight', 'processed', 'duplicate']);
  });

  it('a handler that throws rolls its transaction back, rethrows as is, and the redelivery runs again', async () => {
    const ledger: string[] = [];
    @injectable()
    class Flaky {
      failures = 1;
      @Idempotent({ key: (m: Message) => m.keys })
      async onMessage(m: Message, ctx: IdempotencyContext<MemoryTransaction>) {
        ledger.push(m.keys[0] as string);
        ctx.trx.onRollback(() => ledger.pop());
        if (this.failures-- > 0) throw 'not even an Error';
      }
    }
    const h = harness();
    const consumer = h.get(Flaky);
    const failed = await settle(consumer.onMessage(msg('T-1')));
    expect(failed).toEqual({ ok: false, error: 'not even an Error' });
    expect(ledger).toEqual([]);
    expect(await h.store.get(h.outcomes[0]?.token as never)).toBeUndefined();
    await consumer.onMessage(msg('T-1'));
    await consumer.onMessage(msg('T-1'));
    expect(ledger).toEqual(['T-1']);
    expect(h.outcomes.map((o) => o.kind)).toEqual(['failed', 'processed', 'duplicate']);
    expect(h.outcomes[0]?.error).toBe('not even an Error');
  });

  it('handlers that reject with undefined or null still fail, never count as done', async () => {
    for (const thrown of [undefined, null]) {
      @injectable()
      class Odd {
        @Idempotent({ key: (m: Message) => m.keys, mode: 'lease' })
        async onMessage(_m: Message) {
          return Promise.reject(thrown);
        }
      }
      const h = harness();
      const consumer = h.get(Odd);
      expect(await settle(consumer.onMessage(msg('ODD')))).toEqual({ ok: false, error: thrown });
      expect(h.outcomes[0]).toMatchObject({ kind: 'failed' });
      expect(await h.store.get(h.outcomes[0]?.token as never)).toBeUndefined();
    }
  });

  it('the same key with another payload is a conflict; key order inside the payload does not matter', async () => {
    const h = harness();
    const consumer = h.get(Payments);
    await consumer.onMessage(msg('C-1', { amount: 100, currency: 'EUR' }));
    await expect(consumer.onMessage(msg('C-1', { currency: 'EUR', amount: 100 }))).resolves.toEqual({
      receipt: 'R-C-1',
    });
    const conflict = await settle(consumer.onMessage(msg('C-1', { amount: 999, currency: 'EUR' })));
    expect((conflict as { error: unknown }).error).toBeInstanceOf(PayloadConflictError);
    // A conflict found in the store, once the cache has forgotten, is a conflict too.
    await h.cache.delete(h.outcomes[0]?.token as never);
    const again = await settle(consumer.onMessage(msg('C-1', [100, 'EUR'])));
    expect((again as { error: unknown }).error).toBeInstanceOf(PayloadConflictError);
    expect(consumer.charged).toEqual(['C-1']);
    expect(h.outcomes.map((o) => o.kind)).toEqual(['processed', 'duplicate', 'conflict', 'conflict']);
  });

  it("onConflict: 'duplicate' acknowledges a reused key as a duplicate", async () => {
    @injectable()
    class Lenient {
      runs = 0;
      @Idempotent({ key: (m: Message) => m.keys, onConflict: 'duplicate' })
      async onMessage(_m: Message) {
        this.runs++;
      }
    }
    const h = harness();
    const consumer = h.get(Lenient);
    await consumer.onMessage(msg('L-1', 'a'));
    await expect(consumer.onMessage(msg('L-1', 'b'))).resolves.toBeUndefined();
    expect(consumer.runs).toBe(1);
    expect(h.outcomes[1]?.kind).toBe('duplicate');
  });

  it('array order in the payload does matter', async () => {
    const h = harness();
    const consumer = h.get(Payments);
    await consumer.onMessage(msg('ORD', { items: [1, 2] }));
    const swapped = await settle(consumer.onMessage(msg('ORD', { items: [2, 1] })));
    expect((swapped as { error: unknown }).error).toBeInstanceOf(PayloadConflictError);
  });

  it('each message yields exactly one outcome, and a throwing listener changes nothing', async () => {
    const h = harness();
    h.container.bind(Symbol.for('idempotent-mq.outcome-listener')).toConstantValue(() => {
      throw new Error('listener bug');
    });
    const consumer = h.get(Payments);
    await consumer.onMessage(msg('E-1'));
    await consumer.onMessage(msg('E-1'));
    expect(h.outcomes).toHaveLength(2);
    expect(h.logger.at('error')).toContain('an outcome listener threw');
  });
});
