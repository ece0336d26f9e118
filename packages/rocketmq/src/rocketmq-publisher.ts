/**
 * `RocketMQPublisher`: sends messages with a business key, always. Consumers deduplicate on the key
 * (RocketMQ's message Key), so a message without one is refused before it reaches the broker.
 */
import { InvalidOptionError, injectTraceContext } from '@idempotent-mq/core/adapter';
import { createProducer, startClient, type TransportProducer } from './client.js';
import { BODY_CODECS, type BodyCodec, encodeBody } from './codec.js';
import { BodyEncodingError, MissingMessageKeyError, NotStartedError } from './errors.js';
import {
  integer,
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

export interface PublishReceipt {
  readonly messageId: string;
  readonly keys: readonly string[];
}

export class RocketMQPublisher {
  readonly #options: ResolvedClientOptions;
  readonly #topics: readonly string[];
  readonly #codec: BodyCodec;
  readonly #maxAttempts: number;
  readonly #logger: RocketMQLogger;
  #producer: TransportProducer | undefined;
  #starting: Promise<void> | undefined;

  constructor(options: RocketMQPublisherOptions) {
    this.#options = resolveClientOptions(options, 'RocketMQPublisher');
    const topics = options.topics;
    if (
      !Array.isArray(topics) ||
      topics.length === 0 ||
      !topics.every((t) => typeof t === 'string' && t.trim() !== '')
    ) {
      throw new InvalidOptionError('RocketMQPublisher.topics', 'a non-empty array of topic names', topics);
    }
    this.#topics = [...topics];
    this.#codec = options.codec ?? 'json';
    if (!BODY_CODECS.includes(this.#codec)) {
      throw new InvalidOptionError('RocketMQPublisher.codec', "'json' | 'utf8' | 'buffer'", this.#codec);
    }
    this.#maxAttempts = integer('RocketMQPublisher.maxAttempts', options.maxAttempts, 3, 1, 16);
    this.#logger = this.#options.logger ?? { info() {}, warn: console.warn, error: console.error };
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
    const keys = checkKeys(request);
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

function checkKeys(request: PublishRequest): string[] {
  const topic = String(request?.topic);
  const raw = request?.keys;
  const keys = typeof raw === 'string' ? [raw] : Array.isArray(raw) ? [...(raw as unknown[])] : undefined;
  if (keys === undefined)
    throw new MissingMessageKeyError(topic, `"keys" is ${raw === undefined ? 'missing' : typeof raw}`);
  if (keys.length === 0) throw new MissingMessageKeyError(topic, '"keys" is an empty array');
  keys.forEach((key, i) => {
    if (typeof key !== 'string')
      throw new MissingMessageKeyError(topic, `key #${i} is ${typeof key}, not a string`);
    if (key.trim() === '') throw new MissingMessageKeyError(topic, `key #${i} is blank`);
  });
  return keys as string[];
}
