/**
 * `dlq list` and `dlq redrive` on real brokers, through the transports' own dead-letter sources
 * (`rabbitMQDeadLetterSource`, `natsDeadLetterSource`) and a real PostgreSQL token table: letters
 * dead-lettered by the real transports are listed without being consumed or reordered; a letter whose
 * token is completed is skipped as a duplicate, the others are re-driven and reach a consumer again.
 */
import type {
  DeadLetterSource,
  Settlement,
  SubscriptionSpec,
  TransportMessage,
} from '@idempotent-mq/core/adapter';
import { NatsPublisher, NatsTransport, natsDeadLetterSource } from '@idempotent-mq/nats';
import {
  RABBITMQ_HEADERS,
  RabbitMQPublisher,
  RabbitMQTransport,
  rabbitMQDeadLetterSource,
  topologyOf,
} from '@idempotent-mq/rabbitmq';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
// The transports' own test helpers: they resolve amqplib and the @nats-io client from their packages.
import {
  admin,
  deleteStreams,
  ensureTopicStream,
  NATS_URL,
  storedMessages,
  uniqueNames as uniqueNatsNames,
} from '../../nats/test/support.js';
import { Inspector, RABBITMQ_URL, uniqueNames as uniqueRabbitNames } from '../../rabbitmq/test/support.js';
import type { IdempotentMqConfig } from '../src/index.js';
import {
  type Backend,
  cli,
  closedPort,
  openBackend,
  removeScratch,
  sleep,
  uniqueScope,
} from './support/cli.js';

const quiet = { info() {}, warn() {}, error() {} };
const KEYS = ['PAY-1', 'PAY-2', 'PAY-3'] as const;

/** One broker's dead letters for group `billing` of a fresh topic, and how to look at them from outside. */
interface Fixture {
  /** Opens a dead-letter source on them (what the config's factory calls). */
  source(): DeadLetterSource;
  /** A source of the same kind on a loopback port nothing listens on. */
  unreachable(port: number): DeadLetterSource;
  /** What the broker holds as dead letters, in its order (publish ids, sequences). */
  deadLetters(): Promise<string[]>;
  /** How many messages are waiting for (or were stored for) the group. */
  published(): Promise<number>;
  /** The messages the group receives until `count` have come (acked). */
  receive(count: number): Promise<TransportMessage[]>;
  close(): Promise<void>;
}

/** A listener that gives up on every message at once. */
const deadLetterAll: SubscriptionSpec['handle'] = async (messages) =>
  messages.map((): Settlement => ({ action: 'deadLetter', reason: 'card declined' }));

function spec(topic: string, group: string, handle: SubscriptionSpec['handle']): SubscriptionSpec {
  return { topic, consumerGroup: group, concurrency: 1, maxAttempts: 17, listener: {}, handle };
}

async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Collects what `subscribe` delivers (acking it) until `count` have come, then a little longer. */
async function collect(
  subscribe: (handle: SubscriptionSpec['handle']) => Promise<void>,
  stop: () => Promise<void>,
  count: number,
): Promise<TransportMessage[]> {
  const got: TransportMessage[] = [];
  await subscribe(async (messages) => {
    got.push(...messages);
    return messages.map((): Settlement => ({ action: 'ack' }));
  });
  await until(`${count} message(s) received`, () => got.length >= count);
  await sleep(200); // anything more would arrive now
  await stop();
  return got;
}

async function rabbitFixture(): Promise<Fixture> {
  const { topic, group } = uniqueRabbitNames('clidlq');
  const names = topologyOf(topic, group);
  const inspector = await Inspector.open();
  const publisher = new RabbitMQPublisher({
    url: RABBITMQ_URL,
    logger: quiet,
    declare: [{ topic, consumerGroup: group }],
  });
  await publisher.start();
  for (const key of KEYS)
    await publisher.send({ topic, keys: key, body: { serial: key }, routingKey: 'card' });
  await publisher.stop();
  const transport = new RabbitMQTransport({ url: RABBITMQ_URL, logger: quiet, batchSize: 1 });
  await transport.subscribe(spec(topic, group, deadLetterAll));
  await until('dead-lettered', async () => (await inspector.count(names.deadLetterQueue)) === KEYS.length);
  await transport.stop();
  return {
    source: () => rabbitMQDeadLetterSource({ url: RABBITMQ_URL, topic, consumerGroup: group, logger: quiet }),
    unreachable: (port) =>
      rabbitMQDeadLetterSource({
        url: `amqp://guest:guest@127.0.0.1:${port}`,
        topic,
        consumerGroup: group,
        logger: quiet,
      }),
    deadLetters: async () =>
      (await inspector.peek(names.deadLetterQueue)).map((m) =>
        String(m.properties.headers?.[RABBITMQ_HEADERS.publishId]),
      ),
    published: async () => (await inspector.count(names.queue)) ?? -1,
    receive: (count) => {
      const consumer = new RabbitMQTransport({ url: RABBITMQ_URL, logger: quiet });
      return collect(
        (handle) => consumer.subscribe(spec(topic, group, handle)),
        () => consumer.stop(),
        count,
      );
    },
    close: async () => {
      await inspector.deleteTopology(topic, group);
      await inspector.close();
    },
  };
}

async function natsFixture(): Promise<Fixture> {
  const names = uniqueNatsNames('clidlq');
  const { nc, jsm } = await admin();
  const stream = await ensureTopicStream(jsm, names.topic);
  const publisher = new NatsPublisher({ connection: nc });
  await publisher.start();
  for (const key of KEYS) await publisher.send({ topic: names.topic, keys: key, body: { serial: key } });
  const layout = {
    servers: NATS_URL,
    deadLetterSubjectPrefix: names.deadLetterSubjectPrefix,
    deadLetterStream: names.deadLetterStream,
    logger: quiet,
  };
  const transport = new NatsTransport({ ...layout, batchSize: 1, fetchExpiresMs: 1000 });
  await transport.subscribe(spec(names.topic, names.group, deadLetterAll));
  const dlqSubject = `${names.deadLetterSubjectPrefix}.${names.group}`;
  const stored = () => storedMessages(jsm, names.deadLetterStream, dlqSubject);
  await until('dead-lettered', async () => (await stored()).length === KEYS.length);
  await transport.stop();
  const { deadLetterStream, deadLetterSubjectPrefix } = layout;
  return {
    source: () =>
      natsDeadLetterSource({
        servers: NATS_URL,
        deadLetterStream,
        deadLetterSubjectPrefix,
        consumerGroup: names.group,
      }),
    unreachable: (port) =>
      natsDeadLetterSource({
        servers: `127.0.0.1:${port}`,
        deadLetterStream,
        deadLetterSubjectPrefix,
        logger: quiet,
      }),
    deadLetters: async () => (await stored()).map((m) => String(m.seq)),
    published: async () => (await jsm.streams.info(stream)).state.messages,
    receive: (count) => {
      const consumer = new NatsTransport({ ...layout, fetchExpiresMs: 1000 });
      return collect(
        (handle) => consumer.subscribe(spec(names.topic, names.group, handle)),
        () => consumer.stop(),
        count,
      );
    },
    close: async () => {
      await deleteStreams(jsm, [names.topic], [names.deadLetterStream]);
      await publisher.stop();
      await nc.close();
    },
  };
}

afterAll(removeScratch);

const brokers: [string, () => Promise<Fixture>][] = [
  ['RabbitMQ', rabbitFixture],
  ['NATS JetStream', natsFixture],
];

for (const [broker, open] of brokers) {
  describe(`dlq over ${broker}, tokens in PostgreSQL`, () => {
    let b: Backend;
    let fixture: Fixture;
    let scope: string;
    let config: IdempotentMqConfig;
    beforeAll(async () => {
      b = await openBackend('postgresql');
    });
    afterAll(async () => {
      await b?.close();
    });
    beforeEach(async () => {
      scope = uniqueScope();
      fixture = await open();
      config = { deadLetters: [{ name: 'broker', source: () => fixture.source(), scope }] };
      // PAY-1 was processed after all (by another copy); PAY-2 and PAY-3 failed (their tokens released).
      await b.seed({ scope, key: 'PAY-1' }, { ttlMs: 3_600_000 });
    });
    afterEach(async () => {
      await fixture?.close();
    });

    it('list shows each letter with its token state, and leaves the dead letters as they were (count and order)', async () => {
      const before = await fixture.deadLetters();
      expect(before).toHaveLength(3);
      const run = await cli(['dlq', 'list', '--json'], { env: b.env, config });
      expect(run.code).toBe(0);
      const doc = run.json<{ letters: Record<string, unknown>[] }>();
      expect(doc.letters.map((l) => [l.keys, l.tokenState, l.wouldRedrive])).toEqual([
        [['PAY-1'], 'completed', false],
        [['PAY-2'], 'absent', true],
        [['PAY-3'], 'absent', true],
      ]);
      expect(doc.letters[0]).toMatchObject({
        source: 'broker',
        reason: 'card declined',
        deliveryAttempt: 1,
        token: { scope, key: 'PAY-1' },
      });
      const again = await cli(['dlq', 'list', '--json'], { env: b.env, config });
      expect(again.json()).toEqual(doc);
      expect(await fixture.deadLetters()).toEqual(before);
    });

    it('redrive skips the completed token as a duplicate and re-drives the failed ones, which reach the consumer again', async () => {
      const before = await fixture.deadLetters();
      const published = await fixture.published();
      const run = await cli(['dlq', 'redrive', '--json'], { env: b.env, config });
      expect(run.code).toBe(0);
      const doc = run.json<{ letters: Record<string, unknown>[] }>();
      expect(doc).toMatchObject({ command: 'dlq redrive', counts: { skipped: 1, redriven: 2, failed: 0 } });
      expect(doc.letters.map((l) => [l.keys, l.action, l.why])).toEqual([
        [['PAY-1'], 'skipped', 'duplicate: token completed'],
        [['PAY-2'], 'redriven', 'token absent: it never completed (failed, or never ran)'],
        [['PAY-3'], 'redriven', 'token absent: it never completed (failed, or never ran)'],
      ]);
      expect(await fixture.published()).toBe(published + 2);
      // Only the skipped letter is left, where it was.
      expect(await fixture.deadLetters()).toEqual(before.slice(0, 1));

      const arrived = await fixture.receive(2);
      expect(arrived.map((m) => m.keys[0])).toEqual(['PAY-2', 'PAY-3']);
      expect(arrived.map((m) => m.deliveryAttempt)).toEqual([1, 1]);
      expect(arrived[0]?.body).toEqual({ serial: 'PAY-2' });

      const left = await cli(['dlq', 'list', '--json'], { env: b.env, config });
      expect(left.json<{ letters: { keys: string[] }[] }>().letters.map((l) => l.keys[0])).toEqual(['PAY-1']);
    });

    it('redrive --id of a letter that is no longer there is not found (exit 3), and nothing is sent', async () => {
      const list = await cli(['dlq', 'list', '--json'], { env: b.env, config });
      const pay2 = list
        .json<{ letters: { id: string; keys: string[] }[] }>()
        .letters.find((l) => l.keys[0] === 'PAY-2');
      const id = pay2?.id as string;
      const once = await cli(['dlq', 'redrive', '--id', id, '--json'], { env: b.env, config });
      expect(once.json()).toMatchObject({ counts: { redriven: 1, skipped: 0, failed: 0 } });
      const published = await fixture.published();
      const twice = await cli(['dlq', 'redrive', '--id', id], { env: b.env, config });
      expect(twice.code).toBe(3);
      expect(twice.stderr).toContain(`No dead letter with id ${id}`);
      expect(await fixture.published()).toBe(published);
      expect(await fixture.deadLetters()).toHaveLength(2);
    });

    it('an unreachable broker is a clear message naming the source, and exit 1', async () => {
      const port = await closedPort();
      const unreachable: IdempotentMqConfig = {
        deadLetters: [{ name: 'down', source: () => fixture.unreachable(port), scope }],
      };
      for (const command of ['list', 'redrive']) {
        const run = await cli(['dlq', command], { env: b.env, config: unreachable });
        expect(run.code).toBe(1);
        expect(run.stderr).toContain('The dead-letter source "down" could not list its dead letters');
        expect(run.stderr).toContain(`127.0.0.1:${port}`);
        expect(run.stderr).toMatch(/ECONNREFUSED|CONNECTION_REFUSED|refused/i);
      }
      expect(await fixture.deadLetters()).toHaveLength(3);
    });
  });
}

describe('a dead-letter source that refuses its options', () => {
  let b: Backend;
  beforeAll(async () => {
    b = await openBackend('sqlite');
  });
  afterAll(async () => {
    await b.close();
  });

  it('is a configuration error (exit 2) naming the option and the nearest name, not an unreachable broker', async () => {
    const misspelt: IdempotentMqConfig = {
      deadLetters: [
        {
          name: 'rabbit',
          // A config file is JavaScript: the misspelling reaches the source at run time.
          source: () =>
            rabbitMQDeadLetterSource({
              url: RABBITMQ_URL,
              topic: 'payments',
              consumerGroup: 'billing',
              confirmTimeoutMS: 5,
            } as never),
          scope: uniqueScope(),
        },
      ],
    };
    const run = await cli(['dlq', 'list', '--json'], { env: b.env, config: misspelt });
    expect(run.code).toBe(2);
    expect(run.json<{ error: { code: string } }>().error.code).toBe('CONFIG');
    expect(run.stderr + run.stdout).toContain('confirmTimeoutMS');
    expect(run.stderr + run.stdout).toContain('confirmTimeoutMs');
  });
});
