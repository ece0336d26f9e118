/** How the transport meets its broker: a connection of the user's, an unreachable broker, a refused declaration. */
import {
  RabbitMQConnectionError,
  RabbitMQPublisher,
  RabbitMQTopologyError,
  RabbitMQTransport,
  topologyOf,
} from '@idempotent-mq/rabbitmq';
import { connect } from 'amqplib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { eventually, Inspector, RABBITMQ_URL, RecordingLogger, spec, uniqueNames } from './support.js';

let inspector: Inspector;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  inspector = await Inspector.open();
});
afterAll(async () => {
  await inspector?.close();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('RabbitMQTransport connections', () => {
  it.each([
    ['a connection', () => connect(RABBITMQ_URL)],
    ['a recovering connection', () => connect(RABBITMQ_URL, { recovery: true })],
  ])('uses %s it is given, and leaves it open at stop()', async (_, open) => {
    const { topic, group } = uniqueNames('given');
    cleanups.push(() => inspector.deleteTopology(topic, group));
    const connection = await open();
    cleanups.push(() => connection.close().catch(() => undefined));
    connection.on('error', () => undefined);
    const transport = new RabbitMQTransport({ connection, logger: new RecordingLogger() });
    const publisher = new RabbitMQPublisher({ connection, declare: [{ topic, consumerGroup: group }] });
    await publisher.start();
    const seen: number[] = [];
    await transport.subscribe(
      spec(topic, group, (m) => {
        seen.push(m.deliveryAttempt);
        return seen.length === 1
          ? { action: 'retry', delayMs: 50, countsAsAttempt: true, reason: 'test' }
          : { action: 'ack' };
      }),
    );
    await publisher.send({ topic, keys: ['GIVEN-1'], body: {} });
    await eventually('retried and acked', () => seen.length === 2);
    await transport.stop();
    await publisher.stop();
    expect(seen).toEqual([1, 2]);
    // Still ours to use (and to close).
    const channel = await connection.createChannel();
    expect((await channel.checkQueue(topologyOf(topic, group).queue)).messageCount).toBe(0);
    await channel.close();
  });

  it("takes amqplib's connect options object as the url", async () => {
    const { topic, group } = uniqueNames('object');
    cleanups.push(() => inspector.deleteTopology(topic, group));
    const url = { protocol: 'amqp', hostname: '127.0.0.1', port: 5672, username: 'guest', password: 'guest' };
    const transport = new RabbitMQTransport({ url, logger: new RecordingLogger() });
    const publisher = new RabbitMQPublisher({ url, declare: [{ topic, consumerGroup: group }] });
    cleanups.push(() => publisher.stop());
    cleanups.push(() => transport.stop());
    await publisher.start();
    const seen: string[] = [];
    await transport.subscribe(
      spec(topic, group, (m) => {
        seen.push(m.keys[0] as string);
        return { action: 'ack' };
      }),
    );
    await publisher.send({ topic, keys: ['OBJECT-1'], body: {} });
    await eventually('delivered', () => seen.length === 1);
    expect(seen).toEqual(['OBJECT-1']);
  });

  it('subscribe rejects with RabbitMQConnectionError, the password masked, when the broker cannot be reached', async () => {
    const transport = new RabbitMQTransport({
      url: 'amqp://guest:secret@127.0.0.1:1',
      connectTimeoutMs: 1000,
    });
    const error = await transport
      .subscribe(spec('unreachable', 'billing', () => ({ action: 'ack' })))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RabbitMQConnectionError);
    expect((error as Error).message).toContain('amqp://guest:***@127.0.0.1:1');
    expect((error as Error).message).not.toContain('secret');
    expect((error as Error).message).toContain('ECONNREFUSED');
    await transport.stop();
  });

  it('subscribe rejects with RabbitMQTopologyError when a queue of that name exists with other arguments', async () => {
    const { topic, group } = uniqueNames('clash');
    cleanups.push(() => inspector.deleteTopology(topic, group));
    const connection = await connect(RABBITMQ_URL);
    const channel = await connection.createChannel();
    await channel.assertQueue(topologyOf(topic, group).queue, { durable: true, messageTtl: 1000 });
    await connection.close();
    const transport = new RabbitMQTransport({ url: RABBITMQ_URL, logger: new RecordingLogger() });
    const error = await transport
      .subscribe(spec(topic, group, () => ({ action: 'ack' })))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RabbitMQTopologyError);
    expect((error as Error).message).toContain('inequivalent arg');
    expect((error as Error).message).toContain('delete it');
    await transport.stop();
  });
});
