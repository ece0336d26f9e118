/**
 * RocketMQTransport held to the transport contract (`@idempotent-mq/testing`): the real client against
 * the gRPC test broker, whose groups allow only 3 deliveries, so that a wait is seen not to spend any.
 */
import type { MessageTransport } from '@idempotent-mq/core';
import { RocketMQPublisher, RocketMQTransport } from '@idempotent-mq/rocketmq';
import { killTransport } from '@idempotent-mq/rocketmq/testing';
import { RocketMQTestBroker } from '@idempotent-mq/rocketmq-testing';
import { describeTransportContract } from '@idempotent-mq/testing/vitest';
import { afterAll, beforeAll } from 'vitest';
import { RecordingLogger, useTempHome } from './support.js';

/** The invisible time of a received message: how soon the broker redelivers what a dead consumer held. */
const INVISIBLE_MS = 1000;

const restoreHome = useTempHome();
let broker: RocketMQTestBroker;
let publisher: RocketMQPublisher;

beforeAll(async () => {
  broker = await RocketMQTestBroker.start({ maxDeliveryAttempts: 3 });
  // The producer announces one topic (a real proxy refuses none) and sends to each test's own topic.
  publisher = new RocketMQPublisher({
    endpoints: broker.endpoints,
    topics: ['contract'],
    logger: new RecordingLogger(),
  });
  await publisher.start();
});

afterAll(async () => {
  await publisher?.stop();
  await broker?.close();
  restoreHome();
});

describeTransportContract('RocketMQTransport', async () => ({
  connect: () =>
    new RocketMQTransport({
      endpoints: broker.endpoints,
      logger: new RecordingLogger(),
      awaitDurationMs: 300,
      invisibleDurationMs: INVISIBLE_MS,
      requestTimeout: 1000,
      startupTimeoutMs: 5000,
      receiveBackoff: { initialMs: 100, maxMs: 500 },
      maxDeliveryAttempts: 3,
    }),
  publish: async (topic, m) => {
    await publisher.send({ topic, keys: [...m.keys], body: m.body });
  },
  deadLetters: async (group) => broker.deadLetters(group).map((d) => d.message.keys),
  kill: (t: MessageTransport) => killTransport(t as RocketMQTransport),
  redeliveryMs: INVISIBLE_MS,
}));
