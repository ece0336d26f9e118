/**
 * The broker side of the demo: embedded (the in-memory broker with seeded faults), RocketMQ (the real
 * client against the gRPC test broker with its faults on, or a real proxy at `ROCKETMQ_ENDPOINTS`), or
 * the real RabbitMQ and NATS JetStream servers, where the faults a server cannot inject are carried
 * out by the demo itself: resends by its producer, kills and rebalances on its consumers.
 */
import { randomBytes } from 'node:crypto';
import type { MessageTransport } from '@idempotent-mq/core';
import { encodeBody, KEYS_HEADER, NatsPublisher, NatsTransport } from '@idempotent-mq/nats';
import { RabbitMQPublisher, RabbitMQTransport, type SettledEvent, topologyOf } from '@idempotent-mq/rabbitmq';
import { killTransport } from '@idempotent-mq/rabbitmq/testing';
import { RocketMQPublisher, RocketMQTransport } from '@idempotent-mq/rocketmq';
import { RocketMQTestBroker } from '@idempotent-mq/rocketmq-testing';
import { type BrokerFaults, InMemoryBroker, seededRandom } from '@idempotent-mq/testing';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection, connect as natsConnect } from '@nats-io/transport-node';
import { connect as amqpConnect, type Channel, type ChannelModel } from 'amqplib';
import { CONCURRENCY, type PaymentListenerNames, type PaymentRequest } from './payment-consumer.js';

export const TOPIC = 'payments';
export const GROUP = 'billing';

export const DEFAULT_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';
export const DEFAULT_NATS_URL = '127.0.0.1:4222';

/** What the scenario needs of a broker. */
export interface BrokerSetup {
  readonly label: string;
  /** Where the consumers listen. */
  readonly listener: PaymentListenerNames;
  /** Sends one payment keyed by its serial number (and, as a fault, sends it again). */
  publish(serial: string, body: PaymentRequest): Promise<void>;
  /** A new connection, for one consumer process. */
  connect(): Promise<MessageTransport>;
  /** Something a broker goes through mid-run (a restart), if it can. */
  disrupt(): Promise<void>;
  /** Faults the scenario carries out on its consumers, where the broker cannot inject them itself. */
  readonly consumerFaults?: ConsumerFaults;
  /**
   * Resolves once every payment is applied and the broker holds nothing more to deliver; rejects after
   * `timeoutMs` saying what is left.
   */
  idle(timeoutMs: number, applied: () => number, total: number): Promise<void>;
  /** Counts for the report. */
  stats(): Promise<BrokerStats>;
  /** Stops the producer and deletes what the run declared on the broker. */
  close(): Promise<void>;
}

export interface BrokerStats {
  /** Messages the broker stored: the payments and the resends it kept. */
  readonly stored: number;
  /** Deliveries by cause, as far as the broker (or, on RabbitMQ, the consumers) can tell. */
  readonly deliveries: Record<string, number>;
  /** Messages in the dead-letter queue. */
  readonly deadLetters: number;
  /** Faults as carried out on this broker, e.g. the exact resends JetStream dropped. */
  readonly faults?: Record<string, number>;
}

/**
 * Faults of the consumers, on brokers that cannot inject them: at seeded points of the run the scenario
 * kills a consumer (and starts another in its place, as a supervisor would) or lets one more join the
 * group and later leave it. A kill hits what the consumer holds, up to {@link CONCURRENCY} deliveries, so
 * a rate P of deliveries takes ⌈P × payments / CONCURRENCY⌉ kills.
 */
export interface ConsumerFaults {
  /** Kills of the connection alone: the handlers run on and commit, but no ack reaches the broker. */
  readonly lostAckKills: number;
  /** Kills of the whole process: its connection, and its handlers before they commit. */
  readonly crashKills: number;
  /** A consumer joins the group mid-run and leaves it (drained) a while later. */
  readonly rebalances: number;
  /** The consumer's connection dies as on SIGKILL: nothing more reaches the broker from it. */
  kill(transport: MessageTransport): Promise<void>;
}

function consumerFaults(
  payments: number,
  faults: BrokerFaults,
  kill: ConsumerFaults['kill'],
): ConsumerFaults {
  const events = (rate: number) => Math.ceil((payments * rate) / CONCURRENCY);
  return {
    lostAckKills: events(faults.lostAck),
    crashKills: events(faults.crash),
    rebalances: events(faults.rebalance),
    kill,
  };
}

/** A name part no other run has: runs on a shared server never see each other's leftovers. */
function runId(): string {
  return `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A producer's sends in flight, up to `size` awaiting their confirms: it runs ahead of the consumers,
 * as a busy producer does, so that the consumers hold deliveries (up to their prefetch) when one is
 * killed. A send that fails is rethrown by the next `add`, or by `drain`.
 */
class SendWindow {
  private readonly inFlight = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(private readonly size: number) {}

  async add(send: () => Promise<void>): Promise<void> {
    while (this.inFlight.size >= this.size) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure.error;
    const sending: Promise<void> = send()
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => this.inFlight.delete(sending));
    this.inFlight.add(sending);
  }

  /** Every send confirmed, or the first failure. */
  async drain(): Promise<void> {
    await Promise.all(this.inFlight);
    if (this.failure) throw this.failure.error;
  }
}

/** Sends a real-broker producer keeps in flight. */
const PUBLISH_WINDOW = 64;

export function memoryBroker(seed: number, faults: BrokerFaults): BrokerSetup {
  const broker = new InMemoryBroker({ seed, visibilityTimeoutMs: 50, faults });
  return {
    label: 'in-memory broker',
    listener: { topic: TOPIC, consumerGroup: GROUP, filter: 'PAY' },
    publish: async (serial, body) => {
      broker.publish(TOPIC, { keys: [serial], body, tag: 'PAY' });
    },
    connect: async () => broker.connect(),
    disrupt: async () => {},
    idle: (timeoutMs) => broker.idle(timeoutMs),
    stats: async () => ({
      stored: broker.stored,
      deliveries: {
        first: broker.deliveries.first,
        resend: broker.deliveries.resend,
        'lost ack': broker.deliveries.lostAck,
        rebalance: broker.deliveries.rebalance,
        'consumer crash': broker.deliveries.crash,
        retry: broker.deliveries.retry,
      },
      deadLetters: broker.deadLetters().length,
    }),
    close: async () => {},
  };
}

const quiet = { info() {}, warn() {}, error() {}, debug() {} };

/**
 * RocketMQ: the gRPC test broker on 127.0.0.1 unless `endpoints` names a real proxy (an empty string
 * forces the test broker). Faults on the test
 * broker: duplicate sends and dropped or lost acks at the given rates, and a restart when disrupted.
 */
export async function rocketmqBroker(
  payments: number,
  faults: BrokerFaults,
  endpoints = process.env.ROCKETMQ_ENDPOINTS,
): Promise<BrokerSetup> {
  const double = endpoints ? undefined : await RocketMQTestBroker.start();
  const target = endpoints || (double as RocketMQTestBroker).endpoints;
  if (double) {
    double.faults.duplicateSends = Math.round(payments * faults.producerResend);
    double.faults.dropAcks = Math.round(payments * faults.lostAck);
    double.faults.loseAckResponses = Math.round(payments * faults.crash);
  }
  const client = { endpoints: target, logger: quiet, requestTimeout: 3000 };
  const publisher = new RocketMQPublisher({ ...client, topics: [TOPIC] });
  await publisher.start();
  return {
    label: double ? `RocketMQ (real client ↔ test broker at ${target})` : `RocketMQ proxy at ${target}`,
    listener: { topic: TOPIC, consumerGroup: GROUP, filter: 'PAY' },
    async publish(serial, body) {
      // A send during a broker restart fails fast; the producer retries, as a real producer would.
      for (let tries = 0; ; tries++) {
        try {
          await publisher.send({ topic: TOPIC, keys: [serial], tag: 'PAY', body });
          return;
        } catch (error) {
          if (tries >= 100) throw error;
          await sleep(100);
        }
      }
    },
    connect: async () =>
      new RocketMQTransport({
        ...client,
        awaitDurationMs: 300,
        invisibleDurationMs: 2000,
        receiveBackoff: { initialMs: 100, maxMs: 500 },
      }),
    disrupt: async () => {
      if (!process.env.NO_RESTART) await double?.restart(300);
    },
    async idle(timeoutMs, applied, total) {
      const deadline = Date.now() + timeoutMs;
      const settled = () =>
        double
          ? double
              .messages(TOPIC)
              .every((m) => ['acked', 'dead'].includes(double.stateOf(GROUP, m.messageId)))
          : applied() >= total;
      while (!settled()) {
        if (Date.now() > deadline) throw new Error('the RocketMQ broker still has unsettled messages');
        await sleep(100);
      }
    },
    async stats(): Promise<BrokerStats> {
      if (!double) return { stored: payments, deliveries: {}, deadLetters: 0 };
      const deliveries = double.deliveries({ group: GROUP });
      return {
        stored: double.messages(TOPIC).length,
        deliveries: {
          first: deliveries.filter((d) => d.attempt === 1).length,
          redelivered: deliveries.filter((d) => d.attempt > 1).length,
          'acks dropped': double.acks(GROUP).filter((a) => !a.applied).length,
        },
        deadLetters: double.deadLetters(GROUP).length,
      };
    },
    async close() {
      await publisher.stop();
      await double?.close();
    },
  };
}

/**
 * RabbitMQ at `url`, with an exchange, queues and a dead-letter queue of the run's own (deleted on
 * close). Resends: the producer publishes the payment a second time, a second message RabbitMQ queues
 * as well (it has no de-duplication). Kills: `killTransport`, the sockets dropped without an AMQP
 * close, and RabbitMQ gives back at once what the consumer held. RabbitMQ tells nobody over AMQP how
 * often it delivered a message, so the deliveries are counted by the consumers as they settle them.
 */
export async function rabbitmqBroker(
  payments: number,
  faults: BrokerFaults,
  seed: number,
  url = process.env.AMQP_URL || DEFAULT_AMQP_URL,
): Promise<BrokerSetup> {
  const listener = { topic: `payments-${runId()}`, consumerGroup: GROUP, filter: 'PAY' };
  const names = topologyOf(listener.topic, listener.consumerGroup);
  const display = url.replace(/\/\/[^@]*@/, '//');
  const resends = seededRandom(seed + 2);
  const publisher = new RabbitMQPublisher({ url, logger: quiet, declare: [listener] });
  // Our own look at the queues, a channel per look: a check of a missing queue closes its channel.
  let admin: ChannelModel;
  try {
    await publisher.start();
    admin = await amqpConnect(url);
  } catch (error) {
    await publisher.stop().catch(() => undefined);
    throw new Error(`RabbitMQ at ${display} cannot be reached (set AMQP_URL): ${(error as Error).message}`);
  }
  admin.on('error', () => undefined);
  const inspect = async <T>(use: (channel: Channel) => Promise<T>) => {
    const channel = await admin.createChannel();
    channel.on('error', () => undefined);
    try {
      return await use(channel);
    } finally {
      await channel.close().catch(() => undefined);
    }
  };
  /** Messages ready in `queue` (not those a consumer holds unacked); 0 for a queue never declared. */
  const ready = (queue: string) =>
    inspect(async (channel) => (await channel.checkQueue(queue)).messageCount).catch((error: unknown) => {
      if ((error as { code?: number }).code === 404) return 0;
      throw error;
    });

  const sends = new SendWindow(PUBLISH_WINDOW);
  let stored = 0;
  let resent = 0;
  /** Every queue a settlement sent a copy to: the group's queue and the retry queues used. */
  const queues = new Set([names.queue]);
  const settled = {
    acked: 0,
    'redelivered after a kill': 0,
    'failure retry': 0,
    wait: 0,
    'dead-lettered': 0,
    'settlement dropped': 0,
  };
  const tally = (e: SettledEvent) => {
    if (e.queue) queues.add(e.queue);
    if (e.dropped || !e.ok) settled['settlement dropped']++;
    else if (e.action === 'ack') settled.acked++;
    else if (e.action === 'deadLetter') settled['dead-lettered']++;
    else if (e.reason?.startsWith('redelivered by RabbitMQ')) settled['redelivered after a kill']++;
    else if (e.countsAsAttempt) settled['failure retry']++;
    else settled.wait++;
  };
  const pending = async () => {
    let n = 0;
    for (const queue of queues) n += await ready(queue);
    return n;
  };

  return {
    label: `RabbitMQ at ${display} (exchange ${listener.topic})`,
    listener,
    async publish(serial, body) {
      const send = () => publisher.send({ topic: listener.topic, keys: [serial], routingKey: 'PAY', body });
      const resend = resends() < faults.producerResend;
      await sends.add(async () => {
        await send();
        stored++;
        if (resend) {
          // The producer did not hear the confirm and sends again: a second message, same key.
          await send();
          stored++;
          resent++;
        }
      });
    },
    connect: async () => new RabbitMQTransport({ url, logger: quiet, onSettled: tally }),
    disrupt: async () => {}, // the shared server is never restarted (the package's tests do that on a private node)
    consumerFaults: consumerFaults(payments, faults, (t) => killTransport(t as RabbitMQTransport)),
    async idle(timeoutMs, applied, total) {
      const deadline = Date.now() + timeoutMs;
      await sends.drain();
      // AMQP counts the messages ready in a queue, not those a consumer holds unacked: three empty looks
      // in a row, 100 ms apart, let a delivery in hand settle (a retry copy then shows in its queue).
      let empty = 0;
      while (empty < 3) {
        const left = await pending();
        empty = applied() >= total && left === 0 ? empty + 1 : 0;
        if (empty === 3) return;
        if (Date.now() > deadline) {
          const dead = await ready(names.deadLetterQueue);
          throw new Error(
            `RabbitMQ did not drain within ${timeoutMs} ms: ${applied()} of ${total} payments applied, ` +
              `${left} messages ready in ${[...queues].join(', ')}, ${dead} in ${names.deadLetterQueue}`,
          );
        }
        await sleep(100);
      }
    },
    async stats() {
      return {
        stored,
        deliveries: { ...settled },
        deadLetters: await ready(names.deadLetterQueue),
        faults: { 'resends (a second publish)': resent },
      };
    },
    async close() {
      await sends.drain().catch(() => undefined);
      await publisher.stop().catch(() => undefined);
      await inspect(async (channel) => {
        for (const queue of [names.queue, names.deadLetterQueue, ...names.retryQueues])
          await channel.deleteQueue(queue);
        await channel.deleteExchange(names.exchange);
      }).catch(() => undefined);
      await admin.close().catch(() => undefined);
    },
  };
}

/** How long JetStream waits for an ack before it redelivers: what a killed consumer's messages wait. */
const NATS_ACK_WAIT_MS = 2000;

/**
 * NATS JetStream at `servers`, with a stream, a durable and a dead-letter stream of the run's own
 * (deleted on close). Resends: the producer sends the payment again with the same `Nats-Msg-Id` (the
 * key), which JetStream drops inside its duplicate window, and once more under a new `Nats-Msg-Id` (a
 * producer that makes an id per send), which it stores. Kills: each consumer has a connection of its
 * own, closed on the spot; JetStream redelivers what it held after `ack_wait`.
 */
export async function natsBroker(
  payments: number,
  faults: BrokerFaults,
  seed: number,
  servers = process.env.NATS_URL || DEFAULT_NATS_URL,
): Promise<BrokerSetup> {
  const run = runId();
  const listener = { topic: `payments.${run}`, consumerGroup: GROUP, filter: '*' };
  const stream = `IMQDEMO_${run}`;
  const dead = { deadLetterSubjectPrefix: `imqdemo.dlq.${run}`, deadLetterStream: `IMQDEMO_DLQ_${run}` };
  const resends = seededRandom(seed + 2);
  let nc: NatsConnection;
  try {
    nc = await natsConnect({ servers, timeout: 5000 });
  } catch (error) {
    throw new Error(`NATS at ${servers} cannot be reached (set NATS_URL): ${(error as Error).message}`);
  }
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const publisher = new NatsPublisher({ connection: nc });
  try {
    await jsm.streams.add({ name: stream, subjects: [listener.topic] });
    await publisher.start();
  } catch (error) {
    await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
    throw error;
  }
  const connections = new Map<MessageTransport, NatsConnection>();

  const sends = new SendWindow(PUBLISH_WINDOW);
  let dropped = 0;
  let resent = 0;
  const consumerInfo = () => jsm.consumers.info(stream, GROUP);
  const deadLetters = async () =>
    (await jsm.streams.info(dead.deadLetterStream).catch(() => undefined))?.state.messages ?? 0;

  return {
    label: `NATS JetStream at ${servers} (stream ${stream})`,
    listener,
    async publish(serial, body) {
      const send = () => publisher.send({ topic: listener.topic, keys: [serial], body });
      const resend = resends() < faults.producerResend;
      await sends.add(async () => {
        await send();
        if (!resend) return;
        // The same message again: JetStream drops it, its Nats-Msg-Id is inside the duplicate window.
        if ((await send()).duplicate) dropped++;
        // And under a new id, as a producer that makes one per send: stored, the consumers must drop it.
        const h = headers();
        h.set(KEYS_HEADER, JSON.stringify([serial]));
        await js.publish(listener.topic, encodeBody('json', body), { msgID: `${serial}~resend`, headers: h });
        resent++;
      });
    },
    async connect() {
      const connection = await natsConnect({ servers, timeout: 5000 });
      const transport = new NatsTransport({
        connection,
        stream,
        ...dead,
        ackWaitMs: NATS_ACK_WAIT_MS,
        fetchExpiresMs: 1000,
        logger: quiet,
      });
      connections.set(transport, connection);
      return transport;
    },
    disrupt: async () => {}, // the shared server is never restarted (the package's tests do that on a private server)
    consumerFaults: consumerFaults(payments, faults, async (t) => {
      await connections.get(t)?.close();
    }),
    async idle(timeoutMs, applied, total) {
      const deadline = Date.now() + timeoutMs;
      await sends.drain();
      for (;;) {
        // Held messages (handling, waiting in place, or by a killed consumer until ack_wait) are ack pending.
        const info = await consumerInfo().catch(() => undefined);
        if (applied() >= total && info?.num_pending === 0 && info.num_ack_pending === 0) return;
        if (Date.now() > deadline) {
          throw new Error(
            `JetStream did not drain within ${timeoutMs} ms: ${applied()} of ${total} payments applied, ` +
              `consumer "${GROUP}" on ${stream}: ${info?.num_pending ?? '?'} pending, ` +
              `${info?.num_ack_pending ?? '?'} unacknowledged; ${await deadLetters()} dead letters`,
          );
        }
        await sleep(100);
      }
    },
    async stats() {
      const messages = (await jsm.streams.info(stream)).state.messages;
      const delivered = (await consumerInfo()).delivered.consumer_seq;
      return {
        stored: messages,
        // Every stored message is delivered once; the rest the consumer's sequence counts are redeliveries.
        deliveries: { first: messages, redelivered: delivered - messages },
        deadLetters: await deadLetters(),
        faults: {
          'resends under a new Nats-Msg-Id': resent,
          'exact resends dropped by JetStream': dropped,
        },
      };
    },
    async close() {
      await sends.drain().catch(() => undefined);
      await publisher.stop().catch(() => undefined);
      await Promise.all([...connections.values()].map((c) => c.close().catch(() => undefined)));
      await jsm.consumers.delete(stream, GROUP).catch(() => undefined);
      for (const name of [stream, dead.deadLetterStream])
        await jsm.streams.delete(name).catch(() => undefined);
      await nc.close().catch(() => undefined);
    },
  };
}
