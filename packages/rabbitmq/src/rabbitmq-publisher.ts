/**
 * `RabbitMQPublisher`: sends messages with a business key, always, and resolves only once RabbitMQ has
 * confirmed them. The key goes where RabbitMQ carries it (the `messageId` property) and, exactly, in a
 * header of ours (a JSON array, for several keys); consumers deduplicate on it. A message without a key
 * is refused before it reaches the broker; one that no queue would receive is refused by default.
 */
import {
  booleanOption,
  checkOptionsObject,
  codecOption,
  InvalidOptionError,
  integerOption,
  publishedKeys,
} from '@idempotent-mq/core/adapter';
import { type BodyCodec, CONTENT_TYPES, encodeBody } from './codec.js';
import { ConfirmedChannel } from './confirmed-channel.js';
import { type ConnectionSource, connectionSource } from './connection.js';
import { BodyEncodingError, MissingMessageKeyError, NotStartedError } from './errors.js';
import {
  type RabbitMQConnectionOptions,
  type ResolvedConnectionOptions,
  resolveConnectionOptions,
} from './options.js';
import { checkFilter, checkName, checkRabbitMQNames } from './rabbitmq-profile.js';
import { declareConsumerGroup, HEADERS, type RabbitMQTopology } from './topology.js';

/** A consumer group whose queue the publisher declares, so that it keeps messages sent before its consumers start. */
export interface RabbitMQConsumerGroup {
  readonly topic: string;
  readonly consumerGroup: string;
  /** The group's filter, as its listener has it (binding keys joined by `||`). @defaultValue `'*'` */
  readonly filter?: string;
}

const GROUP_FIELDS: readonly string[] = ['topic', 'consumerGroup', 'filter'];

/** Options of {@link RabbitMQPublisher}. */
export interface RabbitMQPublisherOptions extends RabbitMQConnectionOptions {
  /** How bodies are encoded (and the `content-type` set). @defaultValue `'json'` */
  readonly codec?: BodyCodec;
  /** How long `send` waits for RabbitMQ's confirm (a channel included). @defaultValue `10000` */
  readonly confirmTimeoutMs?: number;
  /**
   * Refuse a message that no queue receives (`mandatory`: RabbitMQ returns it, `send` rejects with an
   * `unroutable` `RabbitMQPublishError`) rather than let RabbitMQ drop it silently. @defaultValue `true`
   */
  readonly mandatory?: boolean;
  /**
   * Consumer groups declared by `start()` (the exchange, the group's queue and bindings, its dead-letter
   * queue, as the transport declares them), so that what is sent before they first subscribe is kept.
   * @defaultValue none
   */
  readonly declare?: readonly RabbitMQConsumerGroup[];
}

const PUBLISHER_OPTIONS: readonly string[] = ['codec', 'confirmTimeoutMs', 'mandatory', 'declare'];

/** One message to send. */
export interface PublishRequest<B = unknown> {
  /** The topic: the exchange it is published to. */
  readonly topic: string;
  /** The business key(s): required, non-blank. */
  readonly keys: string | readonly string[];
  readonly body: B;
  /** The routing key: consumers' binding keys filter on it; it is their `tag`. @defaultValue `''` */
  readonly routingKey?: string;
  /** Headers of your own (the consumers' `properties`). Names starting with `idempotent-mq-` are ours. */
  readonly properties?: Readonly<Record<string, string | number | boolean>>;
  /** Written to disk by durable queues (delivery mode 2). @defaultValue `true` */
  readonly persistent?: boolean;
}

const REQUEST_FIELDS: readonly string[] = ['topic', 'keys', 'body', 'routingKey', 'properties', 'persistent'];

/** What `send` answers once RabbitMQ has confirmed the message. */
export interface PublishReceipt {
  /** The `messageId` property set: the key, or the JSON array of the keys when there are several. */
  readonly messageId: string;
  readonly keys: readonly string[];
}

/**
 * Publishes keyed messages to RabbitMQ with publisher confirms: `start()`, then `send(...)` as often as
 * needed, then `stop()`. With a `url` it owns its connection and reconnects it; a `connection` given is
 * used as it is and left open.
 */
export class RabbitMQPublisher {
  readonly #options: ResolvedConnectionOptions;
  readonly #source: ConnectionSource;
  readonly #codec: BodyCodec;
  readonly #confirmTimeoutMs: number;
  readonly #mandatory: boolean;
  readonly #declare: readonly RabbitMQConsumerGroup[];
  #confirmed: ConfirmedChannel | undefined;
  #opening: Promise<ConfirmedChannel> | undefined;
  #starting: Promise<void> | undefined;
  #started = false;
  #stopped = false;
  readonly #inFlight = new Set<Promise<unknown>>();

  /** Validates every option now, naming the one that is wrong. */
  constructor(options: RabbitMQPublisherOptions) {
    const prefix = 'RabbitMQPublisher';
    this.#options = resolveConnectionOptions(options, prefix, PUBLISHER_OPTIONS);
    this.#codec = codecOption(prefix, 'codec', options.codec, 'json');
    this.#confirmTimeoutMs = integerOption(prefix, 'confirmTimeoutMs', options.confirmTimeoutMs, {
      min: 100,
      max: 600_000,
      fallback: 10_000,
    });
    this.#mandatory = booleanOption(prefix, 'mandatory', options.mandatory, true) as boolean;
    const declare = options.declare ?? [];
    if (!Array.isArray(declare)) {
      throw new InvalidOptionError(
        `${prefix}.declare`,
        'an array of { topic, consumerGroup, filter? }',
        declare,
      );
    }
    for (const [i, group] of declare.entries()) checkGroup(group, `${prefix}.declare[${i}]`);
    this.#declare = [...declare];
    this.#source = connectionSource(this.#options, 'RabbitMQPublisher');
  }

  /**
   * Connects (a URL: its own connection, reconnected after a drop) and declares the `declare` groups.
   * Rejects with `RabbitMQConnectionError` if the broker cannot be reached.
   */
  async start(): Promise<void> {
    if (this.#stopped) throw new NotStartedError('RabbitMQPublisher', 'it was stopped; create a new one');
    if (this.#started) return;
    this.#starting ??= (async () => {
      await this.#source.open();
      for (const group of this.#declare) await this.#declareGroup(group);
      this.#started = true;
    })().finally(() => {
      this.#starting = undefined;
    });
    await this.#starting;
  }

  /** Declares one more consumer group (see `declare`), e.g. when a new one is about to subscribe. */
  async declare(group: RabbitMQConsumerGroup): Promise<RabbitMQTopology> {
    checkGroup(group, 'RabbitMQPublisher.declare()');
    if (!this.#started || this.#stopped) throw new NotStartedError('RabbitMQPublisher');
    return this.#declareGroup(group);
  }

  /**
   * Sends one message and resolves once RabbitMQ confirms it. Refuses, before any I/O, a message without
   * a business key (`MissingMessageKeyError`) or a body the codec cannot encode (`BodyEncodingError`);
   * rejects with `RabbitMQPublishError` when RabbitMQ does not confirm it (resending is safe).
   */
  async send<B>(request: PublishRequest<B>): Promise<PublishReceipt> {
    const keys = publishedKeys(
      request?.keys,
      (reason) => new MissingMessageKeyError(String(request?.topic), reason),
    );
    checkOptionsObject(request, REQUEST_FIELDS, 'send()');
    const topic = request.topic;
    checkName(topic, 'send().topic');
    const routingKey = request.routingKey ?? '';
    if (typeof routingKey !== 'string' || Buffer.byteLength(routingKey, 'utf8') > 255) {
      throw new InvalidOptionError('send().routingKey', 'a string of at most 255 bytes', routingKey);
    }
    const properties = checkProperties(request.properties);
    let body: Buffer;
    try {
      body = encodeBody(this.#codec, request.body);
    } catch (error) {
      throw new BodyEncodingError(topic, this.#codec, error);
    }
    if (!this.#started || this.#stopped) throw new NotStartedError('RabbitMQPublisher');
    const messageId = keys.length === 1 ? (keys[0] as string) : JSON.stringify(keys);
    const now = Date.now();
    const work = (async () => {
      const confirmed = await this.#channel();
      if (!confirmed.declared.has(topic)) {
        await confirmed.channel.assertExchange(topic, 'topic', { durable: true });
        confirmed.declared.add(topic);
      }
      await confirmed.publish(
        topic,
        routingKey,
        body,
        {
          mandatory: this.#mandatory,
          persistent: request.persistent ?? true,
          contentType: CONTENT_TYPES[this.#codec],
          messageId,
          timestamp: Math.floor(now / 1000),
          headers: { ...properties, [HEADERS.keys]: JSON.stringify(keys), [HEADERS.bornAt]: now },
        },
        this.#confirmTimeoutMs,
      );
    })();
    this.#inFlight.add(work);
    try {
      await work;
    } finally {
      this.#inFlight.delete(work);
    }
    return { messageId, keys };
  }

  /** Waits for the sends in flight, then closes the channel and the connection it opened. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#starting?.catch(() => undefined);
    await Promise.allSettled([...this.#inFlight]);
    await this.#opening?.catch(() => undefined);
    await this.#confirmed?.close();
    await this.#source.close();
  }

  async #declareGroup(group: RabbitMQConsumerGroup): Promise<RabbitMQTopology> {
    const confirmed = await this.#channel();
    const names = await declareConsumerGroup(confirmed.channel, group);
    confirmed.declared.add(names.exchange);
    return names;
  }

  /** The confirm channel, opened again after it closed (a channel error, a reconnection). */
  async #channel(): Promise<ConfirmedChannel> {
    if (this.#confirmed && !this.#confirmed.closed) return this.#confirmed;
    this.#opening ??= (async () => {
      const channel = await this.#source.confirmChannel();
      const confirmed = new ConfirmedChannel(channel, (error) =>
        this.#options.logger.warn(`RabbitMQPublisher: channel: ${error.message}`),
      );
      this.#confirmed = confirmed;
      return confirmed;
    })().finally(() => {
      this.#opening = undefined;
    });
    return this.#opening;
  }
}

function checkGroup(group: RabbitMQConsumerGroup, where: string): void {
  if (typeof group !== 'object' || group === null) {
    throw new InvalidOptionError(where, '{ topic, consumerGroup, filter? }', group);
  }
  checkOptionsObject(group, GROUP_FIELDS, where);
  checkRabbitMQNames(group, where);
  if (group.filter !== undefined) checkFilter(group.filter, `${where}.filter`);
}

function checkProperties(
  properties: PublishRequest['properties'],
): Record<string, string | number | boolean> {
  if (properties === undefined) return {};
  if (typeof properties !== 'object' || properties === null) {
    throw new InvalidOptionError(
      'send().properties',
      'an object of string, number or boolean values',
      properties,
    );
  }
  for (const [name, value] of Object.entries(properties)) {
    if (name.startsWith('idempotent-mq-')) {
      throw new InvalidOptionError(
        `send().properties.${name}`,
        "a name not starting with 'idempotent-mq-' (ours)",
        name,
      );
    }
    if (!['string', 'number', 'boolean'].includes(typeof value)) {
      throw new InvalidOptionError(`send().properties.${name}`, 'a string, number or boolean', value);
    }
  }
  return { ...properties };
}
