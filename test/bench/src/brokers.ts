/**
 * The first-time and duplicate paths over each broker, end to end: the keyed publisher, the broker, the
 * transport, the ListenerRegistry and the engine (memory store and cache, lease mode); an op resolves when
 * the engine's outcome for its message arrives. Beside each, the broker's raw round trip by hand with the
 * client library (publish confirmed, consumed, acked), on the same server in the same run.
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import {
  ConsoleLogger,
  IDEMPOTENCY_CACHE,
  IDEMPOTENCY_LOGGER,
  IDEMPOTENCY_OUTCOME_LISTENER,
  IDEMPOTENCY_STORE,
  IdempotencyModule,
  type IdempotencyOutcome,
  Idempotent,
  ListenerRegistry,
  MESSAGE_TRANSPORT,
  MemoryIdempotencyCache,
  MemoryIdempotencyStore,
  type MessageTransport,
  type TransportMessage,
} from '@idempotent-mq/core';
import { NatsListener, NatsPublisher, NatsTransport } from '@idempotent-mq/nats';
import { RabbitMQListener, RabbitMQPublisher, RabbitMQTransport, topologyOf } from '@idempotent-mq/rabbitmq';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { connect as amqpConnect } from 'amqplib';
import { Container, injectable, type Newable } from 'inversify';
import type { Scenario } from './scenarios.js';

export const RABBITMQ_URL = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
export const NATS_URL = process.env.NATS_URL ?? '127.0.0.1:4222';

/** The subscriptions' concurrency (and prefetch / pull batch): the @64 ops are never throttled by it. */
const CONCURRENCY = 64;
/** Completed keys the duplicate ops cycle through. */
const POOL = 500;
const RUN = randomUUID().slice(0, 8);
const quiet = { info() {}, warn() {}, error() {} };
/** What tears down everything this run declared on the brokers, in order. */
const cleanups: (() => Promise<void>)[] = [];

type Body = { readonly serial: string; readonly amount: number };

/** Waiters by key, first in first out: a key's ops may overlap (a duplicate key, cycled). */
class Waiters<T> {
  private readonly map = new Map<string, ((v: T) => void)[]>();
  wait(key: string): Promise<T> {
    return new Promise((resolve) => {
      const list = this.map.get(key);
      if (list) list.push(resolve);
      else this.map.set(key, [resolve]);
    });
  }
  settle(key: string, value: T): void {
    const list = this.map.get(key);
    const next = list?.shift();
    if (list && list.length === 0) this.map.delete(key);
    next?.(value);
  }
}

/**
 * The registry over `transport`, with the listener `ctor` (keyed by the body's serial), and an outcome
 * listener that hands each outcome to the op waiting for that serial.
 */
async function engineOver(transport: MessageTransport, ctor: Newable) {
  const outcomes = new Waiters<IdempotencyOutcome>();
  const container = new Container();
  container.load(new IdempotencyModule());
  container.rebind(IDEMPOTENCY_STORE).toConstantValue(new MemoryIdempotencyStore());
  container.rebind(IDEMPOTENCY_CACHE).toConstantValue(new MemoryIdempotencyCache());
  container.rebind(IDEMPOTENCY_LOGGER).toConstantValue(new ConsoleLogger('error'));
  container.bind(IDEMPOTENCY_OUTCOME_LISTENER).toConstantValue((o: IdempotencyOutcome) => {
    if (o.token) outcomes.settle(o.token.key, o);
  });
  container.bind(MESSAGE_TRANSPORT).toConstantValue(transport);
  container.bind(ctor).toSelf().inSingletonScope();
  const registry = new ListenerRegistry(container);
  await registry.start();
  return { registry, outcomes };
}

/**
 * The two scenarios of one broker. `send(serial, id)` publishes the serial under the transport-level key
 * `id`: a new one per send, so that JetStream's duplicate window never drops a re-send before it reaches
 * the engine (the engine's duplicate path is what is measured).
 */
async function pair(
  broker: string,
  c: number,
  outcomes: Waiters<IdempotencyOutcome>,
  send: (serial: string, id: string) => Promise<unknown>,
  baseline: (i: number) => Promise<void>,
  baselineLabel: string,
): Promise<Scenario[]> {
  let sends = 0;
  const roundTrip = async (serial: string, expected: IdempotencyOutcome['kind']) => {
    const outcome = outcomes.wait(serial);
    await send(serial, `${serial}#${sends++}`);
    const o = await outcome;
    if (o.kind !== expected) throw new Error(`${serial}: ${o.kind}, not ${expected}`, { cause: o.error });
  };
  const serial = (what: string, i: number) => `${what}-${RUN}-${c}-${i}`;
  for (let i = 0; i < POOL; i += CONCURRENCY) {
    await Promise.all(
      Array.from({ length: Math.min(CONCURRENCY, POOL - i) }, (_, j) =>
        roundTrip(serial('dup', i + j), 'processed'),
      ),
    );
  }
  let first = 0;
  return [
    {
      name: `first-time over ${broker}`,
      concurrency: c,
      baselineLabel,
      ours: () => roundTrip(serial('new', first++), 'processed'),
      baseline,
    },
    {
      name: `duplicate over ${broker}`,
      concurrency: c,
      baselineLabel,
      ours: (i) => roundTrip(serial('dup', i % POOL), 'duplicate'),
      baseline,
    },
  ];
}

async function rabbitmq(c: number): Promise<Scenario[]> {
  const topic = `imqbench-${RUN}-c${c}`;
  const group = 'bench';
  const rawQueue = `imqbench-raw-${RUN}-c${c}`;
  const conn = await amqpConnect(RABBITMQ_URL);
  cleanups.push(async () => {
    const names = topologyOf(topic, group);
    const ch = await conn.createChannel();
    for (const q of [names.queue, names.deadLetterQueue, ...names.retryQueues, rawQueue])
      await ch.deleteQueue(q);
    await ch.deleteExchange(names.exchange);
    await ch.close();
    await conn.close();
  });

  @injectable()
  @RabbitMQListener({ topic, consumerGroup: group, bindingKey: 'BENCH', concurrency: CONCURRENCY })
  class RabbitMQConsumer {
    @Idempotent({ key: (m: TransportMessage<Body>) => m.body.serial, mode: 'lease' })
    async onMessage(_m: TransportMessage<Body>) {}
  }
  const transport = new RabbitMQTransport({ url: RABBITMQ_URL, logger: quiet });
  const { registry, outcomes } = await engineOver(transport, RabbitMQConsumer);
  const publisher = new RabbitMQPublisher({ url: RABBITMQ_URL, logger: quiet });
  await publisher.start();
  cleanups.unshift(async () => {
    await publisher.stop();
    await registry.stop();
  });

  // The raw round trip: a confirmed persistent publish to a durable queue, a consumer with manual acks.
  // Publisher and consumer on connections of their own, as the transport and the publisher are: on one
  // connection RabbitMQ's flow control throttles the publishes while the consumer's acks queue behind.
  const consumer = await amqpConnect(RABBITMQ_URL);
  cleanups.push(() => consumer.close());
  const pub = await conn.createConfirmChannel();
  const sub = await consumer.createChannel();
  await sub.assertQueue(rawQueue, { durable: true });
  await sub.prefetch(CONCURRENCY);
  const received = new Waiters<void>();
  await sub.consume(rawQueue, (msg) => {
    if (!msg) return;
    sub.ack(msg);
    received.settle(msg.properties.messageId as string, undefined);
  });
  const rawBody = (serial: string) => Buffer.from(JSON.stringify({ serial, amount: 100 }));
  // Its own count, not `i` (each scenario starts again at 0): a reused msgID is dropped by JetStream.
  let raws = 0;
  const baseline = async () => {
    const id = `raw-${c}-${raws++}`;
    const got = received.wait(id);
    await new Promise<void>((resolve, reject) =>
      pub.sendToQueue(rawQueue, rawBody(id), { persistent: true, messageId: id }, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    await got;
  };

  return pair(
    'RabbitMQ',
    c,
    outcomes,
    (serial, id) => publisher.send({ topic, keys: [id], routingKey: 'BENCH', body: { serial, amount: 100 } }),
    baseline,
    'raw amqplib confirmed publish + consume + ack',
  );
}

async function nats(c: number): Promise<Scenario[]> {
  const topic = `imqbench.${RUN}.c${c}`;
  const rawStream = `IMQBENCH_RAW_${RUN}_c${c}`;
  const rawSubject = `imqbench.raw.${RUN}.c${c}`;
  const dead = {
    deadLetterSubjectPrefix: `imqbench.dlq.${RUN}.c${c}`,
    deadLetterStream: `IMQBENCH_DLQ_${RUN}_c${c}`,
  };
  const nc = await natsConnect({ servers: NATS_URL });
  const jsm = await jetstreamManager(nc);
  cleanups.push(async () => {
    const stream = await jsm.streams.find(topic).catch(() => undefined);
    for (const name of [stream, rawStream, dead.deadLetterStream])
      if (name) await jsm.streams.delete(name).catch(() => undefined);
    await nc.close();
  });

  @injectable()
  @NatsListener({ topic, consumerGroup: 'bench', concurrency: CONCURRENCY })
  class NatsConsumer {
    @Idempotent({ key: (m: TransportMessage<Body>) => m.body.serial, mode: 'lease' })
    async onMessage(_m: TransportMessage<Body>) {}
  }
  // The shortest long-poll the transport takes, and pulls as large as the subscription's concurrency.
  const transport = new NatsTransport({
    servers: NATS_URL,
    fetchExpiresMs: 1000,
    batchSize: CONCURRENCY,
    logger: quiet,
    ...dead,
  });
  const { registry, outcomes } = await engineOver(transport, NatsConsumer);
  const publisher = new NatsPublisher({ connection: nc });
  await publisher.start();
  cleanups.unshift(async () => {
    await publisher.stop();
    await registry.stop();
  });

  // The raw round trip: a JetStream publish (stream ack awaited), a durable pull consumer, explicit acks
  // confirmed by the server (ackAck), as the transport's settlements are.
  await jsm.streams.add({ name: rawStream, subjects: [rawSubject] });
  await jsm.consumers.add(rawStream, { durable_name: 'raw', ack_policy: 'explicit' as never });
  const js = jetstream(nc);
  const consumer = await js.consumers.get(rawStream, 'raw');
  const received = new Waiters<void>();
  const messages = await consumer.consume({ max_messages: CONCURRENCY, expires: 1000 });
  cleanups.unshift(async () => {
    await messages.close();
  });
  void (async () => {
    for await (const m of messages) {
      const id = m.headers?.get('Nats-Msg-Id') ?? '';
      void m.ackAck().then(() => received.settle(id, undefined));
    }
  })();
  // Its own count, not `i` (each scenario starts again at 0): a reused msgID is dropped by JetStream.
  let raws = 0;
  const baseline = async () => {
    const id = `raw-${c}-${raws++}`;
    const got = received.wait(id);
    await js.publish(rawSubject, JSON.stringify({ serial: id, amount: 100 }), { msgID: id });
    await got;
  };

  return pair(
    'NATS',
    c,
    outcomes,
    (serial, id) => publisher.send({ topic, keys: id, body: { serial, amount: 100 } }),
    baseline,
    'raw JetStream publish + pull consume + ackAck',
  );
}

/** The broker scenarios at concurrency `c`; {@link closeBrokers} tears down what they set up. */
export async function brokerScenarios(c: number): Promise<Scenario[]> {
  return [...(await rabbitmq(c)), ...(await nats(c))];
}

/** Stops the registries and publishers, deletes every queue, exchange and stream of this run. */
export async function closeBrokers(): Promise<void> {
  for (const cleanup of cleanups.splice(0)) await cleanup();
}
