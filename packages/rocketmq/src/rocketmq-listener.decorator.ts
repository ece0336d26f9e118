/**
 * `@RocketMQListener`: `@MessageListener` with RocketMQ's own options. Metadata only: it records the
 * options through core's `setMessageListener`, where the listener registry finds them; the registry
 * hands them back to the transport as `SubscriptionSpec.listener`.
 */
import {
  InvalidOptionError,
  type MessageListenerOptions,
  setMessageListener,
  validateListenerOptions,
} from '@idempotent-mq/core';
import { BODY_CODECS, type BodyCodec } from './codec.js';

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
 * @throws `InvalidOptionError` when the class is defined, naming the option.
 */
export function RocketMQListener(options: RocketMQListenerOptions) {
  return (target: abstract new (...args: never[]) => unknown): void => {
    const where = `@RocketMQListener(${target.name})`;
    validateListenerOptions({ ...options, filter: options?.tag }, where);
    if (options.tag !== undefined && options.sqlFilter !== undefined) {
      throw new InvalidOptionError(
        `${where}.sqlFilter`,
        'either tag or sqlFilter, not both',
        options.sqlFilter,
      );
    }
    if (
      options.sqlFilter !== undefined &&
      (typeof options.sqlFilter !== 'string' || options.sqlFilter.trim() === '')
    ) {
      throw new InvalidOptionError(`${where}.sqlFilter`, 'a non-empty SQL92 expression', options.sqlFilter);
    }
    if (options.codec !== undefined && !BODY_CODECS.includes(options.codec)) {
      throw new InvalidOptionError(`${where}.codec`, "'json' | 'utf8' | 'buffer'", options.codec);
    }
    const metadata: RocketMQListenerMetadata = {
      ...options,
      transport: 'rocketmq',
      filter: options.tag ?? '*',
    };
    setMessageListener(target, metadata);
  };
}
