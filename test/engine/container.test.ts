import {
  getIdempotentMethods,
  IDEMPOTENCY_STORE,
  type IdempotencyContext,
  IdempotencyNotConfiguredError,
  Idempotent,
  idempotentView,
  MemoryIdempotencyStore,
  setMessageListener,
} from '@idempotent-mq/core/adapter';
import { Container, injectable } from 'inversify';
import { describe, expect, it } from 'vitest';
import { harness, type Message, msg, settle } from '../support/engine-harness.js';

@injectable()
class Orders {
  tokens: string[] = [];
  @Idempotent({ key: (m: Message) => m.keys })
  async onMessage(_m: Message, ctx: IdempotencyContext) {
    this.tokens.push(`${ctx.token.scope}|${ctx.token.key}`);
  }
}

describe('decorators and the container', () => {
  it('an instance the container did not create fails loudly instead of running unprotected', async () => {
    const orphan = new Orders();
    const r = await settle(idempotentView(orphan).onMessage(msg('O-1')));
    expect((r as { error: unknown }).error).toBeInstanceOf(IdempotencyNotConfiguredError);
    expect(orphan.tokens).toEqual([]);
  });

  it('a container without IdempotencyModule builds the consumer, whose calls then name the fix', async () => {
    const bare = new Container();
    bare.bind(Orders).toSelf();
    const consumer = idempotentView(bare.get(Orders));
    const r = await settle(consumer.onMessage(msg('O-2')));
    expect((r as { error: unknown }).error).toBeInstanceOf(IdempotencyNotConfiguredError);
    expect(String((r as { error: Error }).error.message)).toContain(
      'load IdempotencyModule into its container (container.load(new IdempotencyModule()))',
    );
    expect(consumer.tokens).toEqual([]);
  });

  it('the decorator records metadata that the accessors read', () => {
    const methods = getIdempotentMethods(Orders);
    expect([...methods.keys()]).toEqual(['onMessage']);
    expect(typeof methods.get('onMessage')?.key).toBe('function');
  });

  it('the default scope is versioned Class.method; a listener adds its consumer group', async () => {
    @injectable()
    class Billing {
      scopes: string[] = [];
      @Idempotent({ key: (m: Message) => m.keys })
      async onMessage(_m: Message, ctx: IdempotencyContext) {
        this.scopes.push(ctx.token.scope);
      }
    }
    setMessageListener(Billing, { topic: 'payments', consumerGroup: 'billing' });
    const h = harness();
    const orders = h.get(Orders);
    const billing = h.get(Billing);
    await orders.onMessage(msg('X'));
    await billing.onMessage(msg('X'));
    expect(orders.tokens).toEqual(['v1:Orders.onMessage|X']);
    expect(billing.scopes).toEqual(['v1:billing:Billing.onMessage']);
  });

  it('an explicit scope survives a rename, and scopeVersion starts a fresh key space on purpose', async () => {
    const runs: string[] = [];
    @injectable()
    class OldName {
      @Idempotent({ key: (m: Message) => m.keys, scope: 'payments' })
      async onMessage(m: Message) {
        runs.push(`old:${m.keys[0]}`);
      }
    }
    @injectable()
    class NewName {
      @Idempotent({ key: (m: Message) => m.keys, scope: 'payments' })
      async onMessage(m: Message) {
        runs.push(`new:${m.keys[0]}`);
      }
    }
    @injectable()
    class NextVersion {
      @Idempotent({ key: (m: Message) => m.keys, scope: 'payments', scopeVersion: 2 })
      async onMessage(m: Message) {
        runs.push(`v2:${m.keys[0]}`);
      }
    }
    const h = harness();
    await h.get(OldName).onMessage(msg('P-1'));
    await h.get(NewName).onMessage(msg('P-1'));
    await h.get(NextVersion).onMessage(msg('P-1'));
    expect(runs).toEqual(['old:P-1', 'v2:P-1']);
  });

  it('two handlers with default scopes never share a key space', async () => {
    const runs: string[] = [];
    @injectable()
    class Two {
      @Idempotent({ key: (m: Message) => m.keys })
      async a(m: Message) {
        runs.push(`a:${m.keys[0]}`);
      }
      @Idempotent({ key: (m: Message) => m.keys })
      async b(m: Message) {
        runs.push(`b:${m.keys[0]}`);
      }
    }
    const two = harness().get(Two);
    await two.a(msg('S'));
    await two.b(msg('S'));
    await two.a(msg('S'));
    expect(runs).toEqual(['a:S', 'b:S']);
  });

  it('a user swaps the store by rebinding its token', async () => {
    const mine = new MemoryIdempotencyStore();
    const h = harness();
    h.container.rebind(IDEMPOTENCY_STORE).toConstantValue(mine);
    await h.get(Orders).onMessage(msg('R-1'));
    expect(mine.size).toBe(1);
    expect(h.store.size).toBe(0);
  });

  it('two containers are independent: each has its own engine and store', async () => {
    const one = harness();
    const two = harness();
    await one.get(Orders).onMessage(msg('I-1'));
    await two.get(Orders).onMessage(msg('I-1'));
    expect(one.get(Orders).tokens).toHaveLength(1);
    expect(two.get(Orders).tokens).toHaveLength(1);
  });

  it('a subclass inherits protection from its base class', async () => {
    @injectable()
    class Child extends Orders {
      @Idempotent({ key: (m: Message) => m.keys })
      async other(_m: Message) {}
    }
    const child = harness().get(Child);
    await child.onMessage(msg('C-1'));
    await child.onMessage(msg('C-1'));
    expect(child.tokens).toEqual(['v1:Orders.onMessage|C-1']);
  });

  it("mode 'transactional' on a store without transactions fails on first use, naming the method", async () => {
    @injectable()
    class NeedsTx {
      @Idempotent({ key: (m: Message) => m.keys, mode: 'transactional' })
      async onMessage(_m: Message) {}
    }
    const noTx = new MemoryIdempotencyStore();
    Object.defineProperty(noTx, 'transaction', { value: undefined });
    const h = harness({ store: () => noTx });
    await expect(h.get(NeedsTx).onMessage(msg('T-1'))).rejects.toThrow(
      "NeedsTx.onMessage asks for mode 'transactional'",
    );
  });
});
