import { randomUUID } from 'node:crypto';
import {
  type ClaimRequest,
  type ClaimResult,
  IDEMPOTENCY_CLOCK,
  IDEMPOTENCY_LOGGER,
  IDEMPOTENCY_OUTCOME_LISTENER,
  IDEMPOTENCY_STORE,
  IdempotencyModule,
  type IdempotencyOutcome,
  type IdempotencyRecord,
  type IdempotencyStore,
  Idempotent,
  ListenerRegistry,
  ListenerWiringError,
  MESSAGE_TRANSPORT,
  MemoryIdempotencyStore,
  type MemoryTransaction,
  MessageListener,
  type MessageTransport,
  type TransportMessage,
  type TransportProfile,
  UnstorableTokenError,
} from '@idempotent-mq/core/adapter';
import { advanceUntilIdle, FakeClock, FaultyStore, InMemoryBroker } from '@idempotent-mq/testing';
import { Container, injectable } from 'inversify';
import { describe, expect, it } from 'vitest';
import { RecordingLogger } from '../support/engine-harness.js';

type Msg = TransportMessage<{ amount: number }>;

function container(broker: InMemoryBroker, store: IdempotencyStore = new MemoryIdempotencyStore()) {
  const c = new Container();
  c.load(new IdempotencyModule());
  c.rebind(IDEMPOTENCY_STORE).toConstantValue(store);
  c.bind(MESSAGE_TRANSPORT).toConstantValue(broker.connect());
  const outcomes: IdempotencyOutcome[] = [];
  c.bind(IDEMPOTENCY_OUTCOME_LISTENER).toConstantValue((o) => outcomes.push(o));
  const logger = new RecordingLogger();
  c.rebind(IDEMPOTENCY_LOGGER).toConstantValue(logger);
  return { c, outcomes, logger };
}

describe('settlement: what the registry tells the broker', () => {
  it("a copy that meets a dead owner's live claim waits for its lease, spends no attempt, and takes over", async () => {
    const LEASE = 600;
    const runs: number[] = [];
    @injectable()
    @MessageListener({ topic: 'orphans', consumerGroup: 'o', maxAttempts: 2 })
    class Orphans {
      @Idempotent({ key: (m: Msg) => m.keys, mode: 'lease', leaseMs: LEASE })
      async onMessage(m: Msg) {
        runs.push(m.deliveryAttempt);
      }
    }
    const broker = new InMemoryBroker();
    const store = new MemoryIdempotencyStore();
    // A consumer claimed the token, then its process died: the claim is live for one more lease.
    const scope = 'v1:o:Orphans.onMessage';
    await store.claim({ token: { scope, key: 'PAY-1' }, owner: randomUUID(), leaseMs: LEASE });
    const { c, outcomes } = container(broker, store);
    c.bind(Orphans).toSelf();
    // Polling every 5 ms: with waits spending attempts, two attempts would be gone in 10 ms.
    const registry = new ListenerRegistry(c, {
      inFlightDelayMs: 5,
      retryBaseDelayMs: 5,
      retryMaxDelayMs: 20,
    });
    await registry.start();
    const started = Date.now();
    broker.publish('orphans', { keys: ['PAY-1'], body: { amount: 5 } });
    await broker.idle(5_000);
    await registry.stop();
    expect(broker.deadLetters()).toEqual([]);
    expect(runs).toEqual([1]);
    expect(outcomes.at(-1)?.kind).toBe('takeover');
    expect(new Set(outcomes.slice(0, -1).map((o) => o.kind))).toEqual(new Set(['inFlight']));
    expect(Date.now() - started).toBeGreaterThanOrEqual(LEASE - 50);
    // Each look waits the claim's age so far, doubling: a handful of waits to the lease's end, not one
    // every 5 ms (120 of them), and none of them an attempt.
    expect(broker.deliveries.wait).toBeLessThanOrEqual(Math.ceil(Math.log2(LEASE / 5)) + 2);
  });

  it('on the default 60 s lease too, with engine and broker on one fake clock: no real sleep', async () => {
    const clock = new FakeClock();
    const runs: number[] = [];
    @injectable()
    @MessageListener({ topic: 'slow-orphans', consumerGroup: 'so', maxAttempts: 3 })
    class SlowOrphans {
      @Idempotent({ key: (m: Msg) => m.keys, mode: 'lease' })
      async onMessage(m: Msg) {
        runs.push(m.deliveryAttempt);
      }
    }
    const broker = new InMemoryBroker({ clock });
    const store = new MemoryIdempotencyStore({ clock });
    await store.claim({
      token: { scope: 'v1:so:SlowOrphans.onMessage', key: 'PAY-9' },
      owner: 'dead',
      leaseMs: 60_000,
    });
    const { c, outcomes } = container(broker, store);
    c.rebind(IDEMPOTENCY_CLOCK).toConstantValue(clock);
    c.bind(SlowOrphans).toSelf();
    const registry = new ListenerRegistry(c, { inFlightDelayMs: 10 });
    await registry.start();
    const started = clock.now();
    broker.publish('slow-orphans', { keys: ['PAY-9'], body: { amount: 1 } });
    await advanceUntilIdle(broker, clock, { stepMs: 250 });
    await registry.stop();
    expect(runs).toEqual([1]);
    expect(outcomes.at(-1)?.kind).toBe('takeover');
    expect(outcomes.length - 1).toBeLessThanOrEqual(Math.ceil(Math.log2(60_000 / 10)) + 2);
    expect(clock.now() - started).toBeGreaterThanOrEqual(60_000);
    expect(broker.deadLetters()).toEqual([]);
  });

  it('a copy that meets a fresh claim of a live copy looks again soon, not a whole lease later', async () => {
    const clock = new FakeClock();
    @injectable()
    @MessageListener({ topic: 'fresh', consumerGroup: 'f' })
    class Fresh {
      @Idempotent({ key: (m: Msg) => m.keys, mode: 'lease' })
      async onMessage(_m: Msg) {}
    }
    const broker = new InMemoryBroker({ clock });
    const store = new MemoryIdempotencyStore({ clock });
    // A live copy claimed it a moment ago (default 60 s lease) and completes 300 ms later.
    const token = { scope: 'v1:f:Fresh.onMessage', key: 'PAY-F' };
    await store.claim({ token, owner: 'live', leaseMs: 60_000 });
    clock.setTimeout(() => void store.complete({ token, owner: 'live', ttlMs: 3_600_000 }), 300);
    const { c, outcomes } = container(broker, store);
    c.rebind(IDEMPOTENCY_CLOCK).toConstantValue(clock);
    c.bind(Fresh).toSelf();
    const registry = new ListenerRegistry(c, { inFlightDelayMs: 100 });
    await registry.start();
    const started = clock.now();
    broker.publish('fresh', { keys: ['PAY-F'], body: { amount: 1 } });
    await advanceUntilIdle(broker, clock, { stepMs: 20 });
    await registry.stop();
    expect(outcomes.at(-1)).toMatchObject({ kind: 'duplicate', tier: 'store' });
    // Acked within a few doublings of 100 ms, not after the 60 s lease.
    expect(clock.now() - started).toBeLessThan(2_000);
  });

  it('a copy whose holder has not committed yet (lease unknown) looks again after inFlightDelayMs, spending no attempt', async () => {
    const broker = new InMemoryBroker();
    // As a SQL store answers a copy while another open transaction holds the token: a stand-in claim
    // with no lease (the holder's row is not committed yet). Three times, then the holder is gone.
    let held = 3;
    class HeldStore extends MemoryIdempotencyStore {
      override async claim(request: ClaimRequest, tx?: MemoryTransaction): Promise<ClaimResult> {
        if (held-- <= 0) return super.claim(request, tx);
        const record = { ...request.token, status: 'inProgress', owner: '', fence: 0, createdAt: Date.now() };
        return { status: 'exists', record: record as IdempotencyRecord };
      }
    }
    const store = new HeldStore();
    @injectable()
    @MessageListener({ topic: 'held', consumerGroup: 'h', maxAttempts: 1 })
    class Held {
      @Idempotent({ key: (m: Msg) => m.keys })
      async onMessage(_m: Msg) {}
    }
    const { c, outcomes } = container(broker, store);
    c.bind(Held).toSelf();
    const registry = new ListenerRegistry(c, { inFlightDelayMs: 20 });
    await registry.start();
    broker.publish('held', { keys: ['PAY-2'], body: { amount: 1 } });
    await broker.idle(5_000);
    await registry.stop();
    expect(outcomes.map((o) => [o.kind, o.attempt])).toEqual([
      ['inFlight', 1],
      ['inFlight', 1],
      ['inFlight', 1],
      ['processed', 1],
    ]);
    expect(broker.deadLetters()).toEqual([]);
  });

  it('a key the store cannot hold is dead-lettered on its first delivery: no retry can fix it', async () => {
    const broker = new InMemoryBroker();
    const store = new FaultyStore(new MemoryIdempotencyStore());
    store.faults.inject('claim', {
      fail: new UnstorableTokenError({ scope: 's', key: 'k\u0000' }, 'U+0000'),
    });
    @injectable()
    @MessageListener({ topic: 'unstorable', consumerGroup: 'u' })
    class Unstorable {
      @Idempotent({ key: (m: Msg) => m.keys })
      async onMessage(_m: Msg) {}
    }
    const { c } = container(broker, store);
    c.bind(Unstorable).toSelf();
    const registry = new ListenerRegistry(c);
    await registry.start();
    broker.publish('unstorable', { keys: ['k\u0000'], body: { amount: 1 } });
    await broker.idle(5_000);
    await registry.stop();
    const dead = broker.deadLetters('u');
    expect(dead).toHaveLength(1);
    expect(dead[0]?.message.deliveryAttempt).toBe(1);
    expect(dead[0]?.reason).toContain('UnstorableTokenError');
  });

  it("a retention shorter than the messages' redelivery horizon is warned about at start-up", async () => {
    @injectable()
    @MessageListener({ topic: 'short', consumerGroup: 's' })
    class Short {
      @Idempotent({ key: (m: Msg) => m.keys, ttlMs: 60_000 })
      async onMessage(_m: Msg) {}
    }
    const { c, logger } = container(new InMemoryBroker());
    c.bind(Short).toSelf();
    const registry = new ListenerRegistry(c);
    await registry.start();
    await registry.stop();
    // 17 attempts with failure retries up to 60 s: about 12 minutes of redeliveries.
    expect(logger.at('warn').some((w) => w.includes('Short.onMessage: ttlMs 60000 is shorter than'))).toBe(
      true,
    );
  });

  it('a registry that finds no listener says so at start-up instead of consuming nothing', async () => {
    const { c } = container(new InMemoryBroker());
    const error = await new ListenerRegistry(c).start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ListenerWiringError);
    expect(String((error as Error).message)).toContain('no @MessageListener class is bound');
  });

  it("the transport's profile is held to: its listener rules, its attempt limit, its presence", async () => {
    @injectable()
    @MessageListener({ topic: 'orders.created', consumerGroup: 'g', maxAttempts: 50 })
    class Orders {
      @Idempotent({ key: (m: Msg) => m.keys })
      async onMessage(_m: Msg) {}
    }
    const broker = new InMemoryBroker({ maxDeliveries: 10 });
    const strict: TransportProfile = {
      ...broker.profile,
      broker: 'a strict broker',
      checkListener: (listener, where) => {
        if (String(listener.topic).includes('.')) throw new Error(`${where}.topic: no dots on this broker`);
      },
    };
    const transport = broker.connect();
    const { c } = container(broker);
    const strictTransport: MessageTransport = {
      profile: strict,
      subscribe: (spec) => transport.subscribe(spec),
      stop: () => transport.stop(),
    };
    c.rebind(MESSAGE_TRANSPORT).toConstantValue(strictTransport);
    c.bind(Orders).toSelf();
    const offenders = (
      (await new ListenerRegistry(c).start().catch((e: unknown) => e)) as ListenerWiringError
    ).offenders;
    expect(offenders).toEqual(['Orders.topic: no dots on this broker']);

    c.rebind(MESSAGE_TRANSPORT).toConstantValue(broker.connect());
    const limit = ((await new ListenerRegistry(c).start().catch((e: unknown) => e)) as ListenerWiringError)
      .offenders;
    expect(limit).toEqual([
      "Orders.maxAttempts is 50, but the in-memory broker dead-letters after 10 deliveries: lower it, or raise the broker's limit",
    ]);

    c.rebind(MESSAGE_TRANSPORT).toConstantValue({ subscribe: async () => {}, stop: async () => {} } as never);
    const bare = ((await new ListenerRegistry(c).start().catch((e: unknown) => e)) as ListenerWiringError)
      .offenders;
    expect(bare.join('\n')).toContain('the bound transport has no profile');
  });

  it('registry options are checked when it is made, naming the option', () => {
    const c = new Container();
    expect(() => new ListenerRegistry(c, { inFlightDelayMs: -1 })).toThrow(
      '"ListenerRegistry.inFlightDelayMs"',
    );
    expect(() => new ListenerRegistry(c, { retryBaseDelayMs: 500, retryMaxDelayMs: 100 })).toThrow(
      '"ListenerRegistry.retryMaxDelayMs"',
    );
    expect(() => new ListenerRegistry(c, 'fast' as never)).toThrow('"ListenerRegistry"');
  });
});
