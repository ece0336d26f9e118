/**
 * End to end over RocketMQ: `@RocketMQListener` + `@Idempotent` consumers in two containers (one consumer
 * group), the real ListenerRegistry, RocketMQTransport on the real client, the gRPC test broker with its
 * faults on (duplicate sends, lost acks), a broker restart and a consumer restart in the middle.
 * Every payment is applied exactly once and none is lost. Then, over a broker that allows two
 * deliveries, copies that wait for each other's claim never spend one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  IDEMPOTENCY_CACHE,
  IDEMPOTENCY_STORE,
  IdempotencyModule,
  Idempotent,
  ListenerRegistry,
  MESSAGE_TRANSPORT,
  MemoryIdempotencyCache,
  MemoryIdempotencyStore,
  type TransportMessage,
} from '@idempotent-mq/core';
import {
  RocketMQListener,
  RocketMQPublisher,
  RocketMQTransport,
  type SettledEvent,
} from '@idempotent-mq/rocketmq';
import { RocketMQTestBroker } from '@idempotent-mq/rocketmq-testing';
import { Container, injectable } from 'inversify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

type Payment = TransportMessage<{ serial: string; amount: number }>;

const previousHome = process.env.HOME;
const home = mkdtempSync(join(tmpdir(), 'imq-rocketmq-e2e-'));
process.env.HOME = home;
afterAll(() => {
  process.env.HOME = previousHome;
  rmSync(home, { recursive: true, force: true });
});

/** The ledger both consumers write to: how many times each payment was applied. */
const applied = new Map<string, number>();
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

@injectable()
@RocketMQListener({
  topic: 'payments',
  consumerGroup: 'billing',
  tag: 'PAY',
  concurrency: 4,
  maxAttempts: 10,
})
class PaymentConsumer {
  @Idempotent({ key: (m: Payment) => m.keys })
  async onMessage(m: Payment) {
    await new Promise((r) => setTimeout(r, 5 + Math.floor(Math.random() * 20)));
    applied.set(m.body.serial, (applied.get(m.body.serial) ?? 0) + 1);
  }
}

let broker: RocketMQTestBroker;
const store = new MemoryIdempotencyStore();
const cache = new MemoryIdempotencyCache();

beforeAll(async () => {
  broker = await RocketMQTestBroker.start();
});
afterAll(async () => {
  await broker?.close();
});

async function consumer(): Promise<ListenerRegistry> {
  const container = new Container();
  container.load(new IdempotencyModule());
  container.rebind(IDEMPOTENCY_STORE).toConstantValue(store);
  container.rebind(IDEMPOTENCY_CACHE).toConstantValue(cache);
  container.bind(MESSAGE_TRANSPORT).toConstantValue(
    new RocketMQTransport({
      endpoints: broker.endpoints,
      logger: quiet,
      awaitDurationMs: 300,
      invisibleDurationMs: 1500,
      requestTimeout: 1000,
      receiveBackoff: { initialMs: 100, maxMs: 300 },
    }),
  );
  container.bind(PaymentConsumer).toSelf().inSingletonScope();
  const registry = new ListenerRegistry(container, {
    retryBaseDelayMs: 50,
    retryMaxDelayMs: 200,
    inFlightDelayMs: 100,
  });
  await registry.start();
  return registry;
}

async function sendRetrying(publisher: RocketMQPublisher, serial: string) {
  for (let tries = 0; ; tries++) {
    try {
      return await publisher.send({
        topic: 'payments',
        keys: [serial],
        tag: 'PAY',
        body: { serial, amount: 10 },
      });
    } catch (error) {
      if (tries > 60) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe('payments over RocketMQ (real client, test broker), faults on', () => {
  it('applies every payment once: 0 double charges, 0 lost payments', { timeout: 60_000 }, async () => {
    const publisher = new RocketMQPublisher({
      endpoints: broker.endpoints,
      topics: ['payments'],
      logger: quiet,
    });
    await publisher.start();
    let a = await consumer();
    const b = await consumer();
    const serials = Array.from({ length: 60 }, (_, i) => `PAY-${String(i).padStart(3, '0')}`);

    broker.faults.duplicateSends = 8;
    broker.faults.dropAcks = 6;
    for (const serial of serials.slice(0, 20)) await sendRetrying(publisher, serial);
    await broker.restart(300); // the broker goes down and comes back mid-stream
    for (const serial of serials.slice(20, 40)) await sendRetrying(publisher, serial);
    await a.stop(); // a consumer restarts mid-stream: drains, then a new one takes its place
    a = await consumer();
    for (const serial of serials.slice(40)) await sendRetrying(publisher, serial);

    const deadline = Date.now() + 40_000;
    const allDone = () =>
      serials.every((s) => broker.acks('billing').some((ack) => ack.applied && ack.keys.includes(s))) &&
      broker.messages('payments').every((m) => broker.stateOf('billing', m.messageId) === 'acked');
    while (!allDone() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));

    await a.stop();
    await b.stop();
    await publisher.stop();

    const doubleCharges = [...applied.values()].filter((n) => n > 1).length;
    const lost = serials.filter((s) => !applied.has(s)).length;
    expect({ doubleCharges, lost }).toEqual({ doubleCharges: 0, lost: 0 });
    expect(broker.messages('payments').length).toBeGreaterThan(serials.length); // the duplicate sends happened
    expect(broker.acks('billing').filter((ack) => !ack.applied).length).toBeGreaterThan(0); // lost acks happened
    expect(broker.deadLetters('billing')).toEqual([]);
  });
});

/** The ledger of the slow consumer. */
const slowApplied = new Map<string, number>();

@injectable()
@RocketMQListener({ topic: 'slow-payments', consumerGroup: 'slow-billing', concurrency: 1, maxAttempts: 2 })
class SlowPaymentConsumer {
  // A short lease, so that a waiting copy looks again soon after the holder's lease would end.
  @Idempotent({ key: (m: Payment) => m.keys, leaseMs: 600 })
  async onMessage(m: Payment) {
    await new Promise((r) => setTimeout(r, 800));
    slowApplied.set(m.body.serial, (slowApplied.get(m.body.serial) ?? 0) + 1);
  }
}

describe('copies waiting for each other over RocketMQ, on a broker that allows 2 deliveries', () => {
  it('waits never spend a delivery: no dead letter, every copy delivered once, each payment applied once', {
    timeout: 60_000,
  }, async () => {
    const twoDeliveries = await RocketMQTestBroker.start({ maxDeliveryAttempts: 2 });
    const settled: SettledEvent[] = [];
    const slowConsumer = async () => {
      const container = new Container();
      container.load(new IdempotencyModule());
      container.bind(MESSAGE_TRANSPORT).toConstantValue(
        new RocketMQTransport({
          endpoints: twoDeliveries.endpoints,
          logger: quiet,
          awaitDurationMs: 300,
          invisibleDurationMs: 1500,
          requestTimeout: 1000,
          maxDeliveryAttempts: 2,
          onSettled: (e) => settled.push(e),
        }),
      );
      container.rebind(IDEMPOTENCY_STORE).toConstantValue(store);
      container.bind(SlowPaymentConsumer).toSelf().inSingletonScope();
      const registry = new ListenerRegistry(container, { inFlightDelayMs: 100 });
      await registry.start();
      return registry;
    };
    const publisher = new RocketMQPublisher({
      endpoints: twoDeliveries.endpoints,
      topics: ['slow-payments'],
      logger: quiet,
    });
    try {
      await publisher.start();
      // One message at a time per consumer: the copy of a payment goes to the other consumer while
      // the first holds the claim, and waits for it there.
      const consumers = [await slowConsumer(), await slowConsumer()];
      const serials = ['SLOW-1', 'SLOW-2', 'SLOW-3', 'SLOW-4'];
      twoDeliveries.faults.duplicateSends = serials.length;
      for (const serial of serials) {
        await publisher.send({ topic: 'slow-payments', keys: [serial], body: { serial, amount: 1 } });
      }
      const deadline = Date.now() + 40_000;
      const allDone = () =>
        twoDeliveries
          .messages('slow-payments')
          .every((m) => twoDeliveries.stateOf('slow-billing', m.messageId) === 'acked');
      while (!allDone() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      await Promise.all(consumers.map((c) => c.stop()));

      expect(twoDeliveries.messages('slow-payments')).toHaveLength(2 * serials.length);
      expect(twoDeliveries.deadLetters('slow-billing')).toEqual([]);
      expect(twoDeliveries.deliveries({ group: 'slow-billing' }).map((d) => d.attempt)).toEqual(
        Array(2 * serials.length).fill(1),
      );
      expect(serials.map((s) => slowApplied.get(s))).toEqual([1, 1, 1, 1]);
      expect(settled.filter((e) => e.countsAsAttempt === false && e.inPlace).length).toBeGreaterThan(0);
    } finally {
      await publisher.stop();
      await twoDeliveries.close();
    }
  });
});
