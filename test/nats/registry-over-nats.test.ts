/**
 * End to end over NATS JetStream: `@NatsListener` + `@Idempotent` consumers in two containers (one
 * consumer group), the real ListenerRegistry, NatsTransport on the real server. The producer re-sends
 * payments under new message ids (past JetStream's duplicate window, which cannot drop them), and a
 * consumer restarts mid-stream: every payment is applied exactly once and none is lost. Then copies that
 * meet each other in flight wait without spending a delivery.
 */
import { randomUUID } from 'node:crypto';
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
import { NatsListener, NatsPublisher, NatsTransport, type SettledEvent } from '@idempotent-mq/nats';
import { Container, injectable } from 'inversify';
import { afterAll, describe, expect, it } from 'vitest';
// The package's own test support: it resolves the @nats-io client from the package.
import {
  admin,
  deadLetterKeys,
  deleteStreams,
  NATS_URL,
  RecordingLogger,
  until,
} from '../../packages/nats/test/support.js';

type Payment = TransportMessage<{ serial: string; amount: number }>;

const id = randomUUID().slice(0, 8);
const topics = { payments: `imqe2e.payments.${id}`, slow: `imqe2e.slow.${id}` };
const dead = { deadLetterSubjectPrefix: `imqe2e.dlq.${id}`, deadLetterStream: `IMQE2E_DLQ_${id}` };

afterAll(async () => {
  const { nc, jsm } = await admin();
  await deleteStreams(jsm, Object.values(topics), [dead.deadLetterStream]);
  await nc.close();
});

/** How many times each payment was applied, across both consumers. */
const applied = new Map<string, number>();

@injectable()
@NatsListener({ topic: topics.payments, consumerGroup: `billing-${id}`, concurrency: 4, maxAttempts: 10 })
class PaymentConsumer {
  // The business key is the payment's serial, whatever message id the producer gave each send. A
  // short lease: a copy that meets its twin in flight waits (in place) for the rest of the twin's lease.
  @Idempotent({ key: (m: Payment) => m.body.serial, leaseMs: 1500 })
  async onMessage(m: Payment) {
    await new Promise((r) => setTimeout(r, 5 + Math.floor(Math.random() * 20)));
    applied.set(m.body.serial, (applied.get(m.body.serial) ?? 0) + 1);
  }
}

const store = new MemoryIdempotencyStore();
const cache = new MemoryIdempotencyCache();

async function consumer(listener: new () => unknown, events?: SettledEvent[]): Promise<ListenerRegistry> {
  const container = new Container();
  container.load(new IdempotencyModule());
  container.rebind(IDEMPOTENCY_STORE).toConstantValue(store);
  container.rebind(IDEMPOTENCY_CACHE).toConstantValue(cache);
  container.bind(MESSAGE_TRANSPORT).toConstantValue(
    new NatsTransport({
      servers: NATS_URL,
      ackWaitMs: 2000,
      fetchExpiresMs: 1000,
      ...dead,
      logger: new RecordingLogger(),
      ...(events ? { onSettled: (e: SettledEvent) => events.push(e) } : {}),
    }),
  );
  container.bind(listener).toSelf().inSingletonScope();
  const registry = new ListenerRegistry(container, {
    retryBaseDelayMs: 50,
    retryMaxDelayMs: 200,
    inFlightDelayMs: 100,
  });
  await registry.start();
  return registry;
}

describe('payments over NATS JetStream', () => {
  it('applies every payment once across resends and a consumer restart: 0 double charges, 0 lost', {
    timeout: 60_000,
  }, async () => {
    const publisher = new NatsPublisher({ servers: NATS_URL });
    await publisher.start();
    let a = await consumer(PaymentConsumer);
    const b = await consumer(PaymentConsumer);
    const serials = Array.from({ length: 60 }, (_, i) => `PAY-${String(i).padStart(3, '0')}`);
    const send = async (serial: string, copy: number) => {
      // A new message id per send, as a producer that re-sends after a lost publish ack outside the window.
      await publisher.send({
        topic: topics.payments,
        keys: `${serial}#${copy}`,
        body: { serial, amount: 10 },
      });
    };

    for (const serial of serials.slice(0, 30)) await send(serial, 1);
    for (const serial of serials.slice(0, 30).filter((_, i) => i % 3 === 0)) await send(serial, 2);
    await a.stop(); // a consumer restarts mid-stream: drains, then a new one takes its place
    a = await consumer(PaymentConsumer);
    for (const serial of serials.slice(30)) await send(serial, 1);
    for (const serial of serials.slice(30).filter((_, i) => i % 3 === 0)) await send(serial, 2);

    const { nc, jsm } = await admin();
    const stream = await jsm.streams.find(topics.payments);
    await until(
      async () => {
        const info = await jsm.consumers.info(stream, `billing-${id}`);
        return serials.every((s) => applied.has(s)) && info.num_pending === 0 && info.num_ack_pending === 0;
      },
      40_000,
      'not every payment was applied and acknowledged',
    );
    await a.stop();
    await b.stop();
    await publisher.stop();
    expect((await jsm.streams.info(stream)).state.messages).toBe(80); // the resends are in the stream
    expect(await deadLetterKeys(jsm, dead, `billing-${id}`)).toEqual([]);
    await nc.close();

    const doubleCharges = [...applied.values()].filter((n) => n > 1).length;
    const lost = serials.filter((s) => !applied.has(s)).length;
    expect({ doubleCharges, lost }).toEqual({ doubleCharges: 0, lost: 0 });
  });
});

/** The ledger of the slow consumer. */
const slowApplied = new Map<string, number>();

@injectable()
@NatsListener({ topic: topics.slow, consumerGroup: `slow-billing-${id}`, concurrency: 1, maxAttempts: 2 })
class SlowPaymentConsumer {
  // A short lease, so that a waiting copy looks again soon after the holder's lease would end.
  @Idempotent({ key: (m: Payment) => m.body.serial, leaseMs: 600 })
  async onMessage(m: Payment) {
    await new Promise((r) => setTimeout(r, 800));
    slowApplied.set(m.body.serial, (slowApplied.get(m.body.serial) ?? 0) + 1);
  }
}

describe('copies waiting for each other over NATS JetStream', () => {
  it('waits spend no delivery: every copy delivered once by JetStream, no dead letter, each applied once', {
    timeout: 60_000,
  }, async () => {
    const events: SettledEvent[] = [];
    const publisher = new NatsPublisher({ servers: NATS_URL });
    await publisher.start();
    const a = await consumer(SlowPaymentConsumer, events);
    const b = await consumer(SlowPaymentConsumer, events);
    const serials = ['SLOW-1', 'SLOW-2', 'SLOW-3'];
    for (const serial of serials) {
      for (const copy of [1, 2]) {
        await publisher.send({ topic: topics.slow, keys: `${serial}#${copy}`, body: { serial, amount: 1 } });
      }
    }
    await until(
      () => events.filter((e) => e.action === 'ack' && e.ok).length === 6,
      40_000,
      'not every copy was settled',
    );
    await a.stop();
    await b.stop();
    await publisher.stop();
    expect([...slowApplied.entries()].sort()).toEqual(serials.map((s) => [s, 1]));
    expect(events.some((e) => e.action === 'retry' && e.countsAsAttempt === false)).toBe(true); // waits happened
    expect(events.every((e) => e.deliveryAttempt === 1)).toBe(true);
    const { nc, jsm } = await admin();
    expect(await deadLetterKeys(jsm, dead, `slow-billing-${id}`)).toEqual([]);
    await nc.close();
  });
});
