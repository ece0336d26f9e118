/**
 * `RocketMQPublisher`: sends messages with a business key, always. Consumers deduplicate on the key
 * (RocketMQ's message Key), so a message without one is refused before it reaches the broker.
 */
import {
  CONSOLE_WARNINGS,
  checkOptionsObject,
  codecOption,
  InvalidOptionError,
  injectTraceContext,
  integerOption,
  publishedKeys,
} from '@idempotent-mq/core/adapter';
import { createProducer, startClient, type TransportProducer } from './client.js';
import { type BodyCodec, encodeBody } from './codec.js';
import { BodyEncodingError, MissingMessageKeyError, NotStartedError } from './errors.js';
import {
  type ResolvedClientOptions,
  type RocketMQClientOptions,
  type RocketMQLogger,
  resolveClientOptions,
} from './options.js';

export interface RocketMQPublisherOptions extends RocketMQClientOptions {
  /** Every topic this publisher sends to (a real proxy rejects a producer without its topics). */
  readonly topics: readonly string[];
  /** How bodies are encoded. @defaultValue `'json'` */
  readonly codec?: BodyCodec;
  /** Send attempts of the client (it resends with the same message id). @defaultValue `3` */
  readonly maxAttempts?: number;
}

const PUBLISHER_OPTIONS: readonly string[] = ['topics', 'codec', 'maxAttempts'];

export interface PublishRequest<B = unknown> {
  readonly topic: string;
  /** The business key(s): required, non-blank. */
  readonly keys: string | readonly string[];
  readonly body: B;
  readonly tag?: string;
  /**
   * User properties. The active trace context (W3C `traceparent`, `tracestate`) is added when
   * `@idempotent-mq/opentelemetry` installed its injector; a `traceparent` given here is kept.
   */
  readonly properties?: Readonly<Record<string, string>>;
  /** Ordered delivery within the group (a FIFO topic). */
  readonly messageGroup?: string;
  /** Deliver no earlier than this many ms from now (a delay topic). */
  readonly delayMs?: number;
}

const REQUEST_FIELDS: readonly string[] = [
  'topic',
  'keys',
  'body',
  'tag',
  'properties',
  'messageGroup',
  'delayMs',
];

export interface PublishReceipt {
  readonly messageId: string;
  readonly keys: readonly string[];
}

/**
 * Sends keyed messages to RocketMQ: `start()`, then `send(...)` as often as needed, then `stop()`. A
 * message without a business key, or a body its codec cannot encode, is refused before any I/O; the
 * active trace context travels in the message properties. The producer resends a failed send itself
 * (`maxAttempts`, the same message id); consumers deduplicate on the key whatever the broker does.
 *
 * @example
 * ```ts
 * const publisher = new RocketMQPublisher({ endpoints: '127.0.0.1:8081', topics: ['payments'] });
 * await publisher.start();
 * await publisher.send({ topic: 'payments', keys: payment.serial, tag: 'PAY', body: payment });
 * await publisher.stop();
 * ```
 */
export class RocketMQPublisher {
  readonly #options: ResolvedClientOptions;
  readonly #topics: readonly string[];
  readonly #codec: BodyCodec;
  readonly #maxAttempts: number;
  readonly #logger: RocketMQLogger;
  #producer: TransportProducer | undefined;
  #starting: Promise<void> | undefined;

  /** Validates every option now, naming the one that is wrong. */
  constructor(options: RocketMQPublisherOptions) {
    const prefix = 'RocketMQPublisher';
    this.#options = resolveClientOptions(options, prefix, PUBLISHER_OPTIONS);
    const topics = options.topics;
    if (
      !Array.isArray(topics) ||
      topics.length === 0 ||
      !topics.every((t) => typeof t === 'string' && t.trim() !== '')
    ) {
      throw new InvalidOptionError(`${prefix}.topics`, 'a non-empty array of topic names', topics);
    }
    this.#topics = [...topics];
    this.#codec = codecOption(prefix, 'codec', options.codec, 'json');
    this.#maxAttempts = integerOption(prefix, 'maxAttempts', options.maxAttempts, {
      min: 1,
      max: 16,
      fallback: 3,
    });
    this.#logger = this.#options.logger ?? CONSOLE_WARNINGS;
  }

  /** Starts the producer; rejects with `RocketMQStartupError` within `startupTimeoutMs`. */
  async start(): Promise<void> {
    if (this.#producer) return;
    this.#starting ??= (async () => {
      const producer = createProducer(this.#options, this.#topics, this.#maxAttempts);
      await startClient(producer, `producer for ${this.#topics.join(', ')}`, this.#options, this.#logger);
      this.#producer = producer;
    })().finally(() => {
      this.#starting = undefined;
    });
    await this.#starting;
  }

  /** Sends one message. Refuses, before any I/O, a message without a business key. */
  async send<B>(request: PublishRequest<B>): Promise<PublishReceipt> {
    const keys = publishedKeys(
      request?.keys,
      (reason) => new MissingMessageKeyError(String(request?.topic), reason),
    );
    checkOptionsObject(request, REQUEST_FIELDS, 'RocketMQPublisher.send()');
    let body: Buffer;
    try {
      body = encodeBody(this.#codec, request.body);
    } catch (error) {
      throw new BodyEncodingError(request.topic, this.#codec, error);
    }
    const producer = this.#producer;
    if (!producer) throw new NotStartedError('RocketMQPublisher');
    const properties = injectTraceContext(request.properties);
    const receipt = await producer.send({
      topic: request.topic,
      body,
      keys,
      ...(request.tag ? { tag: request.tag } : {}),
      ...(properties ? { properties: new Map(Object.entries(properties)) } : {}),
      ...(request.messageGroup ? { messageGroup: request.messageGroup } : {}),
      ...(request.delayMs ? { delay: request.delayMs } : {}),
    });
    return { messageId: receipt?.messageId ?? '', keys };
  }

  /** Closes the producer (once a start under way has finished, so that nothing is left open). */
  async stop(): Promise<void> {
    await this.#starting?.catch(() => undefined);
    const producer = this.#producer;
    this.#producer = undefined;
    await producer?.close(this.#logger);
  }
}
