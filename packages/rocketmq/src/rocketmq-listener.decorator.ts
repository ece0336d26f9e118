/**
 * `@RocketMQListener`: `@MessageListener` with RocketMQ's own options. Metadata only: core's
 * `transportListener` records the options where the listener registry finds them (a misspelt name
 * refused first); the registry hands them back to the transport as `SubscriptionSpec.listener`.
 */
import { type MessageListenerOptions, transportListener } from '@idempotent-mq/core/adapter';
import type { BodyCodec } from './codec.js';
import { checkRocketMQListener } from './rocketmq-profile.js';

export interface RocketMQListenerOptions extends Omit<MessageListenerOptions, 'filter'> {
  /** A tag expression: `'PAY'`, `'PAY || REFUND'`. Exclusive with `sqlFilter`. @defaultValue `'*'` */
  readonly tag?: string;
  /**
   * A SQL92 filter on message properties, e.g. `"region = 'eu'"` (the broker must have
   * `enablePropertyFilter=true`). Exclusive with `tag`.
   */
  readonly sqlFilter?: string;
  /** How this listener's bodies are decoded. @defaultValue the transport's `codec` */
  readonly codec?: BodyCodec;
}

/** What `@RocketMQListener` records: the registry's fields plus the RocketMQ ones. */
export interface RocketMQListenerMetadata extends RocketMQListenerOptions {
  readonly transport: 'rocketmq';
  /** The tag expression, where the registry reads `filter`. */
  readonly filter: string;
  readonly [option: string]: unknown;
}

/**
 * Subscribes the class to a RocketMQ topic for a consumer group once a `ListenerRegistry` starts.
 *
 * @example
 * ```ts
 * @injectable()
 * @RocketMQListener({ topic: 'payments', consumerGroup: 'billing', tag: 'PAY' })
 * class PaymentConsumer {
 *   @Idempotent({ key: (m: TransportMessage) => m.keys })
 *   async onMessage(m: TransportMessage<Payment>, ctx: IdempotencyContext) {}
 * }
 * ```
 * @throws `InvalidOptionError` when the class is defined, naming the option: the listener options,
 * RocketMQ's topic and group name rules, `tag` or `sqlFilter` (not both), `codec`.
 */
export function RocketMQListener(options: RocketMQListenerOptions) {
  return decorateRocketMQ(options);
}

/** `@RocketMQListener` is core's transport listener decorator with RocketMQ's options and rules. */
const decorateRocketMQ = transportListener({
  decorator: '@RocketMQListener',
  transport: 'rocketmq',
  filterOption: 'tag',
  options: ['tag', 'sqlFilter', 'codec'],
  check: checkRocketMQListener,
});
