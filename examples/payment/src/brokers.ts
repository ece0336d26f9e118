/**
 * The broker side of the demo, either embedded (the in-memory broker with seeded faults) or RocketMQ
 * (the real client against the gRPC test broker with its faults on, or a real proxy at
 * `ROCKETMQ_ENDPOINTS`).
 */
import type { MessageTransport } from '@idempotent-mq/core';
import { RocketMQPublisher, RocketMQTransport } from '@idempotent-mq/rocketmq';
import { RocketMQTestBroker } from '@idempotent-mq/rocketmq/testing';
import { type BrokerFaults, InMemoryBroker } from '@idempotent-mq/testing';
import type { PaymentRequest } from './payment-consumer.js';

export const TOPIC = 'payments';
export const GROUP = 'billing';

/** What the scenario needs of a broker. */
export interface BrokerSetup {
  readonly label: string;
  /** Sends one payment keyed by its serial number. */
  publish(serial: string, body: PaymentRequest): Promise<void>;
  /** A new connection, for one consumer process. */
  connect(): MessageTransport;
  /** Something a broker goes through mid-run (a restart), if it can. */
  disrupt(): Promise<void>;
  /** Resolves once every message is settled for good (or, without introspection, `applied` reaches `total`). */
  idle(timeoutMs: number, applied: () => number, total: number): Promise<void>;
  /** Counts for the report: messages stored, deliveries by cause, dead letters. */
  stats(): { stored: number; deliveries: Record<string, number>; deadLetters: number };
  close(): Promise<void>;
}

export function memoryBroker(seed: number, faults: BrokerFaults): BrokerSetup {
  const broker = new InMemoryBroker({ seed, visibilityTimeoutMs: 50, faults });
  return {
    label: 'in-memory broker',
    publish: async (serial, body) => {
      broker.publish(TOPIC, { keys: [serial], body, tag: 'PAY' });
    },
    connect: () => broker.connect(),
    disrupt: async () => {},
    idle: (timeoutMs) => broker.idle(timeoutMs),
    stats: () => ({
      stored: broker.stored,
      deliveries: {
        first: broker.deliveries.first,
        resend: broker.deliveries.resend,
        'lost ack': broker.deliveries.lostAck,
        rebalance: broker.deliveries.rebalance,
        'consumer crash': broker.deliveries.crash,
        retry: broker.deliveries.retry,
      },
      deadLetters: broker.deadLetters().length,
    }),
    close: async () => {},
  };
}

const quiet = { info() {}, warn() {}, error() {}, debug() {} };

/**
 * RocketMQ: the gRPC test broker on 127.0.0.1 unless `endpoints` names a real proxy (an empty string
 * forces the test broker). Faults on the test
 * broker: duplicate sends and dropped or lost acks at the given rates, and a restart when disrupted.
 */
export async function rocketmqBroker(
  payments: number,
  faults: BrokerFaults,
  endpoints = process.env.ROCKETMQ_ENDPOINTS,
): Promise<BrokerSetup> {
  const double = endpoints ? undefined : await RocketMQTestBroker.start();
  const target = endpoints || (double as RocketMQTestBroker).endpoints;
  if (double) {
    double.faults.duplicateSends = Math.round(payments * faults.producerResend);
    double.faults.dropAcks = Math.round(payments * faults.lostAck);
    double.faults.loseAckResponses = Math.round(payments * faults.crash);
  }
  const client = { endpoints: target, logger: quiet, requestTimeout: 3000 };
  const publisher = new RocketMQPublisher({ ...client, topics: [TOPIC] });
  await publisher.start();
  const transports: RocketMQTransport[] = [];
  return {
    label: double ? `RocketMQ (real client ↔ test broker at ${target})` : `RocketMQ proxy at ${target}`,
    async publish(serial, body) {
      // A send during a broker restart fails fast; the producer retries, as a real producer would.
      for (let tries = 0; ; tries++) {
        try {
          await publisher.send({ topic: TOPIC, keys: [serial], tag: 'PAY', body });
          return;
        } catch (error) {
          if (tries >= 100) throw error;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    connect() {
      const transport = new RocketMQTransport({
        ...client,
        awaitDurationMs: 300,
        invisibleDurationMs: 2000,
        receiveBackoff: { initialMs: 100, maxMs: 500 },
      });
      transports.push(transport);
      return transport;
    },
    disrupt: async () => {
      if (!process.env.NO_RESTART) await double?.restart(300);
    },
    async idle(timeoutMs, applied, total) {
      const deadline = Date.now() + timeoutMs;
      const settled = () =>
        double
          ? double
              .messages(TOPIC)
              .every((m) => ['acked', 'dead'].includes(double.stateOf(GROUP, m.messageId)))
          : applied() >= total;
      while (!settled()) {
        if (Date.now() > deadline) throw new Error('the RocketMQ broker still has unsettled messages');
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stats(): ReturnType<BrokerSetup['stats']> {
      if (!double) return { stored: payments, deliveries: {}, deadLetters: 0 };
      const deliveries = double.deliveries({ group: GROUP });
      return {
        stored: double.messages(TOPIC).length,
        deliveries: {
          first: deliveries.filter((d) => d.attempt === 1).length,
          redelivered: deliveries.filter((d) => d.attempt > 1).length,
          'acks dropped': double.acks(GROUP).filter((a) => !a.applied).length,
        },
        deadLetters: double.deadLetters(GROUP).length,
      };
    },
    async close() {
      await publisher.stop();
      await double?.close();
    },
  };
}
