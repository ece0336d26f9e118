/**
 * The dead letters of one consumer group, `<topic>.<group>.dlq`, as the operator CLI reads and re-drives
 * them (`idempotent-mq dlq list|redrive`): a `DeadLetterSource` of core's shape.
 *
 * AMQP 0-9-1 has no browse, so `list()` takes the letters with basic.get **without** ack and gives them
 * back with basic.nack(requeue) on the same channel: RabbitMQ puts a requeued message back at its place
 * in a classic queue, so the queue keeps its letters and their order (a crash meanwhile closes the
 * channel, which requeues them too).
 */
import { createHash } from 'node:crypto';
import type { DeadLetter, DeadLetterSource, TransportMessage } from '@idempotent-mq/core/adapter';
import { enumOption, integerOption } from '@idempotent-mq/core/adapter';
import type { Channel, GetMessage } from 'amqplib';
import { BODY_CODECS, type BodyCodec } from './codec.js';
import { ConfirmedChannel } from './confirmed-channel.js';
import { type ConnectionSource, connectionSource } from './connection.js';
import { messageOf } from './errors.js';
import { attemptOf, copyOptions, keysOf, toTransportMessage } from './message.js';
import { type RabbitMQConnectionOptions, resolveConnectionOptions } from './options.js';
import { checkRabbitMQNames } from './rabbitmq-profile.js';
import { HEADERS, type RabbitMQTopology, topologyOf } from './topology.js';

/** Options of {@link rabbitMQDeadLetterSource}: the group whose dead letters to read, and how to connect. */
export interface RabbitMQDeadLetterSourceOptions extends RabbitMQConnectionOptions {
  /** The topic (exchange) of the listener that dead-lettered them. */
  readonly topic: string;
  /** Its consumer group: the letters are in queue `<topic>.<consumerGroup>.dlq`. */
  readonly consumerGroup: string;
  /** How a letter's body is decoded for `letter.message.body` (a key function reads it). @defaultValue `'json'` */
  readonly codec?: BodyCodec;
  /** How long a re-drive waits for RabbitMQ's confirm of the copy. @defaultValue `10000` */
  readonly confirmTimeoutMs?: number;
  /**
   * The most letters `list()` reads (and a re-drive looks through to find its letter), from the head of
   * the queue: each is held unacknowledged by the source until the call is done. @defaultValue `10000`
   */
  readonly maxLetters?: number;
}

/** The source's own option names (the connection's are checked with them). */
const OWN_OPTIONS = ['topic', 'consumerGroup', 'codec', 'confirmTimeoutMs', 'maxLetters'];

/**
 * The dead letters of `consumerGroup` on `topic`, for `idempotent-mq dlq` (name it in the config's
 * `deadLetters`). Options are checked now; the connection is opened on the first `list()`.
 *
 * - `list()` reads the queue from its head and leaves it as it was (see the file's opening comment).
 *   Each letter's `id` is `<group>/<publish id>`: the id the transport's confirmed publish gave that
 *   dead-letter copy, stable while it waits (a delivery tag is not: it changes with every get).
 * - `redrive(letter)` finds the letter in the queue again, publishes a copy straight to the group's
 *   queue `<topic>.<group>` (only the group that gave up gets it) with its body, keys, routing key
 *   and properties, without its attempt count (it starts again at 1) and dead-letter headers, **waits
 *   for RabbitMQ's confirm**, and only then acks the letter out of the dead-letter queue. A crash
 *   between the two leaves the letter in the queue as well as the copy in the group's queue: a
 *   duplicate, never a loss, and a harmless one, since the consumer answers the second copy from its
 *   token as a duplicate (and `dlq redrive` skips a letter whose token is completed). A letter no longer
 *   in the queue (re-driven or removed since it was listed) is an error, and nothing is published.
 *
 * @example
 * ```js
 * // idempotent-mq.config.mjs
 * deadLetters: [{
 *   name: 'billing',
 *   source: () => rabbitMQDeadLetterSource({ url: process.env.AMQP_URL, topic: 'payments', consumerGroup: 'billing' }),
 *   scope: 'v1:billing:PaymentConsumer.onMessage',
 * }]
 * ```
 */
export function rabbitMQDeadLetterSource(options: RabbitMQDeadLetterSourceOptions): DeadLetterSource {
  return new RabbitMQDeadLetterQueue(options);
}

/** The source behind {@link rabbitMQDeadLetterSource}: one group's dead-letter queue on one connection. */
class RabbitMQDeadLetterQueue implements DeadLetterSource {
  readonly description: string;
  readonly #names: RabbitMQTopology;
  readonly #topic: string;
  readonly #group: string;
  readonly #codec: BodyCodec;
  readonly #confirmTimeoutMs: number;
  readonly #maxLetters: number;
  readonly #source: ConnectionSource;
  readonly #logger: { warn(...args: unknown[]): void };

  constructor(options: RabbitMQDeadLetterSourceOptions) {
    const where = 'rabbitMQDeadLetterSource';
    const resolved = resolveConnectionOptions(options, where, OWN_OPTIONS);
    checkRabbitMQNames(options, where);
    this.#topic = options.topic;
    this.#group = options.consumerGroup;
    this.#codec = enumOption(where, 'codec', options.codec, BODY_CODECS, 'json') as BodyCodec;
    this.#confirmTimeoutMs = integerOption(where, 'confirmTimeoutMs', options.confirmTimeoutMs, {
      min: 100,
      max: 600_000,
      fallback: 10_000,
    });
    this.#maxLetters = integerOption(where, 'maxLetters', options.maxLetters, {
      min: 1,
      max: 1_000_000,
      fallback: 10_000,
    });
    this.#names = topologyOf(this.#topic, this.#group);
    this.#logger = resolved.logger;
    this.#source = connectionSource(resolved, 'RabbitMQ dead-letter source');
    this.description = `RabbitMQ queue ${this.#names.deadLetterQueue}`;
  }

  async list(): Promise<readonly DeadLetter[]> {
    const channel = await this.#channel();
    try {
      await this.#checkQueue(channel);
      const letters: DeadLetter[] = [];
      const seen = new Map<string, number>();
      while (letters.length < this.#maxLetters) {
        const message = await channel.get(this.#names.deadLetterQueue, { noAck: false });
        if (message === false) break;
        letters.push(this.#letterOf(message, this.#idOf(message, seen)));
      }
      return letters;
    } finally {
      await giveBack(channel);
    }
  }

  async redrive(letter: DeadLetter): Promise<void> {
    if (letter.topic !== this.#topic || letter.consumerGroup !== this.#group) {
      throw new Error(
        `Dead letter ${letter.id} is of group "${letter.consumerGroup}" on topic "${letter.topic}", not of ` +
          `${this.description}: re-drive it through its own source.`,
      );
    }
    const confirmed = new ConfirmedChannel(await this.#source.confirmChannel(), (error) =>
      this.#logger.warn(`${this.description}: channel: ${error.message}`),
    );
    const channel = confirmed.channel;
    try {
      await this.#checkQueue(channel);
      const found = await this.#find(channel, letter.id);
      const queue = this.#names.queue;
      try {
        await confirmed.publish(
          '',
          queue,
          found.content,
          this.#redriveOptions(found),
          this.#confirmTimeoutMs,
        );
      } catch (error) {
        throw new Error(
          `Could not re-publish dead letter ${letter.id} to queue ${queue}: ${messageOf(error)}. It stays in ` +
            `${this.#names.deadLetterQueue}.`,
          { cause: error },
        );
      }
      // Confirmed: only now may the letter leave the dead-letter queue. Acked before the others are
      // given back, on the same channel, so RabbitMQ applies it first; the close waits for both.
      channel.ack(found);
    } finally {
      await giveBack(channel);
    }
  }

  async close(): Promise<void> {
    await this.#source.close();
  }

  /** Gets letters from the head until the one with `id`; those before it stay held (given back later). */
  async #find(channel: Channel, id: string): Promise<GetMessage> {
    const seen = new Map<string, number>();
    for (let i = 0; i < this.#maxLetters; i++) {
      const message = await channel.get(this.#names.deadLetterQueue, { noAck: false });
      if (message === false) break;
      if (this.#idOf(message, seen) === id) return message;
    }
    throw new Error(
      `Dead letter ${id} is no longer in ${this.#names.deadLetterQueue} (re-driven or removed since it was ` +
        `listed, or now past the first ${this.#maxLetters} letters, maxLetters); nothing was published.`,
    );
  }

  async #channel(): Promise<Channel> {
    const channel = await this.#source.channel();
    // amqplib throws an 'error' nobody listens to from its socket handler: always listen.
    channel.on('error', () => undefined);
    return channel;
  }

  async #checkQueue(channel: Channel): Promise<void> {
    try {
      await channel.checkQueue(this.#names.deadLetterQueue);
    } catch (error) {
      throw new Error(
        `${this.description} does not exist (${messageOf(error)}): no listener of group "${this.#group}" on ` +
          `topic "${this.#topic}" has subscribed on this server, or topic/consumerGroup name another group.`,
        { cause: error },
      );
    }
  }

  /**
   * `<group>/<publish id>`: the id the transport's confirmed publish gave this dead-letter copy. A
   * message put there by something else has none: then a digest of its content and headers, numbered
   * in queue order when identical ones repeat.
   */
  #idOf(message: GetMessage, seen: Map<string, number>): string {
    const publishId = message.properties.headers?.[HEADERS.publishId];
    if (typeof publishId === 'string' && publishId !== '' && !seen.has(publishId)) {
      seen.set(publishId, 1);
      return `${this.#group}/${publishId}`;
    }
    const digest = createHash('sha256')
      .update(message.content)
      .update(JSON.stringify(message.properties.headers ?? {}))
      .digest('hex')
      .slice(0, 16);
    const n = (seen.get(digest) ?? 0) + 1;
    seen.set(digest, n);
    return `${this.#group}/sha-${digest}${n > 1 ? `-${n}` : ''}`;
  }

  #letterOf(message: GetMessage, id: string): DeadLetter {
    const headers = message.properties.headers ?? {};
    const attempt = attemptOf(message);
    const decoded = toTransportMessage(message, this.#topic, this.#codec, attempt);
    // A body the codec cannot read (often why it was dead-lettered) is shown as its bytes.
    const transportMessage = (
      decoded.ok ? decoded : toTransportMessage(message, this.#topic, 'buffer', attempt)
    ) as { message: TransportMessage };
    const reason = headers[HEADERS.deadLetterReason];
    const at = Number(headers[HEADERS.deadLetteredAt]);
    const messageId = message.properties.messageId;
    return {
      id,
      topic: this.#topic,
      consumerGroup: this.#group,
      keys: keysOf(message),
      ...(typeof messageId === 'string' && messageId !== '' ? { messageId } : {}),
      ...(reason !== undefined ? { reason: String(reason) } : {}),
      ...(Number.isFinite(at) && at > 0 ? { deadLetteredAt: at } : {}),
      deliveryAttempt: attempt,
      message: transportMessage.message,
    };
  }

  /** The copy's properties: the letter's, with a fresh attempt count and without the dead-letter headers. */
  #redriveOptions(message: GetMessage) {
    const options = copyOptions(message, {
      [HEADERS.retryReason]: `re-driven from ${this.#names.deadLetterQueue}`,
    });
    const headers = { ...options.headers };
    delete headers[HEADERS.attempt];
    delete headers[HEADERS.deadLetterReason];
    delete headers[HEADERS.deadLetteredAt];
    return { ...options, headers };
  }
}

/** Gives back every letter the channel still holds (requeued in place), then closes it. */
async function giveBack(channel: Channel): Promise<void> {
  try {
    channel.nackAll(true);
  } catch {
    // The channel is gone: RabbitMQ requeued what it held when it closed.
  }
  await channel.close().catch(() => undefined);
}
