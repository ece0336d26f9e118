/**
 * `@RabbitMQListener`: `@MessageListener` with RabbitMQ's own options. Metadata only: core's
 * `transportListener` records the options where the listener registry finds them (a misspelt name
 * refused first); the registry hands them back to the transport as `SubscriptionSpec.listener`.
 */
import { type MessageListenerOptions, transportListener } from '@idempotent-mq/core/adapter';
import type { BodyCodec } from './codec.js';
import { checkRabbitMQListener } from './rabbitmq-profile.js';

/** The options of `@RabbitMQListener`: `@MessageListener`'s, with a binding key for a filter. */
export interface RabbitMQListenerOptions extends Omit<MessageListenerOptions, 'filter'> {
  /**
   * Which messages of the topic the group receives, by routing key: `'*'` for all, or patterns joined by
   * `||` (`'PAY || REFUND'`, `'eu.*.PAY'`, `'audit.#'`), each a binding of the group's queue. Bindings
   * are only ever added: to narrow a group's filter, unbind the old key (or use a new group).
   * @defaultValue `'*'`
   */
  readonly bindingKey?: string;
  /** How this listener's bodies are decoded. @defaultValue the transport's `codec` */
  readonly codec?: BodyCodec;
  /**
   * This listener's hand-over time (see the transport's `handOverAfterMs`); it must fit under the
   * transport's `consumerTimeoutMs`, which the registry checks at start-up.
   * @defaultValue the transport's `handOverAfterMs`
   */
  readonly handOverAfterMs?: number;
}

/** What `@RabbitMQListener` records: the registry's fields plus the RabbitMQ ones. */
export interface RabbitMQListenerMetadata extends RabbitMQListenerOptions {
  readonly transport: 'rabbitmq';
  /** The binding key, where the registry reads `filter`. */
  readonly filter: string;
  readonly [option: string]: unknown;
}

/**
 * Subscribes the class to a RabbitMQ topic for a consumer group once a `ListenerRegistry` starts.
 *
 * @example
 * ```ts
 * @injectable()
 * @RabbitMQListener({ topic: 'payments', consumerGroup: 'billing', bindingKey: 'PAY' })
 * class PaymentConsumer {
 *   @Idempotent({ key: (m: TransportMessage) => m.keys })
 *   async onMessage(m: TransportMessage<Payment>, ctx: IdempotencyContext) {}
 * }
 * ```
 * @throws `InvalidOptionError` when the class is defined, naming the option: the listener options,
 * RabbitMQ's topic and group name rules, `bindingKey`, `codec`, `handOverAfterMs`.
 */
export function RabbitMQListener(options: RabbitMQListenerOptions) {
  return decorateRabbitMQ(options);
}

/** `@RabbitMQListener` is core's transport listener decorator with RabbitMQ's options and rules. */
const decorateRabbitMQ = transportListener({
  decorator: '@RabbitMQListener',
  transport: 'rabbitmq',
  filterOption: 'bindingKey',
  options: ['bindingKey', 'codec', 'handOverAfterMs'],
  check: checkRabbitMQListener,
});
