/**
 * `@MessageListener`: marks a class as a consumer of one topic for one consumer group. Metadata only;
 * the {@link ListenerRegistry} finds the class among the container's bindings and subscribes it.
 */
import { InvalidOptionError } from '../errors.js';
import { type MessageListenerMetadata, setMessageListener } from '../metadata.js';

/** The options of `@MessageListener`. */
export interface MessageListenerOptions {
  /** The topic to consume (a queue, a subject: the transport checks its broker's naming rules). */
  readonly topic: string;
  /** The consumer group: every group gets each message; within a group, one consumer handles it. */
  readonly consumerGroup: string;
  /**
   * A filter in the broker's syntax (a tag expression such as `'PAY || REFUND'`), or `'*'` for all.
   * @defaultValue `'*'`
   */
  readonly filter?: string;
  /**
   * How many messages this listener handles at once.
   * @defaultValue 8
   */
  readonly concurrency?: number;
  /**
   * Delivery attempts before a failing message is dead-lettered. Waits for another copy's claim never
   * count. At most the transport's `profile.maxAttempts`.
   * @defaultValue the transport's `profile.defaultMaxAttempts`
   */
  readonly maxAttempts?: number;
  /**
   * The `@Idempotent` method that handles each message; needed only when the class has several.
   * @defaultValue the class's only `@Idempotent` method
   */
  readonly method?: string;
}

/** Listener defaults that belong to no broker; `maxAttempts` comes from the transport's profile. */
export const DEFAULT_LISTENER = Object.freeze({ filter: '*', concurrency: 8 });

/**
 * Checks the broker-neutral listener options; `where` names the class in the error. Used by transport
 * decorators too; the broker's own rules (names, its options) are its transport profile's
 * `checkListener`, which the registry runs at start-up.
 */
export function validateListenerOptions(options: Partial<MessageListenerOptions>, where: string): void {
  const name = (o: string) => `${where}.${o}`;
  const text = (value: unknown, option: string, pattern: RegExp, accepted: string) => {
    if (typeof value !== 'string' || !pattern.test(value))
      throw new InvalidOptionError(name(option), accepted, value);
  };
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError(where, 'an options object', options);
  text(options.topic, 'topic', /\S/, 'a non-empty topic name');
  text(options.consumerGroup, 'consumerGroup', /\S/, 'a non-empty consumer group name');
  if (options.filter !== undefined) text(options.filter, 'filter', /\S/, 'a non-empty filter expression');
  if (options.method !== undefined) text(options.method, 'method', /^\S+$/, 'a method name');
  for (const [option, max] of [
    ['concurrency', 1024],
    ['maxAttempts', 1000],
  ] as const) {
    const value = options[option];
    if (value !== undefined && (!Number.isInteger(value) || value < 1 || value > max)) {
      throw new InvalidOptionError(name(option), `an integer from 1 to ${max}`, value);
    }
  }
}

/**
 * Subscribes the class to `topic` for `consumerGroup` once a {@link ListenerRegistry} starts.
 *
 * @example
 * ```ts
 * @injectable()
 * @MessageListener({ topic: 'payments', consumerGroup: 'billing', filter: 'PAY' })
 * class PaymentConsumer {
 *   @Idempotent({ key: (m: TransportMessage) => m.keys })
 *   async onMessage(m: TransportMessage, ctx: IdempotencyContext) {}
 * }
 * ```
 * @throws {@link InvalidOptionError} when the class is defined, naming the option.
 */
export function MessageListener(options: MessageListenerOptions): ClassDecorator {
  return (target) => {
    validateListenerOptions(options, `@MessageListener(${target.name})`);
    setMessageListener(target as never, { ...options } satisfies MessageListenerMetadata);
  };
}
