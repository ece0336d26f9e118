/**
 * A few payments through the in-memory broker, to a consumer whose outcomes feed a Prometheus registry:
 * first deliveries, a resent copy (a duplicate), the same key with another amount (a conflict), and a
 * handler that fails once before it succeeds.
 */
import 'reflect-metadata';
import {
  IDEMPOTENCY_LOGGER,
  IDEMPOTENCY_OUTCOME_LISTENER,
  IdempotencyModule,
  Idempotent,
  ListenerRegistry,
  MESSAGE_TRANSPORT,
  MessageListener,
  type TransportMessage,
} from '@idempotent-mq/core';
import { InMemoryBroker } from '@idempotent-mq/testing';
import { Container, injectable } from 'inversify';
import { Registry } from 'prom-client';
import { prometheusOutcomeListener } from './outcome-metrics.js';

type Payment = TransportMessage<{ amount: number }>;

@injectable()
@MessageListener({ topic: 'payments', consumerGroup: 'billing' })
class PaymentConsumer {
  readonly charged: string[] = [];
  /** Fails the first try of these serials, as a downstream timeout would. */
  readonly failOnce = new Set(['PAY-4']);

  @Idempotent({ key: (m: Payment) => m.keys })
  async onMessage(m: Payment) {
    const serial = m.keys[0] as string;
    if (this.failOnce.delete(serial)) throw new Error(`the bank timed out on ${serial}`);
    this.charged.push(serial);
  }
}

/** What the example did, besides filling the registry. */
export interface ExampleRun {
  readonly registry: Registry;
  /** The serials charged, once each. */
  readonly charged: readonly string[];
}

/** Runs the payments; the metrics land in `registry` (a new one by default, never the global one). */
export async function runExample(registry: Registry = new Registry()): Promise<ExampleRun> {
  const broker = new InMemoryBroker();
  const container = new Container();
  container.load(new IdempotencyModule());
  container.rebind(IDEMPOTENCY_LOGGER).toConstantValue({ debug() {}, info() {}, warn() {}, error() {} });
  container.bind(IDEMPOTENCY_OUTCOME_LISTENER).toConstantValue(prometheusOutcomeListener(registry));
  container.bind(MESSAGE_TRANSPORT).toConstantValue(broker.connect());
  container.bind(PaymentConsumer).toSelf().inSingletonScope();
  const listeners = new ListenerRegistry(container, { retryBaseDelayMs: 10, retryMaxDelayMs: 50 });
  await listeners.start();

  for (const serial of ['PAY-1', 'PAY-2', 'PAY-3', 'PAY-4']) {
    broker.publish('payments', { keys: [serial], body: { amount: 100 } });
  }
  await broker.idle(10_000);
  broker.publish('payments', { keys: ['PAY-2'], body: { amount: 100 } }); // resent: a duplicate
  broker.publish('payments', { keys: ['PAY-3'], body: { amount: 999 } }); // same key, other payload
  await broker.idle(10_000);
  await listeners.stop();
  return { registry, charged: [...container.get(PaymentConsumer).charged].sort() };
}
