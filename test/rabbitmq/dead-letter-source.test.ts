/**
 * `rabbitMQDeadLetterSource` on the shared RabbitMQ server: letters dead-lettered by the real transport
 * are listed without being consumed or reordered, re-driven to the group's queue with a fresh attempt
 * count (confirmed before the letter leaves the dead-letter queue), and what cannot be done is said.
 */
import type { DeadLetter, Settlement, TransportMessage } from '@idempotent-mq/core/adapter';
import {
  RABBITMQ_HEADERS,
  RabbitMQPublisher,
  RabbitMQTransport,
  rabbitMQDeadLetterSource,
  topologyOf,
} from '@idempotent-mq/rabbitmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
// The package's own test helpers (amqplib resolves from the package: the root does not depend on it).
import {
  eventually,
  Inspector,
  RABBITMQ_URL,
  RecordingLogger,
  sleep,
  spec,
  uniqueNames,
} from '../../packages/rabbitmq/test/support.js';

let inspector: Inspector;
let publisher: RabbitMQPublisher;
const cleanups: (() => Promise<void>)[] = [];
const quiet = new RecordingLogger();

beforeAll(async () => {
  inspector = await Inspector.open();
  publisher = new RabbitMQPublisher({ url: RABBITMQ_URL, logger: quiet });
  await publisher.start();
});
afterAll(async () => {
  await publisher?.stop();
  await inspector?.close();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A fresh group whose listener dead-letters every message of `keys`, in order; deleted after the test. */
async function deadLettered(keys: readonly string[]) {
  const { topic, group } = uniqueNames('dlqsrc');
  cleanups.push(() => inspector.deleteTopology(topic, group));
  const names = topologyOf(topic, group);
  await publisher.declare({ topic, consumerGroup: group });
  for (const [i, key] of keys.entries()) {
    await publisher.send({
      topic,
      keys: key,
      body: { serial: key, amount: 100 + i },
      routingKey: 'card',
      properties: { tenant: 'acme' },
    });
  }
  // One message at a time, so that the dead-letter queue holds them in the order they were sent.
  const transport = new RabbitMQTransport({ url: RABBITMQ_URL, logger: quiet, batchSize: 1 });
  await transport.subscribe(
    spec(topic, group, (): Settlement => ({ action: 'deadLetter', reason: 'card declined' }), {
      concurrency: 1,
    }),
  );
  await eventually(
    'every message dead-lettered',
    async () => (await inspector.count(names.deadLetterQueue)) === keys.length,
  );
  await transport.stop();
  const source = rabbitMQDeadLetterSource({ url: RABBITMQ_URL, topic, consumerGroup: group, logger: quiet });
  cleanups.push(() => source.close?.() ?? Promise.resolve());
  return { topic, group, names, source };
}

/** The messages the group's queue delivers until `count` have come (acked), with a short wait for more. */
async function receive(topic: string, group: string, count: number): Promise<TransportMessage[]> {
  const got: TransportMessage[] = [];
  const transport = new RabbitMQTransport({ url: RABBITMQ_URL, logger: quiet });
  await transport.subscribe(
    spec(topic, group, (m): Settlement => {
      got.push(m);
      return { action: 'ack' };
    }),
  );
  await eventually(`${count} message(s) received`, () => got.length >= count);
  await sleep(200); // anything more would arrive now
  await transport.stop();
  return got;
}

/** Deletes one queue, through the inspector's connection (its class has no method for one alone). */
async function deleteQueue(queue: string): Promise<void> {
  const { connection } = inspector as unknown as {
    connection: {
      createChannel(): Promise<{ deleteQueue(q: string): Promise<unknown>; close(): Promise<void> }>;
    };
  };
  const channel = await connection.createChannel();
  await channel.deleteQueue(queue);
  await channel.close();
}

/** The publish ids of the messages in `queue`, head first: who is where. */
async function order(queue: string): Promise<unknown[]> {
  return (await inspector.peek(queue)).map((m) => m.properties.headers?.[RABBITMQ_HEADERS.publishId]);
}

describe('rabbitMQDeadLetterSource: list', () => {
  it('lists each letter with its keys, reason, attempt and message, and leaves the queue as it was (count and order)', async () => {
    const { topic, group, names, source } = await deadLettered(['PAY-1', 'PAY-2', 'PAY-3']);
    const before = await order(names.deadLetterQueue);
    expect(before).toHaveLength(3);

    const first = await source.list();
    const second = await source.list();
    expect(source.description).toBe(`RabbitMQ queue ${names.deadLetterQueue}`);
    expect(first.map((l) => l.keys)).toEqual([['PAY-1'], ['PAY-2'], ['PAY-3']]);
    expect(second).toEqual(first);
    expect(first.map((l) => l.id)).toEqual(before.map((id) => `${group}/${id}`));
    expect(new Set(first.map((l) => l.id)).size).toBe(3);
    expect(first[0]).toMatchObject({
      topic,
      consumerGroup: group,
      keys: ['PAY-1'],
      messageId: 'PAY-1',
      reason: 'card declined',
      deliveryAttempt: 1,
      message: {
        topic,
        keys: ['PAY-1'],
        tag: 'card',
        body: { serial: 'PAY-1', amount: 100 },
        properties: { tenant: 'acme' },
      },
    });
    expect(first[0]?.deadLetteredAt).toBeGreaterThan(Date.now() - 60_000);

    expect(await inspector.count(names.deadLetterQueue)).toBe(3);
    expect(await order(names.deadLetterQueue)).toEqual(before);
  });

  it('reads at most maxLetters from the head, and gives every letter back', async () => {
    const { topic, group, names } = await deadLettered(['A', 'B', 'C']);
    const source = rabbitMQDeadLetterSource({
      url: RABBITMQ_URL,
      topic,
      consumerGroup: group,
      maxLetters: 2,
    });
    cleanups.push(() => source.close?.() ?? Promise.resolve());
    expect((await source.list()).map((l) => l.keys[0])).toEqual(['A', 'B']);
    expect(await inspector.count(names.deadLetterQueue)).toBe(3);
  });

  it('a group whose dead-letter queue does not exist is a clear error naming it', async () => {
    const { topic, group } = uniqueNames('dlqnone');
    const source = rabbitMQDeadLetterSource({
      url: RABBITMQ_URL,
      topic,
      consumerGroup: group,
      logger: quiet,
    });
    cleanups.push(() => source.close?.() ?? Promise.resolve());
    await expect(source.list()).rejects.toThrow(`RabbitMQ queue ${topic}.${group}.dlq does not exist`);
  });

  it('an unreachable broker is a connection error naming where (password masked)', async () => {
    const source = rabbitMQDeadLetterSource({
      url: 'amqp://guest:secret@127.0.0.1:1',
      topic: 'payments',
      consumerGroup: 'billing',
      logger: quiet,
    });
    cleanups.push(() => source.close?.() ?? Promise.resolve());
    const error = await source.list().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.name).toBe('RabbitMQConnectionError');
    expect(error?.message).toContain('amqp://guest:***@127.0.0.1:1');
    expect(error?.message).not.toContain('secret');
  });
});

describe('rabbitMQDeadLetterSource: redrive', () => {
  it('sends the letter to its group again with body, keys, routing key and properties, attempt 1, and removes only it', async () => {
    const { topic, group, names, source } = await deadLettered(['PAY-1', 'PAY-2', 'PAY-3']);
    const letters = await source.list();
    const pay2 = letters[1] as DeadLetter;
    await source.redrive(pay2);

    expect((await source.list()).map((l) => l.id)).toEqual([letters[0]?.id, letters[2]?.id]);
    expect(await inspector.count(names.deadLetterQueue)).toBe(2);

    const again = await receive(topic, group, 1);
    expect(again).toHaveLength(1);
    expect(again[0]).toMatchObject({
      topic,
      keys: ['PAY-2'],
      tag: 'card',
      body: { serial: 'PAY-2', amount: 101 },
      properties: { tenant: 'acme' },
      deliveryAttempt: 1,
    });

    // The copy as RabbitMQ holds it (looked at, not consumed: a look counts as a redelivery).
    await source.redrive(letters[2] as DeadLetter);
    const [copy] = await inspector.peek(names.queue);
    const headers = copy?.properties.headers ?? {};
    expect(copy?.properties.messageId).toBe('PAY-3');
    expect(headers[RABBITMQ_HEADERS.keys]).toBe('["PAY-3"]');
    expect(headers[RABBITMQ_HEADERS.routingKey]).toBe('card');
    expect(headers[RABBITMQ_HEADERS.attempt]).toBeUndefined();
    expect(headers[RABBITMQ_HEADERS.deadLetterReason]).toBeUndefined();
    expect(headers[RABBITMQ_HEADERS.deadLetteredAt]).toBeUndefined();
    expect(headers[RABBITMQ_HEADERS.retryReason]).toBe(`re-driven from ${names.deadLetterQueue}`);
    expect((await source.list()).map((l) => l.id)).toEqual([letters[0]?.id]);
  });

  it('a letter no longer in the queue is an error saying so, and nothing is published', async () => {
    const { names, source } = await deadLettered(['PAY-1', 'PAY-2']);
    const letters = await source.list();
    await source.redrive(letters[0] as DeadLetter);
    await expect(source.redrive(letters[0] as DeadLetter)).rejects.toThrow(
      `Dead letter ${letters[0]?.id} is no longer in ${names.deadLetterQueue}`,
    );
    expect(await inspector.count(names.queue)).toBe(1); // the first re-drive's copy only
    expect(await inspector.count(names.deadLetterQueue)).toBe(1);
  });

  it('a copy RabbitMQ does not confirm (no group queue to route to) leaves the letter where it was', async () => {
    const { names, source } = await deadLettered(['PAY-1', 'PAY-2']);
    const letters = await source.list();
    // The group's queue is gone: the mandatory publish comes back unroutable, so there is no confirm.
    await deleteQueue(names.queue);
    await expect(source.redrive(letters[1] as DeadLetter)).rejects.toThrow(
      /Could not re-publish dead letter .* to queue .*: .*It stays in/,
    );
    expect(await inspector.count(names.deadLetterQueue)).toBe(2);
    expect((await source.list()).map((l) => l.id)).toEqual(letters.map((l) => l.id));
  });

  it("refuses a letter of another group's source", async () => {
    const { source } = await deadLettered(['PAY-1']);
    const [letter] = await source.list();
    await expect(source.redrive({ ...(letter as DeadLetter), consumerGroup: 'shipping' })).rejects.toThrow(
      're-drive it through its own source',
    );
  });
});

describe('rabbitMQDeadLetterSource: options', () => {
  const base = { url: RABBITMQ_URL, topic: 'payments', consumerGroup: 'billing' };
  it.each([
    [{ ...base, maxLeters: 5 }, /rabbitMQDeadLetterSource\.maxLeters.*did you mean "maxLetters"/],
    [{ ...base, maxLetters: 0 }, /rabbitMQDeadLetterSource\.maxLetters.*an integer from 1 to 1000000/],
    [{ ...base, confirmTimeoutMs: 5 }, /rabbitMQDeadLetterSource\.confirmTimeoutMs.*from 100 to 600000/],
    [{ ...base, codec: 'xml' }, /rabbitMQDeadLetterSource\.codec.*'json', 'utf8', 'buffer'/],
    [{ ...base, topic: 'pay.ments' }, /rabbitMQDeadLetterSource\.topic.*no '\.'/],
    [{ ...base, consumerGroup: undefined }, /rabbitMQDeadLetterSource\.consumerGroup/],
    [{ ...base, url: 'http://x' }, /rabbitMQDeadLetterSource\.url.*amqp:\/\//],
  ])('refuses %o with the option named', (options, message) => {
    expect(() => rabbitMQDeadLetterSource(options as never)).toThrow(message);
  });
});
