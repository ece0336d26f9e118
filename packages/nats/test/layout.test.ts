/**
 * The stream and consumer layout a subscription finds or creates: the stream that captures the topic
 * (or a new `IMQ_<topic>`), the group's durable pull consumer, the dead-letter stream; and what
 * contradicts it fails with the fix, changing nothing.
 */
import type { TransportMessage } from '@idempotent-mq/core';
import {
  derivedStreamName,
  NatsLayoutConflictError,
  NatsPublisher,
  NatsStartupError,
  NatsTransport,
} from '@idempotent-mq/nats';
import { AckPolicy, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { admin, deleteStreams, RecordingLogger, uniqueNames, until } from './support.js';

let nc: NatsConnection;
let jsm: JetStreamManager;
let names: ReturnType<typeof uniqueNames>;
let transport: NatsTransport;
const extraStreams: string[] = [];

beforeEach(async () => {
  ({ nc, jsm } = await admin());
  names = uniqueNames('layout');
  transport = new NatsTransport({
    connection: nc,
    ackWaitMs: 4000,
    fetchExpiresMs: 1000,
    deadLetterSubjectPrefix: names.deadLetterSubjectPrefix,
    deadLetterStream: names.deadLetterStream,
    logger: new RecordingLogger(),
  });
});
afterEach(async () => {
  await transport.stop();
  await deleteStreams(jsm, [names.topic], [names.deadLetterStream, ...extraStreams.splice(0)]);
  await nc.close();
});

const subscribe = (t: NatsTransport, over: Record<string, unknown> = {}) =>
  t.subscribe({
    topic: names.topic,
    consumerGroup: names.group,
    concurrency: 2,
    maxAttempts: 3,
    listener: {},
    handle: async (messages) => messages.map(() => ({ action: 'ack' }) as const),
    ...over,
  });

describe('NatsTransport stream and consumer layout', () => {
  it('creates IMQ_<topic> and a durable pull consumer named after the group, with explicit acks', async () => {
    await subscribe(transport);
    const stream = derivedStreamName(names.topic);
    expect(stream).toBe(`IMQ_${names.topic.replace(/\./g, '_')}`);
    expect((await jsm.streams.info(stream)).config.subjects).toEqual([names.topic]);
    const { config } = await jsm.consumers.info(stream, names.group);
    expect(config).toMatchObject({
      durable_name: names.group,
      ack_policy: AckPolicy.Explicit,
      ack_wait: 4000 * 1e6,
      max_deliver: -1,
      filter_subject: names.topic,
    });
    expect(config.deliver_subject).toBeUndefined();
    expect((await jsm.streams.info(names.deadLetterStream)).config.subjects).toEqual([
      `${names.deadLetterSubjectPrefix}.>`,
    ]);
  });

  it('reads the stream that already captures the topic, with a wildcard', async () => {
    const existing = `IMQTEST_WIDE_${names.id}`;
    extraStreams.push(existing);
    await jsm.streams.add({ name: existing, subjects: [`imqtest.layout.${names.id}.>`] });
    const topic = `imqtest.layout.${names.id}.orders.created`;
    await subscribe(transport, { topic });
    expect((await jsm.consumers.info(existing, names.group)).config.filter_subject).toBe(topic);
  });

  it('a durable of the group with another filter fails with the fix, and is left as it was', async () => {
    const stream = `IMQTEST_WIDE_${names.id}`;
    extraStreams.push(stream);
    await jsm.streams.add({ name: stream, subjects: [`${names.topic}.>`] });
    await jsm.consumers.add(stream, {
      durable_name: names.group,
      ack_policy: AckPolicy.Explicit,
      filter_subject: `${names.topic}.eu`,
    });
    const error = await subscribe(transport, { topic: `${names.topic}.us` }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NatsLayoutConflictError);
    expect((error as Error).message).toMatch(/already filters ".*\.eu", not ".*\.us".*another consumerGroup/);
    expect((await jsm.consumers.info(stream, names.group)).config.filter_subject).toBe(`${names.topic}.eu`);
  });

  it('a named stream that does not capture the topic fails naming the fix', async () => {
    const named = `IMQTEST_NAMED_${names.id}`;
    extraStreams.push(named);
    await jsm.streams.add({ name: named, subjects: [`imqtest.other.${names.id}`] });
    const error = await subscribe(transport, { listener: { stream: named } }).catch((e) => e);
    expect(error).toBeInstanceOf(NatsLayoutConflictError);
    expect((error as Error).message).toMatch(/Add ".*" to its subjects/);
  });

  it('a durable deleted under a running subscription is created again, and fetching goes on', async () => {
    const seen: string[] = [];
    await subscribe(transport, {
      handle: async (messages: readonly TransportMessage[]) => {
        seen.push(...messages.map((m) => m.keys[0] as string));
        return messages.map(() => ({ action: 'ack' }) as const);
      },
    });
    const stream = derivedStreamName(names.topic);
    await jsm.consumers.delete(stream, names.group);
    const publisher = new NatsPublisher({ connection: nc });
    await publisher.start();
    await publisher.send({ topic: names.topic, keys: 'AFTER-DELETE', body: {} });
    await until(() => seen.includes('AFTER-DELETE'), 15_000, 'fetching never resumed');
    expect((await jsm.consumers.info(stream, names.group)).config.max_deliver).toBe(-1);
  });

  it('a server that cannot be reached fails subscribe() with NatsStartupError', async () => {
    const down = new NatsTransport({
      servers: '127.0.0.1:1',
      startupTimeoutMs: 500,
      logger: new RecordingLogger(),
    });
    await expect(subscribe(down)).rejects.toBeInstanceOf(NatsStartupError);
    await down.stop();
  });
});
