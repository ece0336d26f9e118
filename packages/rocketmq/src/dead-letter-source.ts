/**
 * The dead letters of one consumer group, topic `%DLQ%<group>`, as the operator CLI reads and re-drives
 * them (`idempotent-mq dlq list|redrive`): a `DeadLetterSource` of core's shape.
 *
 * RocketMQ 5 has no browse over gRPC: a dead-letter topic is read as any topic is, by a SimpleConsumer of
 * a group of its own (the reader group), and a receive hides each letter from that group for a while.
 * So `list()` holds what it receives until it has read them all, then makes each visible again at once
 * (ChangeInvisibleDuration to 0): a second `list()`, or a re-drive, right after sees every letter again
 * (a crash meanwhile leaves them to come back after `invisibleDurationMs`). RocketMQ deletes no
 * message: a letter leaves the dead letters when the reader group acks it.
 */
import type { DeadLetter, DeadLetterSource, TransportMessage } from '@idempotent-mq/core/adapter';
import {
  CONSOLE_WARNINGS,
  codecOption,
  decodeBody,
  InvalidOptionError,
  integerOption,
  withTimeout,
} from '@idempotent-mq/core/adapter';
import type { MessageView, TopicRouteData } from 'rocketmq-client-nodejs';
import {
  clientOptions,
  createProducer,
  errorCode,
  filterExpression,
  startClient,
  type TransportProducer,
  TransportSimpleConsumer,
} from './client.js';
import type { BodyCodec } from './codec.js';
import { messageOf } from './errors.js';
import {
  type ResolvedClientOptions,
  type RocketMQClientOptions,
  type RocketMQLogger,
  resolveClientOptions,
} from './options.js';
import { pbDefinition } from './proto.js';
import { checkRocketMQNames, MAX_INVISIBLE_DURATION_MS } from './rocketmq-profile.js';

/** Options of {@link rocketMQDeadLetterSource}: the group whose dead letters to read, and how to connect. */
export interface RocketMQDeadLetterSourceOptions extends RocketMQClientOptions {
  /**
   * The topic the letters were consumed from, and are re-driven to. A RocketMQ 5 proxy does not tell a
   * gRPC client a dead letter's original topic (see {@link rocketMQDeadLetterSource}).
   */
  readonly topic: string;
  /** The consumer group that gave up on them: the letters wait in topic `%DLQ%<consumerGroup>`. */
  readonly consumerGroup: string;
  /**
   * The consumer group the source reads `%DLQ%<consumerGroup>` with (never the listener's own group: a
   * group's consumers must subscribe alike). Its acks are what take a letter out of the dead letters, so
   * every source of the same letters must use the same reader group; it needs at least 1000 delivery
   * attempts (see {@link rocketMQDeadLetterSource}). @defaultValue `'<consumerGroup>-dlq-reader'`
   */
  readonly readerGroup?: string;
  /** How a letter's body is decoded for `letter.message.body` (a key function reads it). @defaultValue `'json'` */
  readonly codec?: BodyCodec;
  /**
   * How long a received letter stays hidden from the reader group while the source holds it. At least
   * 10 s (a RocketMQ 5 proxy's shortest receive invisibility, `minInvisibleTimeMillsForRecv`) and more
   * than twice `timeoutMs`, so that a letter being re-driven is still held when it is acked after its
   * copy was sent. @defaultValue `30000`
   */
  readonly invisibleDurationMs?: number;
  /**
   * Long polling of each receive: the last receive of a listing, which finds nothing, waits this long. A
   * RocketMQ 5 proxy polls at least 5 s (`grpcClientConsumerMinLongPollingTimeoutMillis`) whatever is
   * asked. @defaultValue `5000`
   */
  readonly awaitDurationMs?: number;
  /**
   * How long one step may take beyond its long poll: a receive, the re-drive's send (its confirm), an
   * ack, an invisible-time change. @defaultValue `10000`
   */
  readonly timeoutMs?: number;
  /**
   * The most letters `list()` reads (and a re-drive looks through to find its letter); each is held by
   * the source until the call is done. @defaultValue `10000`
   */
  readonly maxLetters?: number;
}

/** The source's own option names (the client's are checked with them). */
const OWN_OPTIONS = [
  'topic',
  'consumerGroup',
  'readerGroup',
  'codec',
  'invisibleDurationMs',
  'awaitDurationMs',
  'timeoutMs',
  'maxLetters',
];

/**
 * The fewest delivery attempts the reader group may have. Every receive of a letter counts one more
 * delivery of it (a dead letter goes on from the count it died with: 17 or 18 after RocketMQ's default
 * 16 retries), and a proxy moves a letter past the reader group's attempts into that group's own
 * dead-letter topic instead of delivering it. With RocketMQ's default (17), every letter that died after
 * the full retries would be moved on, unseen, by its first receive.
 */
export const MIN_READER_ATTEMPTS = 1000;

/** Letters received per receive while listing (a re-drive takes them one at a time). */
const LIST_BATCH = 16;

/**
 * The dead letters of `consumerGroup` (topic `%DLQ%<consumerGroup>`), re-driven to `topic`, for
 * `idempotent-mq dlq` (name it in the config's `deadLetters`). Options are checked now; the clients
 * start on the first `list()` or `redrive()`.
 *
 * - `list()` receives every letter as `readerGroup`, holds them, then makes each visible again (see the
 *   file's opening comment): the count and the letters are unchanged. Each letter's `id` is
 *   `<consumerGroup>/<message id>`: the original message's id, which RocketMQ keeps on its dead letter
 *   (`#2`, `#3` … follow when the same id repeats). No `reason`, `deadLetteredAt` or `deliveryAttempt`:
 *   RocketMQ keeps no reason, and the count a consumer sees grows with every listing.
 * - `redrive(letter)` receives the letters one at a time until it has this one, sends a copy to `topic`
 *   with its body, keys, tag, properties and message group (every consumer group of the topic gets it;
 *   those that processed it answer it from their tokens as a duplicate), **waits for the broker's
 *   answer to the send**, and only then acks the letter out of the dead letters; the letters received
 *   before it are made visible again. A send that fails or times out leaves the letter where it was (a
 *   send that timed out may still land: a duplicate, as below). A crash between the send and the ack
 *   leaves the letter as well as the copy: a duplicate, never a loss, and a harmless one (the consumer
 *   answers the copy from its token, and `dlq redrive` skips a letter whose token is completed). A
 *   letter no longer there is an error, and nothing is sent.
 * - No `%DLQ%<consumerGroup>` topic yet (RocketMQ creates it with the group's first dead letter) lists
 *   nothing. Each step is bounded (`startupTimeoutMs`, `awaitDurationMs` + `timeoutMs`, `timeoutMs`): an
 *   unreachable proxy is a `RocketMQStartupError`, not a hang.
 *
 * What an operator sets up once on a real cluster (`mqadmin`):
 * - **The dead-letter topic must be readable.** Brokers since 4.9.2 create `%DLQ%<group>` read-write
 *   (perm 6); older ones created it write-only (perm 2), and a topic keeps its perm across upgrades.
 *   A write-only one is refused with the fix: `mqadmin updateTopicPerm -n <namesrv> -c <cluster>
 *   -t '%DLQ%<group>' -p 6`.
 * - **The reader group needs many attempts:** `mqadmin updateSubGroup -n <namesrv> -c <cluster>
 *   -g <readerGroup> -r 1000` (fewer than {@link MIN_READER_ATTEMPTS} is refused, see there).
 * - **A new reader group may start at the end.** A proxy starts a group new to a topic at its last
 *   message unless the topic's first message is still in the broker's memory: reset the reader group
 *   to the start of `%DLQ%<group>` (`mqadmin resetOffsetByTime -g <readerGroup> -t '%DLQ%<group>' -s
 *   <an early time>`) if letters older than the group are missing.
 * - **One topic per group.** A group that consumes several topics has one dead-letter topic for all of
 *   them, and the proxy does not tell a gRPC client which topic a letter came from (the broker keeps it
 *   in the system property `RETRY_TOPIC`, which the proxy hands to no client): this source re-drives
 *   every letter of the group to `topic`.
 *
 * @example
 * ```js
 * // idempotent-mq.config.mjs
 * deadLetters: [{
 *   name: 'billing',
 *   source: () => rocketMQDeadLetterSource({ endpoints: '127.0.0.1:8081', topic: 'payments', consumerGroup: 'billing' }),
 *   scope: 'v1:billing:PaymentConsumer.onMessage',
 * }]
 * ```
 */
export function rocketMQDeadLetterSource(options: RocketMQDeadLetterSourceOptions): DeadLetterSource {
  return new RocketMQDeadLetterTopic(options);
}

/** The source behind {@link rocketMQDeadLetterSource}: one group's dead-letter topic, one reader, one producer. */
class RocketMQDeadLetterTopic implements DeadLetterSource {
  readonly description: string;
  readonly #client: ResolvedClientOptions;
  readonly #logger: RocketMQLogger;
  readonly #topic: string;
  readonly #group: string;
  readonly #dlqTopic: string;
  readonly #readerGroup: string;
  readonly #codec: BodyCodec;
  readonly #invisibleMs: number;
  readonly #awaitMs: number;
  readonly #timeoutMs: number;
  readonly #maxLetters: number;
  #reader: Promise<DeadLetterReader | undefined> | undefined;
  #producer: Promise<TransportProducer> | undefined;

  constructor(options: RocketMQDeadLetterSourceOptions) {
    const where = 'rocketMQDeadLetterSource';
    this.#client = resolveClientOptions(options, where, OWN_OPTIONS);
    this.#logger = this.#client.logger ?? CONSOLE_WARNINGS;
    checkRocketMQNames(options, where);
    this.#topic = options.topic;
    this.#group = options.consumerGroup;
    this.#dlqTopic = `%DLQ%${this.#group}`;
    this.#readerGroup = options.readerGroup ?? `${this.#group}-dlq-reader`;
    try {
      checkRocketMQNames({ topic: this.#topic, consumerGroup: this.#readerGroup }, where);
    } catch (error) {
      if (!(error instanceof InvalidOptionError)) throw error;
      throw new InvalidOptionError(`${where}.readerGroup`, error.accepted, error.value);
    }
    if (this.#readerGroup === this.#group) {
      throw new InvalidOptionError(
        `${where}.readerGroup`,
        "a group of its own, not the listener's consumerGroup (its consumers subscribe to the topic, not to its dead letters)",
        this.#readerGroup,
      );
    }
    this.#codec = codecOption(where, 'codec', options.codec, 'json');
    this.#timeoutMs = integerOption(where, 'timeoutMs', options.timeoutMs, {
      min: 100,
      max: 600_000,
      fallback: 10_000,
    });
    this.#invisibleMs = integerOption(where, 'invisibleDurationMs', options.invisibleDurationMs, {
      min: Math.max(10_000, 2 * this.#timeoutMs + 1),
      max: MAX_INVISIBLE_DURATION_MS,
      fallback: Math.max(30_000, 2 * this.#timeoutMs + 1),
    });
    this.#awaitMs = integerOption(where, 'awaitDurationMs', options.awaitDurationMs, {
      min: 100,
      max: 300_000,
      fallback: 5000,
    });
    this.#maxLetters = integerOption(where, 'maxLetters', options.maxLetters, {
      min: 1,
      max: 1_000_000,
      fallback: 10_000,
    });
    this.description = `RocketMQ topic ${this.#dlqTopic} (read as group ${this.#readerGroup})`;
  }

  async list(): Promise<readonly DeadLetter[]> {
    const reader = await this.#open();
    if (!reader) return [];
    const held: MessageView[] = [];
    try {
      while (held.length < this.#maxLetters) {
        const views = await this.#receive(reader, Math.min(LIST_BATCH, this.#maxLetters - held.length));
        if (views.length === 0) break;
        held.push(...views);
      }
      const seen = new Map<string, number>();
      return held.map((view) => this.#letterOf(view, this.#idOf(view, seen)));
    } finally {
      await this.#giveBack(reader, held);
    }
  }

  async redrive(letter: DeadLetter): Promise<void> {
    if (letter.topic !== this.#topic || letter.consumerGroup !== this.#group) {
      throw new Error(
        `Dead letter ${letter.id} is of group "${letter.consumerGroup}" on topic "${letter.topic}", not of ` +
          `${this.description} for topic "${this.#topic}": re-drive it through its own source.`,
      );
    }
    const reader = await this.#open();
    if (!reader) throw new Error(this.#gone(letter.id));
    // Started before any letter is held: a producer that cannot start leaves nothing hidden.
    const producer = await this.#openProducer();
    const held: MessageView[] = [];
    try {
      const found = await this.#find(reader, letter.id, held);
      try {
        await withTimeout(producer.send(copyOf(found, this.#topic)), this.#timeoutMs, {
          error: () => new Error(`no answer to the send within ${this.#timeoutMs} ms (timeoutMs)`),
        });
      } catch (error) {
        held.push(found);
        throw new Error(
          `Could not re-publish dead letter ${letter.id} to topic "${this.#topic}": ${messageOf(error)}. It stays ` +
            `in ${this.#dlqTopic}.`,
          { cause: error },
        );
      }
      // The broker has the copy: only now may the letter leave the dead letters.
      try {
        await withTimeout(reader.ackStrictly(found), this.#timeoutMs, {
          error: () => new Error(`no answer to the ack within ${this.#timeoutMs} ms (timeoutMs)`),
        });
      } catch (error) {
        held.push(found);
        throw new Error(
          `Dead letter ${letter.id} was re-published to topic "${this.#topic}" but could not be acked out of ` +
            `${this.#dlqTopic} (${messageOf(error)}): unless the ack was applied all the same, it is listed ` +
            'again, and re-driving it once more is answered by the consumer as a duplicate.',
          { cause: error },
        );
      }
    } finally {
      await this.#giveBack(reader, held);
    }
  }

  async close(): Promise<void> {
    const reader = await this.#reader?.catch(() => undefined);
    const producer = await this.#producer?.catch(() => undefined);
    this.#reader = undefined;
    this.#producer = undefined;
    await Promise.all([reader?.close(this.#logger), producer?.close(this.#logger)]);
  }

  /** Receives letters one at a time until the one with `id`; those before it are added to `held`. */
  async #find(reader: DeadLetterReader, id: string, held: MessageView[]): Promise<MessageView> {
    const seen = new Map<string, number>();
    while (held.length < this.#maxLetters) {
      const [view] = await this.#receive(reader, 1);
      if (!view) break;
      if (this.#idOf(view, seen) === id) return view;
      held.push(view);
    }
    throw new Error(this.#gone(id, held.length >= this.#maxLetters));
  }

  #gone(id: string, pastMax = false): string {
    return (
      `Dead letter ${id} is no longer in ${this.#dlqTopic} (re-driven or acked by group ${this.#readerGroup} ` +
      `since it was listed${pastMax ? `, or now past the first ${this.#maxLetters} letters, maxLetters` : ''}); ` +
      'nothing was published.'
    );
  }

  async #receive(reader: DeadLetterReader, count: number): Promise<MessageView[]> {
    // A receive the bound gives up on may still bring letters: they come back after their invisible time.
    return withTimeout(reader.receive(count, this.#invisibleMs), this.#awaitMs + this.#timeoutMs, {
      error: () =>
        new Error(
          `a receive from ${this.#dlqTopic} had no answer within ${this.#awaitMs + this.#timeoutMs} ms ` +
            '(awaitDurationMs + timeoutMs)',
        ),
    });
  }

  /** Makes every held letter visible again at once; one that fails comes back after its invisible time. */
  async #giveBack(reader: DeadLetterReader, held: readonly MessageView[]): Promise<void> {
    await Promise.allSettled(
      held.map((view) => withTimeout(reader.changeInvisibleDuration(view, 0), this.#timeoutMs)),
    );
  }

  /** The reader, started once (again after a failed try); undefined while the dead-letter topic does not exist. */
  #open(): Promise<DeadLetterReader | undefined> {
    this.#reader ??= this.#startReader().then(
      (reader) => {
        if (!reader) this.#reader = undefined;
        return reader;
      },
      (error: unknown) => {
        this.#reader = undefined;
        throw error;
      },
    );
    return this.#reader;
  }

  async #startReader(): Promise<DeadLetterReader | undefined> {
    const reader = new DeadLetterReader({
      ...clientOptions(this.#client),
      consumerGroup: this.#readerGroup,
      subscriptions: new Map([[this.#dlqTopic, filterExpression({})]]),
      awaitDuration: this.#awaitMs,
      // Each receive is ours to bound; the client's own retry would only stretch it.
      maxRetryAttempts: 1,
    });
    const role = `dead-letter reader (group "${this.#readerGroup}" on ${this.#dlqTopic})`;
    try {
      await startClient(reader, role, this.#client, this.#logger);
    } catch (error) {
      if (reader.route === 'missing') return undefined;
      throw error;
    }
    const refusal = this.#refusal(reader);
    if (refusal) {
      await reader.close(this.#logger);
      throw new Error(refusal);
    }
    return reader;
  }

  /** Why the started reader must not receive, if it must not (see {@link rocketMQDeadLetterSource}). */
  #refusal(reader: DeadLetterReader): string | undefined {
    if (reader.route === 'unreadable') {
      return (
        `${this.#dlqTopic} is not readable: its perm is write-only (brokers before 4.9.2 create dead-letter ` +
        `topics with perm 2). Make it readable, then run this again: ` +
        `mqadmin updateTopicPerm -n <namesrv> -c <cluster> -t '${this.#dlqTopic}' -p 6`
      );
    }
    const attempts = reader.groupMaxAttempts;
    if (attempts !== undefined && attempts < MIN_READER_ATTEMPTS) {
      return (
        `The reader group ${this.#readerGroup} allows ${attempts} delivery attempts: every receive of a letter ` +
        'spends one (a letter goes on from the count it died with), and the proxy moves a letter past them into ' +
        `%DLQ%${this.#readerGroup} instead of delivering it. Give it at least ${MIN_READER_ATTEMPTS}: ` +
        `mqadmin updateSubGroup -n <namesrv> -c <cluster> -g ${this.#readerGroup} -r ${MIN_READER_ATTEMPTS}. ` +
        'Nothing was received.'
      );
    }
    return undefined;
  }

  #openProducer(): Promise<TransportProducer> {
    this.#producer ??= (async () => {
      const producer = createProducer(this.#client, [this.#topic], 3);
      await startClient(producer, `producer for ${this.#topic}`, this.#client, this.#logger);
      return producer;
    })().catch((error: unknown) => {
      this.#producer = undefined;
      throw error;
    });
    return this.#producer;
  }

  /**
   * `<group>/<message id>`: RocketMQ keeps the original's id on its dead letter. The same id can repeat
   * (a producer's resend stored twice, then dead-lettered twice): then `#2`, `#3` … in receive order.
   */
  #idOf(view: MessageView, seen: Map<string, number>): string {
    const n = (seen.get(view.messageId) ?? 0) + 1;
    seen.set(view.messageId, n);
    return `${this.#group}/${view.messageId}${n > 1 ? `#${n}` : ''}`;
  }

  #letterOf(view: MessageView, id: string): DeadLetter {
    const decoded = decodeBody(this.#codec, view.body);
    const born = view.bornTimestamp?.getTime();
    const message: TransportMessage = {
      messageId: view.messageId,
      topic: this.#topic,
      keys: [...view.keys],
      ...(view.tag ? { tag: view.tag } : {}),
      // A body the codec cannot read (often why it was dead-lettered) is shown as its bytes.
      body: decoded.ok ? decoded.body : Buffer.from(view.body),
      properties: Object.fromEntries(view.properties),
      // What a handler will see of the re-driven copy: its first delivery.
      deliveryAttempt: 1,
      ...(born !== undefined && born > 0 ? { bornAt: born } : {}),
    };
    return {
      id,
      topic: this.#topic,
      consumerGroup: this.#group,
      keys: [...view.keys],
      messageId: view.messageId,
      message,
    };
  }
}

/** The re-driven copy: the letter's body, keys, tag, properties and message group, to `topic`. */
function copyOf(view: MessageView, topic: string) {
  return {
    topic,
    body: view.body,
    keys: [...view.keys],
    ...(view.tag ? { tag: view.tag } : {}),
    ...(view.properties.size > 0 ? { properties: new Map(view.properties) } : {}),
    ...(view.messageGroup ? { messageGroup: view.messageGroup } : {}),
  };
}

/**
 * The reader's SimpleConsumer: the transport's (closable, strict ack, the group's attempts from the
 * settings), and what its route said of the dead-letter topic. rocketmq-client-nodejs 1.0.8 takes a
 * route without a readable queue (a write-only topic) as a failure of every route update, and retries a
 * missing topic's route with 1 s and 2 s sleeps: the reader records either instead, so that the source
 * answers at once with what it means.
 */
class DeadLetterReader extends TransportSimpleConsumer {
  route: 'readable' | 'unreadable' | 'missing' | undefined;

  protected override async updateRoutes(): Promise<void> {
    try {
      await super.updateRoutes();
    } catch (error) {
      if (errorCode(error) === TOPIC_NOT_FOUND) this.route = 'missing';
      throw error;
    }
  }

  protected override sleep(ms: number): Promise<void> {
    return this.route === 'missing' ? Promise.resolve() : super.sleep(ms);
  }

  protected override onTopicRouteDataUpdate(topic: string, data: TopicRouteData): void {
    const { READ, READ_WRITE } = pbDefinition.Permission;
    const readable = data.messageQueues.some((q) => q.permission === READ || q.permission === READ_WRITE);
    this.route = readable ? 'readable' : 'unreadable';
    if (readable) super.onTopicRouteDataUpdate(topic, data);
  }
}

/** RocketMQ's code for a topic the proxy does not know (apache.rocketmq.v2.Code.TOPIC_NOT_FOUND). */
const TOPIC_NOT_FOUND = 40402;
