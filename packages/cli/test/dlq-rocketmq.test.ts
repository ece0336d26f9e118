import {
  MIN_READER_ATTEMPTS,
  RocketMQPublisher,
  RocketMQTransport,
  rocketMQDeadLetterSource,
} from '@idempotent-mq/rocketmq';
import { RocketMQTestBroker } from '@idempotent-mq/rocketmq-testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
// The transport's own test helpers: the client writes its log under $HOME, pointed at a temp folder.
import {
  deadLetterAll,
  eventually,
  fastOptions,
  recordingSpec,
  useTempHome,
} from '../../rocketmq/test/support.js';
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

const restoreHome = useTempHome();
const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const KEYS = ['PAY-1', 'PAY-2', 'PAY-3'] as const;
const READER = 'cli-dlq-reader';
let broker: RocketMQTestBroker;
let b: Backend;
let serial = 0;

beforeAll(async () => {
  // The reader group is given many attempts, as an operator does (mqadmin updateSubGroup -r).
  broker = await RocketMQTestBroker.start({ groupMaxDeliveryAttempts: { [READER]: MIN_READER_ATTEMPTS } });
  b = await openBackend('postgresql');
});
afterAll(async () => {
  await b?.close();
  await broker?.close();
  removeScratch();
  restoreHome();
});

const sourceOptions = (endpoints: string, topic: string, group: string) => ({
  endpoints,
  topic,
  consumerGroup: group,
  readerGroup: READER,
  awaitDurationMs: 300,
  timeoutMs: 2000,
  requestTimeout: 1000,
  startupTimeoutMs: 2000,
  logger: quiet,
});

/** Publishes KEYS to a fresh topic and has group `billing-<n>` dead-letter each, in order. */
async function deadLettered(on: RocketMQTestBroker) {
  serial++;
  const topic = `payments-${serial}`;
  const group = `billing-${serial}`;
  const publisher = new RocketMQPublisher({ endpoints: on.endpoints, topics: [topic], logger: quiet });
  await publisher.start();
  for (const key of KEYS) await publisher.send({ topic, keys: [key], tag: 'PAY', body: { serial: key } });
  await publisher.stop();
  await deadLetterAll(on, topic, group, KEYS.length, quiet as never);
  return { topic, group, dlqTopic: `%DLQ%${group}` };
}

describe('dlq over RocketMQ (test broker), tokens in PostgreSQL', () => {
  let topic: string;
  let group: string;
  let dlqTopic: string;
  let scope: string;
  let config: IdempotentMqConfig;
  /** The letters the reader group has not acked, in the dead-letter topic's order: what is still there. */
  const waiting = () =>
    broker
      .messages(dlqTopic)
      .filter((m) => broker.stateOf(READER, m.messageId, dlqTopic) !== 'acked')
      .map((m) => m.keys[0]);

  beforeEach(async () => {
    ({ topic, group, dlqTopic } = await deadLettered(broker));
    scope = uniqueScope();
    config = {
      deadLetters: [
        {
          name: 'rocketmq',
          source: () => rocketMQDeadLetterSource(sourceOptions(broker.endpoints, topic, group)),
          scope,
        },
      ],
    };
    // PAY-1 was processed after all (by another copy); PAY-2 and PAY-3 failed (their tokens released).
    await b.seed({ scope, key: 'PAY-1' }, { ttlMs: 3_600_000 });
  });

  it('list shows each letter with its token state, and leaves the dead letters as they were', async () => {
    const run = await cli(['dlq', 'list', '--json'], { env: b.env, config });
    expect(run.code).toBe(0);
    const doc = run.json<{ letters: Record<string, unknown>[] }>();
    expect(doc.letters.map((l) => [l.keys, l.tokenState, l.wouldRedrive])).toEqual([
      [['PAY-1'], 'completed', false],
      [['PAY-2'], 'absent', true],
      [['PAY-3'], 'absent', true],
    ]);
    expect(doc.letters[0]).toMatchObject({
      source: 'rocketmq',
      topic,
      consumerGroup: group,
      token: { scope, key: 'PAY-1' },
    });
    const again = await cli(['dlq', 'list', '--json'], { env: b.env, config });
    expect(again.json()).toEqual(doc);
    expect(waiting()).toEqual([...KEYS]);
  });

  it('redrive skips the completed token as a duplicate and re-drives the failed ones, which reach the group again', async () => {
    const published = broker.messages(topic).length;
    const run = await cli(['dlq', 'redrive', '--json'], { env: b.env, config });
    expect(run.code).toBe(0);
    const doc = run.json<{ letters: Record<string, unknown>[] }>();
    expect(doc).toMatchObject({ command: 'dlq redrive', counts: { skipped: 1, redriven: 2, failed: 0 } });
    expect(doc.letters.map((l) => [l.keys, l.action, l.why])).toEqual([
      [['PAY-1'], 'skipped', 'duplicate: token completed'],
      [['PAY-2'], 'redriven', 'token absent: it never completed (failed, or never ran)'],
      [['PAY-3'], 'redriven', 'token absent: it never completed (failed, or never ran)'],
    ]);
    expect(broker.messages(topic).length).toBe(published + 2);
    expect(waiting()).toEqual(['PAY-1']);

    const consumer = new RocketMQTransport(fastOptions(broker.endpoints, quiet as never));
    const spec = recordingSpec({ topic, consumerGroup: group });
    await consumer.subscribe(spec);
    await eventually('the re-driven letters received', () => spec.received.length >= 2);
    await sleep(300); // anything more would arrive now
    await consumer.stop();
    expect(spec.received.map((m) => [m.keys[0], m.deliveryAttempt, m.body])).toEqual([
      ['PAY-2', 1, { serial: 'PAY-2' }],
      ['PAY-3', 1, { serial: 'PAY-3' }],
    ]);

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
    const published = broker.messages(topic).length;
    const twice = await cli(['dlq', 'redrive', '--id', id], { env: b.env, config });
    expect(twice.code).toBe(3);
    expect(twice.stderr).toContain(`No dead letter with id ${id}`);
    expect(broker.messages(topic).length).toBe(published);
    expect(waiting()).toEqual(['PAY-1', 'PAY-3']);
  });

  it('a send the broker refuses is a failed re-drive (exit 1) that leaves the letters where they were', async () => {
    const published = broker.messages(topic).length;
    broker.faults.failSends = 100;
    try {
      const run = await cli(['dlq', 'redrive', '--json'], { env: b.env, config });
      expect(run.code).toBe(1);
      expect(run.json()).toMatchObject({ counts: { skipped: 1, redriven: 0, failed: 2 } });
      expect(run.stdout).toContain(`It stays in ${dlqTopic}`);
    } finally {
      broker.faults.failSends = 0;
    }
    expect(broker.messages(topic).length).toBe(published);
    expect(waiting()).toEqual([...KEYS]);
  });

  it('an unreachable proxy is a clear message naming the source and the endpoint, and exit 1', async () => {
    const port = await closedPort();
    const unreachable: IdempotentMqConfig = {
      deadLetters: [
        {
          name: 'down',
          source: () =>
            rocketMQDeadLetterSource({
              ...sourceOptions(`127.0.0.1:${port}`, topic, group),
              startupTimeoutMs: 1000,
            }),
          scope,
        },
      ],
    };
    for (const command of ['list', 'redrive']) {
      const run = await cli(['dlq', command], { env: b.env, config: unreachable });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('The dead-letter source "down" could not list its dead letters');
      expect(run.stderr).toContain(`127.0.0.1:${port}`);
    }
    expect(waiting()).toEqual([...KEYS]);
  });
});

describe('dlq over RocketMQ: what an operator must fix first', () => {
  it('a write-only dead-letter topic is exit 1 with the mqadmin command that makes it readable', async () => {
    const old = await RocketMQTestBroker.start({
      deadLetterTopicPerm: 2,
      groupMaxDeliveryAttempts: { [READER]: MIN_READER_ATTEMPTS },
    });
    try {
      const { topic, group, dlqTopic } = await deadLettered(old);
      const config: IdempotentMqConfig = {
        deadLetters: [
          {
            name: 'old',
            source: () => rocketMQDeadLetterSource(sourceOptions(old.endpoints, topic, group)),
            scope: uniqueScope(),
          },
        ],
      };
      const run = await cli(['dlq', 'list'], { env: b.env, config });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`mqadmin updateTopicPerm -n <namesrv> -c <cluster> -t '${dlqTopic}' -p 6`);
      old.updateTopicPerm(dlqTopic, 6);
      const fixed = await cli(['dlq', 'list', '--json'], { env: b.env, config });
      expect(fixed.json<{ letters: unknown[] }>().letters).toHaveLength(3);
    } finally {
      await old.close();
    }
  });

  it('a misspelt option is a configuration error (exit 2) naming the nearest name', async () => {
    const misspelt: IdempotentMqConfig = {
      deadLetters: [
        {
          name: 'rocketmq',
          // A config file is JavaScript: the misspelling reaches the source at run time.
          source: () =>
            rocketMQDeadLetterSource({
              endpoints: broker.endpoints,
              topic: 'payments',
              consumerGroup: 'billing',
              readerGroups: READER,
            } as never),
          scope: uniqueScope(),
        },
      ],
    };
    const run = await cli(['dlq', 'list', '--json'], { env: b.env, config: misspelt });
    expect(run.code).toBe(2);
    expect(run.json<{ error: { code: string } }>().error.code).toBe('CONFIG');
    expect(run.stderr + run.stdout).toContain('readerGroups');
    expect(run.stderr + run.stdout).toContain('did you mean "readerGroup"');
  });
});
