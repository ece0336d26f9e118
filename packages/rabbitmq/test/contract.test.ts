/**
 * RabbitMQTransport held to the transport contract (`@idempotent-mq/testing`) against the real server.
 * RabbitMQ keeps only what reaches a queue, so the harness declares each test's group (the publisher's
 * `declare`) before publishing; a killed consumer's socket is destroyed without an AMQP close.
 */
import { RabbitMQPublisher, RabbitMQTransport } from '@idempotent-mq/rabbitmq';
import { describeTransportContract } from '@idempotent-mq/testing/vitest';
import { afterAll, beforeAll } from 'vitest';
import { killTransport } from '../src/testing/index.js';
import { topologyOf } from '../src/topology.js';
import { Inspector, RABBITMQ_URL, RecordingLogger } from './support.js';

/** The suite names its topics `contract-<id>` and their group `contract-group-<id>`. */
const groupOf = (topic: string) => topic.replace(/^contract-/, 'contract-group-');
const topicOf = (group: string) => group.replace(/^contract-group-/, 'contract-');

let publisher: RabbitMQPublisher;
let inspector: Inspector;
const touched = new Set<string>();

beforeAll(async () => {
  publisher = new RabbitMQPublisher({ url: RABBITMQ_URL, logger: new RecordingLogger() });
  await publisher.start();
  inspector = await Inspector.open();
});

afterAll(async () => {
  await publisher?.stop();
  await inspector?.close();
});

describeTransportContract('RabbitMQTransport', async () => ({
  connect: () =>
    new RabbitMQTransport({
      url: RABBITMQ_URL,
      logger: new RecordingLogger(),
      reconnectBackoff: { initialMs: 50, maxMs: 500 },
    }),
  publish: async (topic, m) => {
    touched.add(topic);
    await publisher.declare({ topic, consumerGroup: groupOf(topic) });
    await publisher.send({ topic, keys: [...m.keys], body: m.body });
  },
  deadLetters: async (group) => {
    touched.add(topicOf(group));
    return inspector.keysIn(topologyOf(topicOf(group), group).deadLetterQueue);
  },
  kill: (t) => killTransport(t as RabbitMQTransport),
  // RabbitMQ gives back a dead consumer's deliveries as soon as its connection drops.
  redeliveryMs: 250,
  cleanup: async () => {
    for (const topic of touched) await inspector.deleteTopology(topic, groupOf(topic));
    touched.clear();
  },
}));
