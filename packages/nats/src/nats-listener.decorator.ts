/**
 * `@NatsListener`: `@MessageListener` with NATS JetStream's own options. Metadata only: core's
 * `transportListener` records the options where the listener registry finds them (a misspelt name
 * refused first); the registry hands them back to the transport as `SubscriptionSpec.listener`.
 */
import { type MessageListenerOptions, transportListener } from '@idempotent-mq/core/adapter';
import type { BodyCodec } from './codec.js';
import { checkNatsListener } from './nats-profile.js';

/** The options of `@NatsListener`. */
export interface NatsListenerOptions extends Omit<MessageListenerOptions, 'filter'> {
  /**
   * The subject to consume, such as `'orders.created'`; a pattern (`'orders.*'`, `'orders.>'`) consumes
   * every subject it matches.
   */
  readonly topic: string;
  /**
   * The consumer group: the durable pull consumer's name (`[A-Za-z0-9_-]`). Every group gets each
   * message; within a group, one consumer handles it.
   */
  readonly consumerGroup: string;
  /**
   * A subject pattern within `topic` that narrows what the group receives (the consumer's filter
   * subject), e.g. `'orders.eu.*'` under `'orders.>'`. @defaultValue all of `topic`
   */
  readonly filterSubject?: string;
  /** The stream to read. @defaultValue the transport's `stream`, else the stream that captures the topic */
  readonly stream?: string;
  /** How this listener's bodies are decoded. @defaultValue the transport's `codec` */
  readonly codec?: BodyCodec;
  /**
   * Where a new group starts (when its durable is created; an existing durable keeps its place):
   * `'all'` from the stream's first message, `'new'` from the next one published. @defaultValue `'all'`
   */
  readonly deliverPolicy?: 'all' | 'new';
}

/** What `@NatsListener` records: the registry's fields plus the NATS ones. */
export interface NatsListenerMetadata extends NatsListenerOptions {
  readonly transport: 'nats';
  /** The filter subject, where the registry reads `filter` (`'*'`: all of the topic). */
  readonly filter: string;
  readonly [option: string]: unknown;
}

/**
 * Subscribes the class to a NATS JetStream subject for a consumer group once a `ListenerRegistry` starts.
 *
 * @example
 * ```ts
 * @injectable()
 * @NatsListener({ topic: 'orders.created', consumerGroup: 'billing' })
 * class OrderConsumer {
 *   @Idempotent({ key: (m: TransportMessage) => m.keys })
 *   async onMessage(m: TransportMessage<Order>, ctx: IdempotencyContext) {}
 * }
 * ```
 * @throws `InvalidOptionError` when the class is defined, naming the option: the listener options, the
 * subject and durable name rules, `filterSubject` (within the topic), `stream`, `codec`, `deliverPolicy`.
 */
export function NatsListener(options: NatsListenerOptions) {
  return decorateNats(options);
}

/** `@NatsListener` is core's transport listener decorator with NATS JetStream's options and rules. */
const decorateNats = transportListener({
  decorator: '@NatsListener',
  transport: 'nats',
  filterOption: 'filterSubject',
  options: ['filterSubject', 'stream', 'codec', 'deliverPolicy'],
  check: checkNatsListener,
});
