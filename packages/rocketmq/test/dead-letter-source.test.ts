/**
 * `rocketMQDeadLetterSource` through the real rocketmq-client-nodejs against the gRPC test broker:
 * letters dead-lettered by the real transport are read from `%DLQ%<group>` as a reader group and left
 * visible (count and letters unchanged), re-driven to the original topic (the send answered before the
 * letter is acked out), and what cannot be done is said: a failed send, a gone letter, a write-only
 * dead-letter topic, a reader group with too few attempts, bad options, an unreachable proxy.
 */
import { createServer } from 'node:net';
import type { DeadLetter, TransportMessage } from '@idempotent-mq/core/adapter';
import {
  MIN_READER_ATTEMPTS,
  RocketMQPublisher,
  RocketMQStartupError,
  RocketMQTransport,
  rocketMQDeadLetterSource,
} from '@idempotent-mq/rocketmq';
import { RocketMQTestBroker } from '@idempotent-mq/rocketmq-testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  deadLetterAll,
  eventually,
  fastOptions,
  RecordingLogger,
  recordingSpec,
  sleep,
  useTempHome,
} from './support.js';

const restoreHome = useTempHome();
const READER = 'imq-dlq-reader';
const quiet = new RecordingLogger();
let broker: RocketMQTestBroker;
let serial = 0;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  // The reader group is given many attempts, as an operator does (mqadmin updateSubGroup -r).
  broker = await RocketMQTestBroker.start({ groupMaxDeliveryAttempts: { [READER]: MIN_READER_ATTEMPTS } });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await broker?.close();
  restoreHome();
});

function source(on: RocketMQTestBroker, topic: string, group: string, extra: Record<string, unknown> = {}) {
  const s = rocketMQDeadLetterSource({
    endpoints: on.endpoints,
    topic,
    consumerGroup: group,
    readerGroup: READER,
    awaitDurationMs: 300,
    timeoutMs: 2000,
    requestTimeout: 1000,
    startupTimeoutMs: 5000,
    logger: quiet,
    ...extra,
  });
  cleanups.push(() => s.close?.() ?? Promise.resolve());
  return s;
}

/** A fresh topic and group on `on`; `keys` published and dead-lettered by the real transport, in order. */
async function deadLettered(keys: readonly string[], on: RocketMQTestBroker = broker) {
  serial++;
  const topic = `payments-${serial}`;
  const group = `billing-${serial}`;
  const publisher = new RocketMQPublisher({ endpoints: on.endpoints, topics: [topic], logger: quiet });
  await publisher.start();
  const ids: string[] = [];
  for (const [i, key] of keys.entries()) {
    const receipt = await publisher.send({
      topic,
      keys: [key],
      tag: 'PAY',
      properties: { tenant: 'acme' },
      body: { serial: key, amount: 100 + i },
    });
    ids.push(receipt.messageId);
  }
  await publisher.stop();
  await deadLetterAll(on, topic, group, keys.length, quiet);
  return { topic, group, ids, dlqTopic: `%DLQ%${group}` };
}

/** What `group` receives on `topic` until `count` have come (acked), and a little longer. */
async function receive(topic: string, group: string, count: number): Promise<TransportMessage[]> {
  const transport = new RocketMQTransport(fastOptions(broker.endpoints, quiet));
  const spec = recordingSpec({ topic, consumerGroup: group });
  await transport.subscribe(spec);
  await eventually(`${count} message(s) received`, () => spec.received.length >= count);
  await sleep(300);
  await transport.stop();
  return spec.received;
}

/** The dead letters the reader group has not acked: what the source still has to show. */
const waiting = (dlqTopic: string) =>
  broker.messages(dlqTopic).filter((m) => broker.stateOf(READER, m.messageId, dlqTopic) !== 'acked');

describe('rocketMQDeadLetterSource: list', () => {
  it('lists each letter with its keys, id and message, and leaves every one there and visible (count and letters)', async () => {
    const { topic, group, ids, dlqTopic } = await deadLettered(['PAY-1', 'PAY-2', 'PAY-3']);
    const s = source(broker, topic, group);
    const first = await s.list();
    // Right after: a letter still hidden by the first listing would be missing here.
    const second = await s.list();
    expect(s.description).toBe(`RocketMQ topic ${dlqTopic} (read as group ${READER})`);
    expect(first.map((l) => l.keys)).toEqual([['PAY-1'], ['PAY-2'], ['PAY-3']]);
    expect(second).toEqual(first);
    expect(first.map((l) => l.id)).toEqual(ids.map((id) => `${group}/${id}`));
    expect(first[0]).toEqual({
      id: `${group}/${ids[0]}`,
      topic,
      consumerGroup: group,
      keys: ['PAY-1'],
      messageId: ids[0],
      message: expect.objectContaining({
        messageId: ids[0],
        topic,
        keys: ['PAY-1'],
        tag: 'PAY',
        body: { serial: 'PAY-1', amount: 100 },
        // Only the user's properties: RETRY_TOPIC and ORIGIN_MESSAGE_ID stay with the broker, as a proxy keeps them.
        properties: { tenant: 'acme' },
        deliveryAttempt: 1,
      }),
    });
    expect(waiting(dlqTopic)).toHaveLength(3);
    expect(broker.acked(READER).filter((id) => ids.includes(id))).toEqual([]);
    // Each was received and made visible again (ChangeInvisibleDuration 0), never acked.
    const released = broker.invisibleChanges(READER).filter((c) => ids.includes(c.messageId));
    expect(released.map((c) => c.durationMs)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('reads at most maxLetters, and gives every one back', async () => {
    const { topic, group, dlqTopic } = await deadLettered(['A', 'B', 'C']);
    const s = source(broker, topic, group, { maxLetters: 2 });
    expect((await s.list()).map((l) => l.keys[0])).toEqual(['A', 'B']);
    expect((await source(broker, topic, group).list()).map((l) => l.keys[0])).toEqual(['A', 'B', 'C']);
    expect(waiting(dlqTopic)).toHaveLength(3);
  });

  it('a group with no dead-letter topic yet (RocketMQ creates it with the first letter) lists nothing, at once', async () => {
    const s = source(broker, 'payments-none', 'billing-none');
    const started = Date.now();
    expect(await s.list()).toEqual([]);
    // No start-up retries with their 1 s + 2 s sleeps: the missing route is taken as the answer.
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('a write-only dead-letter topic (perm 2, as brokers before 4.9.2 made them) is refused with the fix, until it is made readable', async () => {
    const old = await RocketMQTestBroker.start({
      deadLetterTopicPerm: 2,
      groupMaxDeliveryAttempts: { [READER]: MIN_READER_ATTEMPTS },
    });
    cleanups.push(() => old.close());
    const { topic, group, dlqTopic } = await deadLettered(['PAY-1'], old);
    expect(old.topicPerm(dlqTopic)).toBe(2);
    const s = source(old, topic, group);
    const started = Date.now();
    await expect(s.list()).rejects.toThrow(
      `${dlqTopic} is not readable: its perm is write-only (brokers before 4.9.2 create dead-letter topics with ` +
        `perm 2). Make it readable, then run this again: mqadmin updateTopicPerm -n <namesrv> -c <cluster> ` +
        `-t '${dlqTopic}' -p 6`,
    );
    expect(Date.now() - started).toBeLessThan(1500);
    expect(old.deliveries({ group: READER })).toEqual([]);

    old.updateTopicPerm(dlqTopic, 6);
    expect((await s.list()).map((l) => l.keys)).toEqual([['PAY-1']]);
  });

  it("a reader group with RocketMQ's default attempts is refused before anything is received, naming the fix", async () => {
    const { topic, group } = await deadLettered(['PAY-1']);
    const s = rocketMQDeadLetterSource({
      endpoints: broker.endpoints,
      topic,
      consumerGroup: group,
      logger: quiet,
    });
    cleanups.push(() => s.close?.() ?? Promise.resolve());
    expect(s.description).toBe(`RocketMQ topic %DLQ%${group} (read as group ${group}-dlq-reader)`);
    await expect(s.list()).rejects.toThrow(
      `The reader group ${group}-dlq-reader allows 17 delivery attempts`,
    );
    await expect(s.list()).rejects.toThrow(
      `mqadmin updateSubGroup -n <namesrv> -c <cluster> -g ${group}-dlq-reader -r ${MIN_READER_ATTEMPTS}`,
    );
    expect(broker.deliveries({ group: `${group}-dlq-reader` })).toEqual([]);
  });

  it('an unreachable proxy is a RocketMQStartupError naming it, within startupTimeoutMs', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const s = rocketMQDeadLetterSource({
      endpoints: `127.0.0.1:${port}`,
      topic: 'payments',
      consumerGroup: 'billing',
      startupTimeoutMs: 1500,
      requestTimeout: 1000,
      logger: quiet,
    });
    cleanups.push(() => s.close?.() ?? Promise.resolve());
    const started = Date.now();
    const error = await s.list().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(Date.now() - started).toBeLessThan(4000);
    expect(error).toBeInstanceOf(RocketMQStartupError);
    expect(error?.message).toContain(`127.0.0.1:${port}`);
  });
});

describe('rocketMQDeadLetterSource: redrive', () => {
  it('sends the letter to its topic with body, keys, tag and properties, the group receives it at attempt 1, and only it leaves the dead letters', async () => {
    const { topic, group, ids, dlqTopic } = await deadLettered(['PAY-1', 'PAY-2', 'PAY-3']);
    const s = source(broker, topic, group);
    const letters = await s.list();
    const before = broker.messages(topic).length;
    await s.redrive(letters[1] as DeadLetter);

    expect(broker.acked(READER).filter((id) => ids.includes(id))).toEqual([ids[1]]);
    expect((await s.list()).map((l) => l.id)).toEqual([letters[0]?.id, letters[2]?.id]);
    expect(waiting(dlqTopic).map((m) => m.keys)).toEqual([['PAY-1'], ['PAY-3']]);
    const sent = broker.messages(topic).slice(before);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      keys: ['PAY-2'],
      tag: 'PAY',
      properties: { tenant: 'acme' },
      body: Buffer.from(JSON.stringify({ serial: 'PAY-2', amount: 101 })),
    });

    const again = await receive(topic, group, 1);
    expect(again).toHaveLength(1);
    expect(again[0]).toMatchObject({
      topic,
      keys: ['PAY-2'],
      tag: 'PAY',
      body: { serial: 'PAY-2', amount: 101 },
      properties: { tenant: 'acme' },
      deliveryAttempt: 1,
    });
  });

  it('a letter no longer there is an error saying so, and nothing is sent', async () => {
    const { topic, group, dlqTopic } = await deadLettered(['PAY-1', 'PAY-2']);
    const s = source(broker, topic, group);
    const [first] = await s.list();
    await s.redrive(first as DeadLetter);
    const sent = broker.messages(topic).length;
    await expect(s.redrive(first as DeadLetter)).rejects.toThrow(
      `Dead letter ${first?.id} is no longer in ${dlqTopic} (re-driven or acked by group ${READER} since it was listed); nothing was published.`,
    );
    expect(broker.messages(topic).length).toBe(sent);
    expect((await s.list()).map((l) => l.keys)).toEqual([['PAY-2']]);
  });

  it('a send the broker refuses leaves the letter where it was, visible at once', async () => {
    const { topic, group, dlqTopic } = await deadLettered(['PAY-1', 'PAY-2']);
    const s = source(broker, topic, group);
    const letters = await s.list();
    const sent = broker.messages(topic).length;
    broker.faults.failSends = 100; // every try of the producer's
    try {
      await expect(s.redrive(letters[1] as DeadLetter)).rejects.toThrow(
        new RegExp(
          `Could not re-publish dead letter ${letters[1]?.id} to topic "${topic}": .*It stays in ${dlqTopic}\\.`,
        ),
      );
    } finally {
      broker.faults.failSends = 0;
    }
    expect(broker.messages(topic).length).toBe(sent);
    expect(broker.acked(READER).filter((id) => letters.some((l) => l.messageId === id))).toEqual([]);
    expect((await s.list()).map((l) => l.id)).toEqual(letters.map((l) => l.id));
  });

  it('an ack whose answer is lost after the send says the copy went out and what a second re-drive does', async () => {
    const { topic, group } = await deadLettered(['PAY-1']);
    const s = source(broker, topic, group);
    const [letter] = await s.list();
    const sent = broker.messages(topic).length;
    broker.faults.loseAckResponses = 1;
    await expect(s.redrive(letter as DeadLetter)).rejects.toThrow(
      `Dead letter ${letter?.id} was re-published to topic "${topic}" but could not be acked out of %DLQ%${group}`,
    );
    expect(broker.messages(topic).length).toBe(sent + 1);
  });

  it("refuses a letter of another group's source", async () => {
    const { topic, group } = await deadLettered(['PAY-1']);
    const s = source(broker, topic, group);
    const [letter] = await s.list();
    await expect(s.redrive({ ...(letter as DeadLetter), consumerGroup: 'shipping' })).rejects.toThrow(
      're-drive it through its own source',
    );
  });
});

describe('rocketMQDeadLetterSource: options', () => {
  const base = { endpoints: '127.0.0.1:8081', topic: 'payments', consumerGroup: 'billing' };
  it.each([
    [{ ...base, maxLeters: 5 }, /rocketMQDeadLetterSource\.maxLeters.*did you mean "maxLetters"/],
    [{ ...base, readerGroupe: 'r' }, /rocketMQDeadLetterSource\.readerGroupe.*did you mean "readerGroup"/],
    [{ ...base, maxLetters: 0 }, /rocketMQDeadLetterSource\.maxLetters.*an integer from 1 to 1000000/],
    [{ ...base, timeoutMs: 5 }, /rocketMQDeadLetterSource\.timeoutMs.*from 100 to 600000/],
    [
      { ...base, timeoutMs: 20_000, invisibleDurationMs: 30_000 },
      /rocketMQDeadLetterSource\.invisibleDurationMs.*an integer from 40001 to 43200000/,
    ],
    [
      { ...base, timeoutMs: 1000, invisibleDurationMs: 5000 },
      /rocketMQDeadLetterSource\.invisibleDurationMs.*from 10000/,
    ],
    [{ ...base, awaitDurationMs: 0 }, /rocketMQDeadLetterSource\.awaitDurationMs.*from 100 to 300000/],
    [{ ...base, codec: 'xml' }, /rocketMQDeadLetterSource\.codec.*'json', 'utf8', 'buffer'/],
    [{ ...base, topic: 'pay.ments' }, /rocketMQDeadLetterSource\.topic.*\[A-Za-z0-9%_-\]/],
    [{ ...base, consumerGroup: undefined }, /rocketMQDeadLetterSource\.consumerGroup/],
    [{ ...base, readerGroup: 'bad group' }, /rocketMQDeadLetterSource\.readerGroup.*\[A-Za-z0-9%_-\]/],
    [{ ...base, readerGroup: 'billing' }, /rocketMQDeadLetterSource\.readerGroup.*a group of its own/],
    [{ ...base, consumerGroup: 'g'.repeat(120) }, /rocketMQDeadLetterSource\.readerGroup.*1 to 127/],
    [{ ...base, endpoints: 'http://x' }, /rocketMQDeadLetterSource\.endpoints.*'host:port'/],
  ])('refuses %o with the option named', (options, message) => {
    expect(() => rocketMQDeadLetterSource(options as never)).toThrow(message);
  });
});
