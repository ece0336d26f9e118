/** The test broker's at-least-once semantics, seen through the bare rocketmq-client-nodejs SimpleConsumer. */
import { RocketMQPublisher } from '@idempotent-mq/rocketmq';
import { RocketMQTestBroker } from '@idempotent-mq/rocketmq-testing';
import { SimpleConsumer } from 'rocketmq-client-nodejs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordingLogger, sleep, useTempHome } from './support.js';

const restoreHome = useTempHome();
let broker: RocketMQTestBroker;
let publisher: RocketMQPublisher;
const consumers: SimpleConsumer[] = [];

beforeAll(async () => {
  broker = await RocketMQTestBroker.start({ maxDeliveryAttempts: 3 });
  publisher = new RocketMQPublisher({
    endpoints: broker.endpoints,
    topics: ['raw', 'raw-dlq'],
    logger: new RecordingLogger(),
  });
  await publisher.start();
});

afterAll(async () => {
  for (const c of consumers) await c.shutdown().catch(() => undefined);
  await publisher?.stop();
  await broker?.close();
  restoreHome();
});

async function consumer(group: string, topic: string): Promise<SimpleConsumer> {
  const c = new SimpleConsumer({
    endpoints: broker.endpoints,
    namespace: '',
    consumerGroup: group,
    subscriptions: new Map([[topic, '*']]),
    awaitDuration: 300,
    logger: new RecordingLogger(),
  });
  await c.startup();
  consumers.push(c);
  return c;
}

describe('RocketMQTestBroker', () => {
  it('redelivers an unacked message after its invisible time with deliveryAttempt + 1; the stale handle is refused', async () => {
    const c = await consumer('raw-g1', 'raw');
    const { messageId } = await publisher.send({ topic: 'raw', keys: ['RAW-1'], body: {} });
    const [first] = await c.receive(1, 1000);
    expect(first).toMatchObject({ messageId, deliveryAttempt: 1, keys: ['RAW-1'] });
    expect(first?.corrupted).toBeFalsy();
    expect(await c.receive(1, 1000)).toEqual([]); // invisible meanwhile
    await sleep(1100);
    const [second] = await c.receive(1, 1000);
    expect(second).toMatchObject({ messageId, deliveryAttempt: 2 });
    await expect(c.ack(first as never)).rejects.toMatchObject({ code: 40013 });
    await c.ack(second as never);
    expect(broker.stateOf('raw-g1', messageId)).toBe('acked');
    expect(broker.deliveries({ group: 'raw-g1', messageId }).map((d) => d.attempt)).toEqual([1, 2]);
  });

  it('dead-letters by itself past maxDeliveryAttempts, and keeps state across a restart', async () => {
    const c = await consumer('raw-g2', 'raw-dlq');
    const { messageId } = await publisher.send({ topic: 'raw-dlq', keys: ['RAW-2'], body: {} });
    for (let i = 1; i <= 3; i++) {
      const [m] = await c.receive(1, 1000);
      expect(m?.deliveryAttempt).toBe(i);
      if (i === 2) await broker.restart(100);
      await sleep(1050);
    }
    await c.receive(1, 1000).catch(() => []);
    expect(broker.deadLetters('raw-g2')).toEqual([
      expect.objectContaining({ cause: 'maxDeliveryAttempts', deliveryAttempt: 3, dlqTopic: '%DLQ%raw-g2' }),
    ]);
    expect(broker.stateOf('raw-g2', messageId)).toBe('dead');
  });
});
