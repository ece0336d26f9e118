/**
 * What RabbitMQ brings to the registry's settlement policy (the transport port's `TransportProfile`):
 * attempt limits, the longest retry delay, the redelivery horizon, and the rules for listeners, written
 * once for `@RabbitMQListener`, the profile and the transport's own checks at subscribe time.
 */
import {
  enumOption,
  InvalidOptionError,
  integerOption,
  MAX_TIMER_MS,
  type TransportProfile,
} from '@idempotent-mq/core/adapter';
import { BODY_CODECS } from './codec.js';

/**
 * Attempts before a failing message is dead-lettered, when the listener does not say: 17, as on
 * RocketMQ and the in-memory broker, so that a listener moved between brokers keeps its retry budget.
 */
export const RABBITMQ_DEFAULT_MAX_ATTEMPTS = 17;

/**
 * The most attempts a listener may ask for. RabbitMQ counts nothing itself (the transport counts, in a
 * header), so this is only the registry's own bound on `maxAttempts`.
 */
export const RABBITMQ_MAX_ATTEMPTS = 1000;

/** RabbitMQ's limit on exchange and queue names, in bytes of UTF-8. */
const MAX_NAME_BYTES = 255;
/** The longest suffix of a derived queue name: `.retry.<ms>`, a ladder step being at most 2^32 − 1 ms. */
const LONGEST_SUFFIX_BYTES = '.retry.4294967295'.length;
/** `<topic>.<group>` may take this many bytes, so that every queue derived from it fits. */
export const MAX_TOPIC_AND_GROUP_BYTES = MAX_NAME_BYTES - LONGEST_SUFFIX_BYTES;

/** Letters and digits of any script, `_` and `-`: no `.`, which separates the derived names. */
const NAME = /^[\p{L}\p{N}_-]+$/u;

/** The most a prefetch count can be (AMQP's basic.qos prefetch-count is a 16-bit field). */
export const MAX_PREFETCH = 65_535;

/**
 * Checks a listener's options against RabbitMQ's rules: topic and group names, the filter (binding
 * keys), and the options of `@RabbitMQListener`. Throws `InvalidOptionError` naming the option, prefixed
 * by `where`. `@RabbitMQListener` runs it when the class is defined; the profile, for every listener.
 */
export function checkRabbitMQListener(listener: Readonly<Record<string, unknown>>, where: string): void {
  if (typeof listener !== 'object' || listener === null) {
    throw new InvalidOptionError(where, 'an options object', listener);
  }
  checkRabbitMQNames(listener, where);
  checkRabbitMQOptions(listener, where);
}

/** The topic and consumer group names, and the names derived from them, as RabbitMQ takes them. */
export function checkRabbitMQNames(
  names: { readonly topic?: unknown; readonly consumerGroup?: unknown },
  where: string,
): void {
  checkName(names.topic, `${where}.topic`, 'topic (the exchange name)');
  checkName(names.consumerGroup, `${where}.consumerGroup`, 'consumer group');
  const bytes = Buffer.byteLength(`${names.topic}.${names.consumerGroup}`, 'utf8');
  if (bytes > MAX_TOPIC_AND_GROUP_BYTES) {
    throw new InvalidOptionError(
      `${where}.consumerGroup`,
      `a topic and group of at most ${MAX_TOPIC_AND_GROUP_BYTES} bytes of UTF-8 together ('<topic>.<group>' ` +
        `is ${bytes}): the longest queue derived from them, '<topic>.<group>.retry.<ms>', must fit ` +
        `RabbitMQ's ${MAX_NAME_BYTES}-byte limit; shorten either`,
      names.consumerGroup,
    );
  }
}

/** A topic or group name: not `amq.*` (reserved), letters, digits, `_`, `-`. Throws naming `option`. */
export function checkName(value: unknown, option: string, what = 'topic (the exchange name)'): void {
  if (typeof value === 'string' && value.startsWith('amq.')) {
    throw new InvalidOptionError(
      option,
      `a ${what} not starting with 'amq.' (RabbitMQ reserves those names for its own exchanges and ` +
        `queues; rename it, e.g. '${value.slice(4).replace(/\./g, '-') || 'payments'}')`,
      value,
    );
  }
  if (typeof value !== 'string' || !NAME.test(value) || Buffer.byteLength(value, 'utf8') > MAX_NAME_BYTES) {
    throw new InvalidOptionError(
      option,
      `a ${what} of letters, digits, '_' and '-', at most ${MAX_NAME_BYTES} bytes (no '.': it separates the ` +
        "queue names derived from it, '<topic>.<group>.retry.<ms>' and '<topic>.<group>.dlq'; use '-' or '_')",
      value,
    );
  }
}

/**
 * A filter: `'*'` (every message), or routing-key patterns joined by `||`, each bound to the group's
 * queue: `'PAY'`, `'PAY || REFUND'`, `'eu.*.PAY'`, `'audit.#'` (RabbitMQ's topic patterns, where `*` is
 * one word and `#` any number of words).
 */
export function checkFilter(filter: unknown, option: string): void {
  const accepted =
    "'*' (every message) or routing-key patterns joined by '||', such as 'PAY || REFUND' or 'eu.*.PAY'";
  if (typeof filter !== 'string' || filter.trim() === '') {
    throw new InvalidOptionError(option, accepted, filter);
  }
  if (filter.trim() === '*') return;
  for (const key of filter.split('||').map((k) => k.trim())) {
    if (key === '' || /\s|\|/.test(key) || Buffer.byteLength(key, 'utf8') > MAX_NAME_BYTES) {
      throw new InvalidOptionError(
        option,
        `${accepted}; each pattern non-empty, without spaces or '|', at most ${MAX_NAME_BYTES} bytes`,
        filter,
      );
    }
  }
}

/** `@RabbitMQListener`'s own options (and the filter of a `@MessageListener`), checked alone. */
export function checkRabbitMQOptions(options: Readonly<Record<string, unknown>>, where: string): void {
  const { filter, bindingKey, codec, handOverAfterMs, sqlFilter } = options;
  if (filter !== undefined) checkFilter(filter, `${where}.filter`);
  if (bindingKey !== undefined) checkFilter(bindingKey, `${where}.bindingKey`);
  if (sqlFilter !== undefined) {
    throw new InvalidOptionError(
      `${where}.sqlFilter`,
      "no SQL filter (RabbitMQ has none): filter on the routing key with binding keys, e.g. 'PAY || REFUND'",
      sqlFilter,
    );
  }
  enumOption(where, 'codec', codec, BODY_CODECS);
  if (handOverAfterMs !== undefined) {
    integerOption(where, 'handOverAfterMs', handOverAfterMs, { min: 100, max: MAX_TIMER_MS });
  }
}

/** What the profile needs to know of the transport's settings. */
export interface ProfileSettings {
  /** The server's `consumer_timeout` as the transport was told it; `false` when the server has none. */
  readonly consumerTimeoutMs: number | false;
  /** The longest a settlement's publish may take, all its tries included. */
  readonly settleBudgetMs: number;
  /** The retry ladder's steps, ascending. */
  readonly retryLadderMs: readonly number[];
}

/**
 * A hand-over must be confirmed before RabbitMQ's `consumer_timeout` closes the channel: `handOverAfterMs`
 * plus the time a settlement may take must stay under it. Throws `InvalidOptionError` naming `option`.
 */
export function checkHandOverFits(value: number, option: string, settings: ProfileSettings): void {
  const { consumerTimeoutMs, settleBudgetMs } = settings;
  if (consumerTimeoutMs === false || value + settleBudgetMs < consumerTimeoutMs) return;
  throw new InvalidOptionError(
    option,
    `less than ${consumerTimeoutMs - settleBudgetMs} ms: RabbitMQ closes the channel of a delivery left ` +
      `unacknowledged for consumer_timeout (consumerTimeoutMs: ${consumerTimeoutMs} ms), and a message ` +
      `handed back must be confirmed before (a settlement may take ${settleBudgetMs} ms: confirmTimeoutMs × ` +
      'settleAttempts, with backoff). Lower it, or raise consumerTimeoutMs to match the server',
    value,
  );
}

/** RabbitMQ's profile for a transport with these settings. */
export function rabbitMQProfile(settings: ProfileSettings): TransportProfile {
  return Object.freeze({
    broker: 'RabbitMQ',
    defaultMaxAttempts: RABBITMQ_DEFAULT_MAX_ATTEMPTS,
    maxAttempts: RABBITMQ_MAX_ATTEMPTS,
    // The top step of the retry ladder: a longer delay would be cut to it anyway.
    maxRetryDelayMs: settings.retryLadderMs[settings.retryLadderMs.length - 1] as number,
    // RabbitMQ redelivers only on the consumer's word (our retries, which the registry's policy sizes)
    // or when a consumer's channel dies: it keeps no retry schedule of its own to outlive.
    redeliveryHorizonMs: 0,
    checkListener(listener: Readonly<Record<string, unknown>>, where: string): void {
      checkRabbitMQListener(listener, where);
      if (typeof listener.handOverAfterMs === 'number') {
        checkHandOverFits(listener.handOverAfterMs, `${where}.handOverAfterMs`, settings);
      }
    },
  });
}
