import {
  IDEMPOTENCY_CACHE,
  IDEMPOTENCY_STORE,
  type IdempotencyContext,
  IdempotencyModule,
  Idempotent,
  ListenerRegistry,
  ListenerWiringError,
  MESSAGE_TRANSPORT,
  MemoryIdempotencyCache,
  MemoryIdempotencyStore,
  MessageListener,
  setMessageListener,
  type TransportMessage,
} from '@idempotent-mq/core/adapter';
import { InMemoryBroker } from '@idempotent-mq/testing';
import { Container, injectable, type Newable } from 'inversify';
import { describe, expect, it } from 'vitest';

type Msg = TransportMessage<{ amount: number }>;

/** A container with the engine (shared store and cache, as consumers of one database share them) and a broker connection. */
function consumerContainer(
  broker: InMemoryBroker,
  shared?: { store: MemoryIdempotencyStore; cache: MemoryIdempotencyCache },
) {
  const container = new Container();
  container.load(new IdempotencyModule());
  if (shared) {
    container.rebind(IDEMPOTENCY_STORE).toConstantValue(shared.store);
    container.rebind(IDEMPOTENCY_CACHE).toConstantValue(shared.cache);
  }
  container.bind(MESSAGE_TRANSPORT).toConstantValue(broker.connect());
  return container;
}

const fastRetries = { retryBaseDelayMs: 5, retryMaxDelayMs: 20, inFlightDelayMs: 5 };

describe('the listener registry', () => {
  it('finds a bound listener, subscribes it, and each message is handled once and acked', async () => {
    const handled: string[] = [];
    @injectable()
    @MessageListener({ topic: 'payments', consumerGroup: 'billing' })
    class Billing {
      @Idempotent({ key: (m: Msg) => m.keys })
      async onMessage(m: Msg) {
        handled.push(m.keys[0] as string);
      }
    }
    const broker = new InMemoryBroker();
    const container = consumerContainer(broker);
    container.bind(Billing).toSelf().inSingletonScope();
    const registry = new ListenerRegistry(container, fastRetries);
    await registry.start();
    expect(registry.subscriptions).toEqual([
      {
        listener: 'Billing',
        method: 'onMessage',
        topic: 'payments',
        consumerGroup: 'billing',
        scope: 'v1:billing:Billing.onMessage',
        maxAttempts: 17,
      },
    ]);
    for (const key of ['A', 'B', 'A', 'C']) broker.publish('payments', { keys: [key], body: { amount: 1 } });
    await broker.idle(5_000);
    await registry.stop();
    expect(handled.sort()).toEqual(['A', 'B', 'C']);
  });

  it('fails at start-up with one error that lists every mis-wiring', async () => {
    @injectable()
    class Unbound {
      @Idempotent({ key: (m: Msg) => m.keys })
      async onMessage(_m: Msg) {}
    }
    setMessageListener(Unbound, { topic: 't0', consumerGroup: 'g0' });

    @injectable()
    @MessageListener({ topic: 't1', consumerGroup: 'g1' })
    class Unprotected {
      async onMessage(_m: Msg) {}
    }
    @injectable()
    @MessageListener({ topic: 't2', consumerGroup: 'g2' })
    class TwoHandlers {
      @Idempotent({ key: (m: Msg) => m.keys })
      async a(_m: Msg) {}
      @Idempotent({ key: (m: Msg) => m.keys })
      async b(_m: Msg) {}
    }
    @injectable()
    @MessageListener({ topic: 't3', consumerGroup: 'g3' })
    class ScopeOne {
      @Idempotent({ key: (m: Msg) => m.keys, scope: 'payments' })
      async onMessage(_m: Msg) {}
    }
    @injectable()
    @MessageListener({ topic: 't3', consumerGroup: 'g3', concurrency: 2 })
    class ScopeTwo {
      @Idempotent({ key: (m: Msg) => m.keys, scope: 'payments' })
      async onMessage(_m: Msg) {}
    }
    @injectable()
    class BadOptions {
      @Idempotent({ key: (m: Msg) => m.keys })
      async onMessage(_m: Msg) {}
    }
    // As a transport's own decorator might record it, without validation.
    setMessageListener(BadOptions, { topic: 'orders.created', consumerGroup: 'g4', concurrency: 0 });

    const container = new Container(); // no IdempotencyModule, no transport
    for (const c of [Unprotected, TwoHandlers, ScopeOne, ScopeTwo, BadOptions] as Newable[])
      container.bind(c).toSelf();
    const registry = new ListenerRegistry(container, { listeners: [Unbound] });
    const error = await registry.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ListenerWiringError);
    const offenders = (error as ListenerWiringError).offenders.join('\n');
    expect(offenders).toContain('no MessageTransport is bound');
    expect(offenders).toContain('no idempotency store is bound');
    expect(offenders).toContain('no idempotency cache is bound');
    expect(offenders).toContain('Unbound is a listener the application expects, but it is not bound');
    expect(offenders).toContain('Unprotected is a listener with no @Idempotent method');
    expect(offenders).toContain('TwoHandlers has 2 @Idempotent methods');
    expect(offenders).toContain('ScopeOne.onMessage and ScopeTwo.onMessage share the scope "v1:payments"');
    expect(offenders).toContain('ScopeOne and ScopeTwo both consume "t3" in group "g3"');
    expect(offenders).toContain('"BadOptions.concurrency"');
    expect(offenders).toContain('the idempotency engine is not bound');
    expect((error as ListenerWiringError).offenders).toHaveLength(10);
  });

  it('invalid @MessageListener options fail when the class is defined, naming the option', () => {
    expect(() => {
      @MessageListener({ topic: 'payments', consumerGroup: 'billing', maxAttempts: 0 })
      class Bad {}
      return Bad;
    }).toThrow('"@MessageListener(Bad).maxAttempts"');
  });

  it("a second container with other bindings does not see the first one's listeners", async () => {
    const seen: string[] = [];
    @injectable()
    @MessageListener({ topic: 'iso', consumerGroup: 'first' })
    class First {
      @Idempotent({ key: (m: Msg) => m.keys })
      async onMessage(m: Msg) {
        seen.push(`first:${m.keys[0]}`);
      }
    }
    @injectable()
    @MessageListener({ topic: 'iso', consumerGroup: 'second' })
    class Second {
      @Idempotent({ key: (m: Msg) => m.keys })
      async onMessage(m: Msg) {
        seen.push(`second:${m.keys[0]}`);
      }
    }
    const broker = new InMemoryBroker();
    const one = consumerContainer(broker);
    one.bind(First).toSelf();
    const two = consumerContainer(broker);
    two.bind(Second).toSelf();
    const r1 = new ListenerRegistry(one, fastRetries);
    const r2 = new ListenerRegistry(two, fastRetries);
    await r1.start();
    await r2.start();
    expect(r1.subscriptions.map((s) => s.listener)).toEqual(['First']);
    expect(r2.subscriptions.map((s) => s.listener)).toEqual(['Second']);
    broker.publish('iso', { keys: ['K'], body: {} });
    await broker.idle(5_000);
    await Promise.all([r1.stop(), r2.stop()]);
    expect(seen.sort()).toEqual(['first:K', 'second:K']);
  });

  it('a received batch is settled per message: the same key twice runs once, one failure fails alone', async () => {
    const runs = new Map<string, number>();
    @injectable()
    @MessageListener({ topic: 'batch', consumerGroup: 'b', concurrency: 16 })
    class Batch {
      @Idempotent({ key: (m: Msg) => m.keys })
      async onMessage(m: Msg, ctx: IdempotencyContext) {
        const key = m.keys[0] as string;
        runs.set(key, (runs.get(key) ?? 0) + 1);
        if (key === 'BAD' && ctx.attempt === 1) throw new Error('first attempt fails');
      }
    }
    const broker = new InMemoryBroker({ batchSize: 16 });
    const container = consumerContainer(broker);
    container.bind(Batch).toSelf();
    // Publish before subscribing so that the whole lot arrives in one batch.
    for (const key of ['X', 'Y', 'X', 'BAD', 'Z', 'Y']) broker.publish('batch', { keys: [key], body: {} });
    const registry = new ListenerRegistry(container, fastRetries);
    await registry.start();
    await broker.idle(5_000);
    await registry.stop();
    expect(Object.fromEntries(runs)).toEqual({ X: 1, Y: 1, Z: 1, BAD: 2 });
    expect(broker.deliveries.first).toBe(6);
    expect(broker.deliveries.retry).toBe(1);
  });

  it('poison messages go to the dead-letter queue: a missing key at once, a failing handler after maxAttempts', async () => {
    let attempts = 0;
    @injectable()
    @MessageListener({ topic: 'poison', consumerGroup: 'p', maxAttempts: 3 })
    class Poison {
      @Idempotent({ key: (m: Msg) => m.keys })
      async onMessage(m: Msg) {
        if (m.keys[0] === 'ALWAYS-FAILS') {
          attempts++;
          throw new Error('bad data');
        }
      }
    }
    const broker = new InMemoryBroker();
    const container = consumerContainer(broker);
    container.bind(Poison).toSelf();
    const registry = new ListenerRegistry(container, fastRetries);
    await registry.start();
    broker.publish('poison', { keys: [], body: {} });
    broker.publish('poison', { keys: ['ALWAYS-FAILS'], body: {} });
    broker.publish('poison', { keys: ['FINE'], body: {} });
    await broker.idle(5_000);
    await registry.stop();
    const dead = broker.deadLetters('p');
    expect(dead).toHaveLength(2);
    expect(dead[0]?.reason).toContain('MissingIdempotencyKeyError');
    expect(dead[0]?.message.deliveryAttempt).toBe(1);
    expect(dead[1]?.reason).toContain('failed 3 of 3 attempts; last: Error: bad data');
    expect(attempts).toBe(3);
  });

  it('stop() under load stops receiving, drains what is in flight, and loses nothing', async () => {
    const applied: string[] = [];
    @injectable()
    @MessageListener({ topic: 'load', consumerGroup: 'l', concurrency: 8 })
    class Load {
      @Idempotent({ key: (m: Msg) => m.keys })
      async onMessage(m: Msg) {
        await new Promise((r) => setTimeout(r, 1));
        applied.push(m.keys[0] as string);
      }
    }
    const broker = new InMemoryBroker();
    const shared = { store: new MemoryIdempotencyStore(), cache: new MemoryIdempotencyCache() };
    const first = consumerContainer(broker, shared);
    first.bind(Load).toSelf();
    const r1 = new ListenerRegistry(first, fastRetries);
    await r1.start();
    for (let i = 0; i < 300; i++) broker.publish('load', { keys: [`L-${i}`], body: {} });
    while (applied.length < 50) await new Promise((r) => setTimeout(r, 2));
    await r1.stop();
    const atStop = applied.length;
    expect(atStop).toBeLessThan(300);
    expect(broker.pending('l')).toBe(300 - atStop);

    const second = consumerContainer(broker, shared);
    second.bind(Load).toSelf();
    const r2 = new ListenerRegistry(second, fastRetries);
    await r2.start();
    await broker.idle(10_000);
    await r2.stop();
    expect(applied).toHaveLength(300);
    expect(new Set(applied).size).toBe(300);
  });
});
