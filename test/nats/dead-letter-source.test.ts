/**
 * `natsDeadLetterSource` on the real nats-server: letters dead-lettered by the real transport are read by
 * sequence (no consumer, nothing changed on the server), re-driven to their original subject with a fresh
 * delivery count (acked by the topic's stream before the letter is deleted), and what cannot be done is
 * said.
 */
import type { DeadLetter, Settlement, SubscriptionSpec, TransportMessage } from '@idempotent-mq/core/adapter';
import {
  DLQ_REASON,
  DLQ_SUBJECT,
  derivedStreamName,
  NatsPublisher,
  NatsTransport,
  natsDeadLetterSource,
} from '@idempotent-mq/nats';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
// The package's own test support: it resolves the @nats-io client from the package.
import {
  admin,
  deleteStreams,
  ensureTopicStream,
  NATS_URL,
  RecordingLogger,
  sleep,
  storedMessages,
  uniqueNames,
  until,
} from '../../packages/nats/test/support.js';

// Typed through the support module: the root resolves no @nats-io package itself.
let nc: Awaited<ReturnType<typeof admin>>['nc'];
let jsm: Awaited<ReturnType<typeof admin>>['jsm'];
let publisher: NatsPublisher;
const cleanups: (() => Promise<void>)[] = [];
const quiet = new RecordingLogger();

beforeAll(async () => {
  ({ nc, jsm } = await admin());
  publisher = new NatsPublisher({ connection: nc });
  await publisher.start();
});
afterAll(async () => {
  await publisher?.stop();
  await nc?.close();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type Names = ReturnType<typeof uniqueNames>;

function transport(names: Names): NatsTransport {
  const t = new NatsTransport({
    servers: NATS_URL,
    fetchExpiresMs: 1000,
    batchSize: 1,
    deadLetterSubjectPrefix: names.deadLetterSubjectPrefix,
    deadLetterStream: names.deadLetterStream,
    logger: quiet,
  });
  cleanups.push(() => t.stop());
  return t;
}

function spec(names: Names, group: string, answer: (m: TransportMessage) => Settlement): SubscriptionSpec {
  return {
    topic: names.topic,
    consumerGroup: group,
    concurrency: 1,
    maxAttempts: 17,
    listener: {},
    handle: async (messages) => messages.map(answer),
  };
}

/** Fresh names; `keys` published to the topic and dead-lettered by each of `groups`, one at a time. */
async function deadLettered(
  keys: readonly string[],
  groups: readonly string[] = ['billing'],
  options: { denyDelete?: boolean } = {},
) {
  const names = uniqueNames('dlqsrc');
  cleanups.push(() => deleteStreams(jsm, [names.topic], [names.deadLetterStream]));
  await ensureTopicStream(jsm, names.topic);
  if (options.denyDelete) {
    // A dead-letter stream made beforehand (the transport adopts it as it is) that refuses deletes.
    await jsm.streams.add({
      name: names.deadLetterStream,
      subjects: [`${names.deadLetterSubjectPrefix}.>`],
      deny_delete: true,
    });
  }
  for (const [i, key] of keys.entries()) {
    await publisher.send({
      topic: names.topic,
      keys: key,
      body: { serial: key, amount: 100 + i },
      headers: { tenant: 'acme' },
    });
  }
  const dead = () => ({ action: 'deadLetter', reason: 'card declined' }) as const;
  for (const group of groups) {
    const t = transport(names);
    await t.subscribe(spec(names, `${names.group}-${group}`, dead));
    const subject = `${names.deadLetterSubjectPrefix}.${names.group}-${group}`;
    await until(
      async () => (await storedMessages(jsm, names.deadLetterStream, subject)).length === keys.length,
      10_000,
      `every message dead-lettered by ${group}`,
    );
    await t.stop();
  }
  const source = (group?: string) => {
    const s = natsDeadLetterSource({
      servers: NATS_URL,
      deadLetterStream: names.deadLetterStream,
      deadLetterSubjectPrefix: names.deadLetterSubjectPrefix,
      ...(group ? { consumerGroup: `${names.group}-${group}` } : {}),
      logger: quiet,
    });
    cleanups.push(() => s.close?.() ?? Promise.resolve());
    return s;
  };
  return { names, source, group: (g: string) => `${names.group}-${g}` };
}

/** The messages `group` receives until `count` have come (acked), with a short wait for more. */
async function receive(names: Names, group: string, count: number): Promise<TransportMessage[]> {
  const got: TransportMessage[] = [];
  const t = transport(names);
  await t.subscribe(
    spec(names, group, (m) => {
      got.push(m);
      return { action: 'ack' };
    }),
  );
  await until(() => got.length >= count, 10_000, `${count} message(s) received`);
  await sleep(200);
  await t.stop();
  return got;
}

async function streamState(name: string) {
  const { state } = await jsm.streams.info(name);
  return { messages: state.messages, first: state.first_seq, last: state.last_seq };
}

describe('natsDeadLetterSource: list', () => {
  it('lists each letter oldest first with keys, reason, attempt and message, creating no consumer and changing nothing', async () => {
    const { names, source, group } = await deadLettered(['PAY-1', 'PAY-2', 'PAY-3']);
    const billing = source('billing');
    const before = await streamState(names.deadLetterStream);

    const first = await billing.list();
    const second = await billing.list();
    expect(billing.description).toBe(
      `NATS stream ${names.deadLetterStream} (${names.deadLetterSubjectPrefix}.${group('billing')})`,
    );
    expect(first.map((l) => l.keys)).toEqual([['PAY-1'], ['PAY-2'], ['PAY-3']]);
    expect(second).toEqual(first);
    expect(first.map((l) => l.id)).toEqual([1, 2, 3].map((seq) => `${names.deadLetterStream}:${seq}`));
    const topicStream = derivedStreamName(names.topic);
    expect(first[0]).toMatchObject({
      topic: names.topic,
      consumerGroup: group('billing'),
      keys: ['PAY-1'],
      messageId: `${topicStream}:1`,
      reason: 'card declined',
      deliveryAttempt: 1,
      message: {
        messageId: `${topicStream}:1`,
        topic: names.topic,
        keys: ['PAY-1'],
        body: { serial: 'PAY-1', amount: 100 },
        properties: { tenant: 'acme' },
      },
    });
    expect(first[0]?.deadLetteredAt).toBeGreaterThan(Date.now() - 60_000);
    expect(((first[0] as DeadLetter).message as TransportMessage).properties[DLQ_REASON]).toBeUndefined();

    expect(await streamState(names.deadLetterStream)).toEqual(before);
    const consumers: unknown[] = [];
    for await (const c of jsm.consumers.list(names.deadLetterStream)) consumers.push(c);
    expect(consumers).toEqual([]);
  });

  it("a source names one group's letters, or every group's in the stream", async () => {
    const { source, group } = await deadLettered(['PAY-1', 'PAY-2'], ['billing', 'shipping']);
    expect((await source('shipping').list()).map((l) => [l.consumerGroup, l.keys[0]])).toEqual([
      [group('shipping'), 'PAY-1'],
      [group('shipping'), 'PAY-2'],
    ]);
    expect((await source().list()).map((l) => [l.consumerGroup, l.keys[0]])).toEqual([
      [group('billing'), 'PAY-1'],
      [group('billing'), 'PAY-2'],
      [group('shipping'), 'PAY-1'],
      [group('shipping'), 'PAY-2'],
    ]);
  });

  it('reads at most maxLetters, oldest first', async () => {
    const { names } = await deadLettered(['A', 'B', 'C']);
    const source = natsDeadLetterSource({
      servers: NATS_URL,
      deadLetterStream: names.deadLetterStream,
      deadLetterSubjectPrefix: names.deadLetterSubjectPrefix,
      maxLetters: 2,
    });
    cleanups.push(() => source.close?.() ?? Promise.resolve());
    expect((await source.list()).map((l) => l.keys[0])).toEqual(['A', 'B']);
  });

  it('a dead-letter stream that does not exist is a clear error naming it and the option', async () => {
    const source = natsDeadLetterSource({ servers: NATS_URL, deadLetterStream: 'IMQTEST_NO_SUCH_DLQ' });
    cleanups.push(() => source.close?.() ?? Promise.resolve());
    await expect(source.list()).rejects.toThrow(
      /The dead-letter stream IMQTEST_NO_SUCH_DLQ does not exist.*"deadLetterStream"/,
    );
  });

  it('an unreachable server is a startup error naming it', async () => {
    const source = natsDeadLetterSource({ servers: '127.0.0.1:1', logger: quiet });
    cleanups.push(() => source.close?.() ?? Promise.resolve());
    const error = await source.list().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.name).toBe('NatsStartupError');
    expect(error?.message).toContain("dead-letter source's connection to 127.0.0.1:1");
  });
});

describe('natsDeadLetterSource: redrive', () => {
  it('publishes the letter to its subject with body, keys and headers, delivery count 1, then deletes only it', async () => {
    const { names, source, group } = await deadLettered(['PAY-1', 'PAY-2', 'PAY-3']);
    const billing = source('billing');
    const letters = await billing.list();
    const topicStream = derivedStreamName(names.topic);
    const stored = (await streamState(topicStream)).messages;

    await billing.redrive(letters[1] as DeadLetter);
    expect((await billing.list()).map((l) => l.id)).toEqual([letters[0]?.id, letters[2]?.id]);
    expect((await streamState(topicStream)).messages).toBe(stored + 1);
    const [copy] = (await storedMessages(jsm, topicStream, names.topic)).slice(-1);
    expect(copy?.header.get(DLQ_SUBJECT)).toBe('');
    expect(copy?.header.get('Nats-Msg-Id')).toBe(`imq-redrive:${letters[1]?.id}`);

    // The durable of the group has delivered everything before: the copy is all it gets.
    const again = await receive(names, group('billing'), 1);
    expect(again).toHaveLength(1);
    expect(again[0]).toMatchObject({
      topic: names.topic,
      keys: ['PAY-2'],
      body: { serial: 'PAY-2', amount: 101 },
      deliveryAttempt: 1,
    });
    expect(again[0]?.properties.tenant).toBe('acme');
    expect(Object.keys(again[0]?.properties ?? {}).filter((k) => k.includes('Dead-Letter'))).toEqual([]);
  });

  it('a letter no longer in the stream is an error saying so, and nothing is published', async () => {
    const { names, source } = await deadLettered(['PAY-1', 'PAY-2']);
    const billing = source('billing');
    const letters = await billing.list();
    await billing.redrive(letters[0] as DeadLetter);
    const topicStream = derivedStreamName(names.topic);
    const stored = (await streamState(topicStream)).messages;
    await expect(billing.redrive(letters[0] as DeadLetter)).rejects.toThrow(
      `Dead letter ${letters[0]?.id} is no longer in stream ${names.deadLetterStream}`,
    );
    expect((await streamState(topicStream)).messages).toBe(stored);
    await expect(billing.redrive({ ...(letters[1] as DeadLetter), id: 'OTHER_DLQ:2' })).rejects.toThrow(
      /redrive\(letter\)\.id.*"IMQTEST_DLQ_\w+:<sequence>"/,
    );
  });

  it('a copy no stream acks (its subject captured by none) leaves the letter where it was', async () => {
    const { names, source } = await deadLettered(['PAY-1']);
    const billing = source('billing');
    const letters = await billing.list();
    await jsm.streams.delete(derivedStreamName(names.topic));
    await expect(billing.redrive(letters[0] as DeadLetter)).rejects.toThrow(
      /Could not re-publish dead letter .* It stays in stream/,
    );
    expect((await billing.list()).map((l) => l.id)).toEqual(letters.map((l) => l.id));
  });
});

describe('natsDeadLetterSource: a letter that cannot be deleted after its copy was acked', () => {
  it('stays listed (a duplicate, never a loss), says so, and a second re-drive is dropped by the duplicate window', async () => {
    const { names, source } = await deadLettered(['PAY-1'], ['billing'], { denyDelete: true });
    const billing = source('billing');
    const [letter] = await billing.list();
    const topicStream = derivedStreamName(names.topic);
    const stored = (await streamState(topicStream)).messages;

    await expect(billing.redrive(letter as DeadLetter)).rejects.toThrow(
      new RegExp(
        `Dead letter ${letter?.id} was re-published to "${names.topic}" but could not be deleted from stream ` +
          `${names.deadLetterStream} .*re-driving it once more is answered by the consumer as a duplicate`,
      ),
    );
    expect((await streamState(topicStream)).messages).toBe(stored + 1);
    expect((await billing.list()).map((l) => l.id)).toEqual([letter?.id]);

    // Again, within the topic stream's duplicate window: JetStream keeps the first copy only.
    await expect(billing.redrive(letter as DeadLetter)).rejects.toThrow('could not be deleted');
    expect((await streamState(topicStream)).messages).toBe(stored + 1);
  });
});

describe('natsDeadLetterSource: options', () => {
  it.each([
    [{ servers: NATS_URL, maxLeters: 5 }, /natsDeadLetterSource\.maxLeters.*did you mean "maxLetters"/],
    [{ servers: NATS_URL, maxLetters: 0 }, /natsDeadLetterSource\.maxLetters.*an integer from 1 to 1000000/],
    [{ servers: NATS_URL, timeoutMs: 1 }, /natsDeadLetterSource\.timeoutMs.*from 100 to 600000/],
    [{ servers: NATS_URL, codec: 'xml' }, /natsDeadLetterSource\.codec.*'json', 'utf8', 'buffer'/],
    [{ servers: NATS_URL, deadLetterStream: 'IMQ.DLQ' }, /natsDeadLetterSource\.deadLetterStream/],
    [
      { servers: NATS_URL, deadLetterSubjectPrefix: 'imq.>' },
      /natsDeadLetterSource\.deadLetterSubjectPrefix/,
    ],
    [{ servers: NATS_URL, consumerGroup: 'bill.ing' }, /natsDeadLetterSource\.consumerGroup/],
    [{}, /natsDeadLetterSource\.servers.*either servers/],
  ])('refuses %o with the option named', (options, message) => {
    expect(() => natsDeadLetterSource(options as never)).toThrow(message);
  });
});
