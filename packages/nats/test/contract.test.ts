/**
 * NatsTransport held to the transport contract (`@idempotent-mq/testing/vitest`) on the real nats-server with
 * JetStream: each test's topic has its own stream and dead-letter stream, deleted afterwards. A killed
 * consumer is one whose connection is closed on the spot: JetStream redelivers after `ack_wait`.
 */
import type { MessageTransport } from '@idempotent-mq/core';
import { NatsPublisher, NatsTransport } from '@idempotent-mq/nats';
import { describeTransportContract } from '@idempotent-mq/testing/vitest';
import type { JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll } from 'vitest';
import {
  admin,
  deadLetterKeys,
  deleteStreams,
  ensureTopicStream,
  NATS_URL,
  RecordingLogger,
  uniqueNames,
} from './support.js';

/** The consumers' ack_wait: how soon JetStream redelivers what a dead consumer held. */
const ACK_WAIT_MS = 1000;

let nc: NatsConnection;
let jsm: JetStreamManager;
let publisher: NatsPublisher;

beforeAll(async () => {
  ({ nc, jsm } = await admin());
  publisher = new NatsPublisher({ connection: nc });
  await publisher.start();
});

afterAll(async () => {
  await publisher?.stop();
  await nc?.close();
});

describeTransportContract('NatsTransport', async () => {
  const names = uniqueNames('contract');
  const connections = new Map<MessageTransport, NatsConnection>();
  const topics = new Set<string>();
  return {
    connect: async () => {
      // Each consumer on a connection of its own, as each process would have: kill() closes it.
      const connection = await connect({ servers: NATS_URL });
      const transport = new NatsTransport({
        connection,
        ackWaitMs: ACK_WAIT_MS,
        fetchExpiresMs: 1000,
        deadLetterSubjectPrefix: names.deadLetterSubjectPrefix,
        deadLetterStream: names.deadLetterStream,
        logger: new RecordingLogger(),
      });
      connections.set(transport, connection);
      return transport;
    },
    publish: async (topic, m) => {
      topics.add(topic);
      await ensureTopicStream(jsm, topic);
      await publisher.send({ topic, keys: [...m.keys], body: m.body });
    },
    deadLetters: (group) => deadLetterKeys(jsm, names, group),
    // SIGKILL: the connection goes at once; no ack, nak or working() of its handlers reaches the server.
    kill: async (t) => {
      await connections.get(t)?.close();
    },
    redeliveryMs: ACK_WAIT_MS,
    cleanup: async () => {
      await Promise.all([...connections.values()].map((c) => c.close().catch(() => undefined)));
      await deleteStreams(jsm, topics, [names.deadLetterStream]);
    },
  };
});
