/**
 * `@MessageListener`: marks a class as a consumer of one topic for one consumer group. Metadata only;
 * the {@link ListenerRegistry} finds the class among the container's bindings and subscribes it.
 */
import { InvalidOptionError } from '../errors.js';
import { type MessageListenerMetadata, setMessageListener } from '../metadata.js';

/** The options of `@MessageListener`. */
export interface MessageListenerOptions {
  /** The topic to consume. */
  readonly topic: string;
  /** The consumer group: every group gets each message; within a group, one consumer handles it. */
  readonly consumerGroup: string;
  /**
   * A tag expression (`'PAY'`, `'PAY || REFUND'`) or `'*'` for all.
   * @defaultValue `'*'`
   */
  readonly filter?: string;
  /**
   * How many messages this listener handles at once.
   * @defaultValue 8
   */
  readonly concurrency?: number;
  /**
   * Delivery attempts before a failing message is dead-lettered (RocketMQ's default: 16 retries + the first).
   * @defaultValue 17
   */
  readonly maxAttempts?: number;
  /**
   * The `@Idempotent` method that handles each message; needed only when the class has several.
   * @defaultValue the class's only `@Idempotent` method
   */
  readonly method?: string;
}

export const DEFAULT_LISTENER = Object.freeze({ filter: '*', concurrency: 8, maxAttempts: 17 });

/** Checks listener options; `where` names the class in the error. Used by transport decorators too. */
export function validateListenerOptions(options: Partial<MessageListenerOptions>, where: string): void {
  const name = (o: string) => `${where}.${o}`;
  const text = (value: unknown, option: string, pattern: RegExp, accepted: string) => {
    if (typeof value !== 'string' || !pattern.test(value))
      throw new InvalidOptionError(name(option), accepted, value);
  };
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError(where, 'an options object', options);
  // RocketMQ's own rules for resource names: letters, digits, %, - and _, at most 127 characters.
  text(options.topic, 'topic', /^[%\w-]{1,127}$/, 'a topic name of [A-Za-z0-9%_-], 1 to 127 characters');
  text(
    options.consumerGroup,
    'consumerGroup',
    /^[%\w-]{1,127}$/,
    'a group name of [A-Za-z0-9%_-], 1 to 127 characters',
  );
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
