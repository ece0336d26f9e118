/**
 * End to end over RabbitMQ: `@RabbitMQListener` + `@Idempotent` consumers in two containers (one consumer
 * group), the real ListenerRegistry and engine, RabbitMQTransport on the shared server. The producer
 * resends some payments, some handlers fail once, one consumer's connection dies mid-stream: every payment
 * is applied exactly once and none is lost. A payment that always fails is dead-lettered after its
 * attempts, with the registry's reason.
 */
import 'reflect-metadata';
import {
  IDEMPOTENCY_CACHE,
  IDEMPOTENCY_STORE,
  type IdempotencyContext,
  IdempotencyModule,
  Idempotent,
  ListenerRegistry,
  MESSAGE_TRANSPORT,
  MemoryIdempotencyCache,
  MemoryIdempotencyStore,
  type TransportMessage,
} from '@idempotent-mq/core';
import {
  RABBITMQ_HEADERS,
  RabbitMQListener,
  RabbitMQPublisher,
  RabbitMQTransport,
  topologyOf,
} from '@idempotent-mq/rabbitmq';
import { Container, injectable, type Newable } from 'inversify';
import { afterEach, describe, expect, it } from 'vitest';
import { killTransport } from '../../packages/rabbitmq/src/testing/index.js';
// The package's own test helper (amqplib resolves from the package: the root does not depend on it).
import { Inspector } from '../../packages/rabbitmq/test/support.js';

type Payment = TransportMessage<{ serial: string; amount: number }>;

const URL = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const quiet = { info() {}, warn() {}, error() {} };
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A consumer process: its own container and transport, the store and cache shared (one database). */
async function consumer(
  listener: Newable,
  shared: { store: MemoryIdempotencyStore; cache: MemoryIdempotencyCache },
): Promise<{ registry: ListenerRegistry; transport: RabbitMQTransport }> {
  const container = new Container();
  container.load(new IdempotencyModule());
  container.rebind(IDEMPOTENCY_STORE).toConstantValue(shared.store);
  container.rebind(IDEMPOTENCY_CACHE).toConstantValue(shared.cache);
  const transport = new RabbitMQTransport({ url: URL, logger: quiet });
  container.bind(MESSAGE_TRANSPORT).toConstantValue(transport);
  container.bind(listener).toSelf().inSingletonScope();
  const registry = new ListenerRegistry(container, {
    retryBaseDelayMs: 50,
    retryMaxDelayMs: 200,
    inFlightDelayMs: 50,
  });
  await registry.start();
  return { registry, transport };
}

async function deleteTopology(topic: string, group: string): Promise<void> {
  const inspector = await Inspector.open(URL);
  await inspector.deleteTopology(topic, group);
  await inspector.close();
}

describe('payments over RabbitMQ (real registry, engine and server)', () => {
  it('applies every payment once, through producer resends, failures and a consumer lost mid-stream', {
    timeout: 60_000,
  }, async () => {
    const id = Math.random().toString(36).slice(2, 10);
    const topic = `payments-${id}`;
    const group = `billing-${id}`;
    cleanups.push(() => deleteTopology(topic, group));
    const applied = new Map<string, number>();
    const failedOnce = new Set<string>();

    @injectable()
    @RabbitMQListener({ topic, consumerGroup: group, bindingKey: 'PAY', concurrency: 4, maxAttempts: 10 })
    class PaymentConsumer {
      @Idempotent({ key: (m: Payment) => m.keys })
      async onMessage(m: Payment) {
        await new Promise((r) => setTimeout(r, 5 + Math.floor(Math.random() * 20)));
        const serial = m.body.serial;
        if (serial.endsWith('7') && !failedOnce.has(serial)) {
          failedOnce.add(serial);
          throw new Error(`the ledger is busy (${serial})`);
        }
        applied.set(serial, (applied.get(serial) ?? 0) + 1);
      }
    }

    const shared = { store: new MemoryIdempotencyStore(), cache: new MemoryIdempotencyCache() };
    const publisher = new RabbitMQPublisher({
      url: URL,
      logger: quiet,
      declare: [{ topic, consumerGroup: group, filter: 'PAY' }],
    });
    await publisher.start();
    cleanups.push(() => publisher.stop());
    const a = await consumer(PaymentConsumer, shared);
    const b = await consumer(PaymentConsumer, shared);
    cleanups.push(() => b.registry.stop());

    const serials = Array.from({ length: 60 }, (_, i) => `PAY-${String(i).padStart(3, '0')}`);
    const send = (serial: string) =>
      publisher.send({ topic, keys: [serial], routingKey: 'PAY', body: { serial, amount: 10 } });
    for (const [i, serial] of serials.entries()) {
      await send(serial);
      if (i % 6 === 0) await send(serial); // the producer resends: a second copy, same key
      if (i === 30) await killTransport(a.transport); // a consumer's connection dies mid-handler
    }

    const deadline = Date.now() + 40_000;
    while (Date.now() < deadline && !serials.every((s) => applied.has(s)))
      await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 500)); // what is still coming back is a duplicate
    await b.registry.stop();

    const doubleCharges = [...applied.values()].filter((n) => n > 1).length;
    const lost = serials.filter((s) => !applied.has(s)).length;
    expect({ doubleCharges, lost }).toEqual({ doubleCharges: 0, lost: 0 });
    expect(failedOnce.size).toBe(6);
    const inspector = await Inspector.open(URL);
    const names = topologyOf(topic, group);
    expect(await inspector.count(names.queue)).toBe(0);
    expect(await inspector.count(names.deadLetterQueue)).toBe(0);
    await inspector.close();
  });

  it('a payment that always fails is dead-lettered after its attempts, with the reason', {
    timeout: 30_000,
  }, async () => {
    const id = Math.random().toString(36).slice(2, 10);
    const topic = `payments-${id}`;
    const group = `billing-${id}`;
    cleanups.push(() => deleteTopology(topic, group));
    const attempts: number[] = [];

    @injectable()
    @RabbitMQListener({ topic, consumerGroup: group, maxAttempts: 3 })
    class FailingConsumer {
      @Idempotent({ key: (m: Payment) => m.keys })
      async onMessage(m: Payment, ctx: IdempotencyContext) {
        attempts.push(ctx.attempt);
        throw new Error(`card declined (${m.body.serial})`);
      }
    }

    const shared = { store: new MemoryIdempotencyStore(), cache: new MemoryIdempotencyCache() };
    const publisher = new RabbitMQPublisher({
      url: URL,
      logger: quiet,
      declare: [{ topic, consumerGroup: group }],
    });
    await publisher.start();
    cleanups.push(() => publisher.stop());
    const { registry } = await consumer(FailingConsumer, shared);
    cleanups.push(() => registry.stop());
    await publisher.send({ topic, keys: ['PAY-X'], body: { serial: 'PAY-X', amount: 1 } });

    const inspector = await Inspector.open(URL);
    const names = topologyOf(topic, group);
    const deadline = Date.now() + 20_000;
    while ((await inspector.count(names.deadLetterQueue)) === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const [dead] = await inspector.peek(names.deadLetterQueue);
    await inspector.close();
    const headers = dead?.properties.headers ?? {};
    expect(String(headers[RABBITMQ_HEADERS.deadLetterReason])).toContain('failed 3 of 3 attempts');
    expect(String(headers[RABBITMQ_HEADERS.deadLetterReason])).toContain('card declined (PAY-X)');
    expect(headers[RABBITMQ_HEADERS.attempt]).toBe(3);
    expect(attempts).toEqual([1, 2, 3]);
  });
});
