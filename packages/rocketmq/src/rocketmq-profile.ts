/**
 * What RocketMQ brings to the registry's settlement policy (the transport port's `TransportProfile`):
 * its attempt limits, the longest delay it can carry out, how long it keeps redelivering, and its rules
 * for listeners, written once for `@RocketMQListener`, the profile and the transport's own checks.
 */
import { enumOption, InvalidOptionError, type TransportProfile } from '@idempotent-mq/core/adapter';
import { BODY_CODECS } from './codec.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** RocketMQ's default attempts: a subscription group's `retryMaxTimes` (16) plus the first delivery. */
export const ROCKETMQ_DEFAULT_MAX_ATTEMPTS = 17;

/**
 * The longest invisible duration a RocketMQ 5 proxy accepts: its `maxInvisibleTimeMills` (12 h by
 * default, `ProxyConfig`); a longer ChangeInvisibleDuration is refused with ILLEGAL_INVISIBLE_TIME.
 */
export const MAX_INVISIBLE_DURATION_MS = 12 * HOUR;

/** RocketMQ's default delays before retries 1 to 16 (message delay levels 3 to 18). */
const DEFAULT_RETRY_DELAYS_MS = [
  10 * SECOND,
  30 * SECOND,
  ...[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30].map((m) => m * MINUTE),
  1 * HOUR,
  2 * HOUR,
];

/**
 * How long RocketMQ keeps redelivering a message that keeps failing on its default schedule (10s 30s
 * 1m 2m … 10m 20m 30m 1h 2h): about 4 h 46 min. A completed token must be kept longer than this.
 */
export const REDELIVERY_HORIZON_MS = DEFAULT_RETRY_DELAYS_MS.reduce((sum, ms) => sum + ms, 0);

/** RocketMQ's rule for topic and group names (its `Validators`): letters, digits, `%`, `-`, `_`. */
const RESOURCE_NAME = /^[%\w-]{1,127}$/;

/**
 * Checks a listener's options against RocketMQ's rules: the topic and group names, and the options of
 * `@RocketMQListener` (`tag` or `sqlFilter`, `codec`). Throws `InvalidOptionError` naming the option,
 * prefixed by `where`. The registry runs it at start-up for every listener, `@MessageListener` ones
 * included; `@RocketMQListener` runs it when the class is defined.
 */
export function checkRocketMQListener(listener: Readonly<Record<string, unknown>>, where: string): void {
  if (typeof listener !== 'object' || listener === null) {
    throw new InvalidOptionError(where, 'an options object', listener);
  }
  checkRocketMQNames(listener, where);
  checkRocketMQOptions(listener, where);
}

/** The topic and consumer group names, as the proxy validates them. */
export function checkRocketMQNames(
  names: { readonly topic?: unknown; readonly consumerGroup?: unknown },
  where: string,
): void {
  for (const [option, what] of [
    ['topic', 'topic'],
    ['consumerGroup', 'group'],
  ] as const) {
    const value = names[option];
    if (typeof value !== 'string' || !RESOURCE_NAME.test(value)) {
      throw new InvalidOptionError(
        `${where}.${option}`,
        `a RocketMQ ${what} name of [A-Za-z0-9%_-], 1 to 127 characters (replace other characters, ` +
          `such as '.', with '-' or '_')`,
        value,
      );
    }
  }
}

/** `@RocketMQListener`'s own options: a tag expression or a SQL92 filter (not both), and a codec. */
export function checkRocketMQOptions(options: Readonly<Record<string, unknown>>, where: string): void {
  const { tag, sqlFilter, codec } = options;
  if (tag !== undefined && (typeof tag !== 'string' || tag.trim() === '')) {
    throw new InvalidOptionError(`${where}.tag`, "a tag expression such as 'PAY || REFUND', or '*'", tag);
  }
  if (sqlFilter !== undefined && (typeof sqlFilter !== 'string' || sqlFilter.trim() === '')) {
    throw new InvalidOptionError(
      `${where}.sqlFilter`,
      'a non-empty SQL92 expression such as "region = \'eu\'"',
      sqlFilter,
    );
  }
  if (tag !== undefined && sqlFilter !== undefined) {
    throw new InvalidOptionError(
      `${where}.sqlFilter`,
      'either tag or sqlFilter, not both (a subscription has one filter: keep one of them)',
      sqlFilter,
    );
  }
  enumOption(where, 'codec', codec, BODY_CODECS);
}

/**
 * RocketMQ's profile for a transport whose subscription groups dead-letter after `maxDeliveryAttempts`
 * deliveries. The default attempts follow the group's limit when it is below RocketMQ's default, so
 * that a listener without `maxAttempts` never asks for more than the broker carries out.
 */
export function rocketMQProfile(maxDeliveryAttempts: number): TransportProfile {
  return Object.freeze({
    broker: 'RocketMQ',
    defaultMaxAttempts: Math.min(ROCKETMQ_DEFAULT_MAX_ATTEMPTS, maxDeliveryAttempts),
    maxAttempts: maxDeliveryAttempts,
    maxRetryDelayMs: MAX_INVISIBLE_DURATION_MS,
    redeliveryHorizonMs: REDELIVERY_HORIZON_MS,
    checkListener: checkRocketMQListener,
  });
}
