/** RabbitMQPublisher against the real server: keys where RabbitMQ carries them, confirms, a clean stop. */
import {
  NotStartedError,
  RABBITMQ_HEADERS,
  RabbitMQPublishError,
  RabbitMQPublisher,
  RabbitMQTransport,
  topologyOf,
} from '@idempotent-mq/rabbitmq';
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

async function started(options: Partial<ConstructorParameters<typeof RabbitMQPublisher>[0]> = {}) {
  const { topic, group } = uniqueNames('publish');
  const publisher = new RabbitMQPublisher({
    url: RABBITMQ_URL,
    declare: [{ topic, consumerGroup: group }],
    ...options,
  });
  cleanups.push(() => inspector.deleteTopology(topic, group));
  cleanups.push(() => publisher.stop());
  await publisher.start();
  return { publisher, topic, group, names: topologyOf(topic, group) };
}

describe('RabbitMQPublisher', () => {
  it('sets the key as the messageId and in our keys header, a JSON body, persistent, and resolves once confirmed', async () => {
    const { publisher, topic, names } = await started();
    const receipt = await publisher.send({ topic, keys: 'PAY-1', body: { amount: 10 }, routingKey: 'PAY' });
    expect(receipt).toEqual({ messageId: 'PAY-1', keys: ['PAY-1'] });
    const [m] = await inspector.peek(names.queue);
    expect(m?.properties).toMatchObject({
      messageId: 'PAY-1',
      contentType: 'application/json',
      deliveryMode: 2,
    });
    expect(m?.properties.headers?.[RABBITMQ_HEADERS.keys]).toBe('["PAY-1"]');
    expect(m?.fields.routingKey).toBe('PAY');
    expect(JSON.parse(m?.content.toString() ?? '')).toEqual({ amount: 10 });
  });

  it('keeps several keys exact: ["a,b"] and ["a", "b"] never read alike', async () => {
    const { publisher, topic, names } = await started();
    const one = await publisher.send({ topic, keys: ['a,b'], body: {} });
    const two = await publisher.send({ topic, keys: ['a', 'b'], body: {} });
    expect([one.messageId, two.messageId]).toEqual(['a,b', '["a","b"]']);
    expect(await inspector.keysIn(names.queue)).toEqual([['a,b'], ['a', 'b']]);
  });

  it('a consumer sees the keys, the tag, the properties and when it was born', async () => {
    const { publisher, topic, group } = await started();
    const transport = new RabbitMQTransport({ url: RABBITMQ_URL, logger: new RecordingLogger() });
    cleanups.push(() => transport.stop());
    const seen: unknown[] = [];
    await transport.subscribe(
      spec(topic, group, (m) => {
        seen.push(m);
        return { action: 'ack' };
      }),
    );
    const before = Date.now();
    await publisher.send({
      topic,
      keys: ['K-1', 'K-2'],
      body: 'text?',
      routingKey: 'eu.PAY',
      properties: { region: 'eu', n: 3 },
    });
    await eventually('delivered', () => seen.length === 1);
    expect(seen[0]).toMatchObject({
      topic,
      keys: ['K-1', 'K-2'],
      tag: 'eu.PAY',
      body: 'text?',
      properties: { region: 'eu', n: '3' },
      deliveryAttempt: 1,
      messageId: '["K-1","K-2"]',
    });
    expect((seen[0] as { bornAt: number }).bornAt).toBeGreaterThanOrEqual(before);
  });

  it('refuses a message no queue would receive (mandatory), unless told not to', async () => {
    const { publisher } = await started();
    const { topic: nowhere } = uniqueNames('nowhere');
    cleanups.push(() => inspector.deleteTopology(nowhere, 'none'));
    const error = await publisher
      .send({ topic: nowhere, keys: ['LOST-1'], body: {} })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RabbitMQPublishError);
    expect(error).toMatchObject({ failure: 'unroutable', code: 'PUBLISH_FAILED' });
    expect((error as Error).message).toContain('Declare the consumer groups first');
    const lax = new RabbitMQPublisher({ url: RABBITMQ_URL, mandatory: false });
    await lax.start();
    await expect(lax.send({ topic: nowhere, keys: ['LOST-2'], body: {} })).resolves.toMatchObject({
      messageId: 'LOST-2',
    });
    await lax.stop();
  });

  it('stop() waits for the sends in flight, then refuses more; start() and stop() are idempotent', async () => {
    const { publisher, topic, names } = await started();
    await publisher.start();
    const sends = Array.from({ length: 50 }, (_, i) =>
      publisher.send({ topic, keys: [`STOP-${i}`], body: { i } }),
    );
    await publisher.stop();
    await expect(Promise.all(sends)).resolves.toHaveLength(50);
    expect(await inspector.count(names.queue)).toBe(50);
    await expect(publisher.send({ topic, keys: ['LATE'], body: {} })).rejects.toBeInstanceOf(NotStartedError);
    await expect(publisher.start()).rejects.toBeInstanceOf(NotStartedError);
    await publisher.stop();
  });
});
