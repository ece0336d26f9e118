import type { MessageTransport } from '@idempotent-mq/core';
import { InMemoryBroker, type InMemoryTransport } from '../src/index.js';
import { describeTransportContract } from '../src/vitest/index.js';

const VISIBILITY_MS = 100;

describeTransportContract('InMemoryTransport', async () => {
  const broker = new InMemoryBroker({ visibilityTimeoutMs: VISIBILITY_MS, maxDeliveries: 5 });
  return {
    connect: () => broker.connect(),
    publish: async (topic, m) => {
      broker.publish(topic, m);
    },
    deadLetters: async (group) => broker.deadLetters(group).map((d) => d.message.keys),
    kill: async (t: MessageTransport) => (t as InMemoryTransport).kill(),
    redeliveryMs: VISIBILITY_MS,
  };
});
