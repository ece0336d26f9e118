/**
 * `@MessageListener`: marks a class as a consumer of one topic for one consumer group. Metadata only;
 * the {@link ListenerRegistry} finds the class among the container's bindings and subscribes it.
 */
import { InvalidOptionError } from '../errors.js';
import { setMessageListener } from '../metadata.js';
import { checkOptionsObject } from '../option-checks.js';
import type { MessageListenerMetadata, MessageListenerOptions } from './listener-options.js';

export type { MessageListenerOptions } from './listener-options.js';

/** Every `@MessageListener` option's name, so that a misspelt one (`concurency`) is refused with the nearest. */
const LISTENER_OPTIONS = ['topic', 'consumerGroup', 'filter', 'concurrency', 'maxAttempts', 'method'];

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
  // The group is part of the default scope, which never holds U+0000 (see tokenId).
  if (options.consumerGroup?.includes('\u0000')) {
    throw new InvalidOptionError(
      name('consumerGroup'),
      'a consumer group name without U+0000',
      options.consumerGroup,
    );
  }
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
    const where = `@MessageListener(${target.name})`;
    checkOptionsObject(options, LISTENER_OPTIONS, where);
    validateListenerOptions(options, where);
    setMessageListener(target as never, { ...options } satisfies MessageListenerMetadata);
  };
}
