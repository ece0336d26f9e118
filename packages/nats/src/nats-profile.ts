/**
 * What NATS JetStream brings to the registry's settlement policy (the transport port's
 * `TransportProfile`), and its rules for listeners — subjects, durable names, subject filters — written
 * once for `@NatsListener`, the profile and the transport's own checks.
 */
import { enumOption, InvalidOptionError, type TransportProfile } from '@idempotent-mq/core/adapter';
import { BODY_CODECS } from './codec.js';

/**
 * Attempts before a failing message is dead-lettered when the listener does not say. JetStream has no
 * limit of its own here (the transport sets `max_deliver: -1`); 17 is what the RocketMQ and in-memory
 * transports give, so that a listener moved between brokers dead-letters after the same number.
 */
export const NATS_DEFAULT_MAX_ATTEMPTS = 17;

/**
 * The most attempts a listener may ask for: JetStream carries out any number (`max_deliver: -1`), so
 * this is the registry's own bound on `maxAttempts`.
 */
export const NATS_MAX_ATTEMPTS = 1000;

/**
 * The longest retry delay carried out. A `nak` delay is a Go duration (centuries), but a wait is
 * carried out in place with a timer, and a Node timer holds at most 2^31−1 ms (24.8 days).
 */
export const NATS_MAX_RETRY_DELAY_MS = 2 ** 31 - 1;

/** JetStream's longest stream and consumer name (`JSMaxNameLen`). */
const MAX_NAME_LENGTH = 255;

/**
 * Stream and durable names: the portable subset of what JetStream accepts (it forbids whitespace, `.`,
 * `*`, `>` and path separators; a group name is also a token of the dead-letter subject).
 */
const NAME = /^[A-Za-z0-9_-]+$/;

/** A subject token may hold any printable character but `.`; `*` and `>` only as whole tokens. */
function hasSpaceOrControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code <= 0x20 || code === 0x7f) return true;
  }
  return false;
}

const SUBJECT_RULE =
  "a NATS subject such as 'orders.created': tokens separated by '.', none empty, no spaces or control " +
  "characters (replace spaces with '-' or '_')";

/**
 * Checks a subject (or, with `wildcards`, a subject pattern: `*` one token, `>` the rest); throws
 * `InvalidOptionError` naming `option` and how to write it.
 */
export function checkSubject(value: unknown, option: string, wildcards: boolean): string {
  const rule = wildcards
    ? `${SUBJECT_RULE}; '*' and '>' only as whole tokens, '>' last`
    : `${SUBJECT_RULE}, and no wildcard ('*', '>'): a message goes to one subject`;
  if (typeof value !== 'string' || value === '' || hasSpaceOrControl(value)) {
    throw new InvalidOptionError(option, rule, value);
  }
  const tokens = value.split('.');
  tokens.forEach((token, i) => {
    const wildcard = token === '*' || token === '>';
    const bad =
      token === '' ||
      (!wildcard && /[*>]/.test(token)) ||
      (wildcard && !wildcards) ||
      (token === '>' && i !== tokens.length - 1);
    if (bad) throw new InvalidOptionError(option, rule, value);
  });
  return value;
}

/** Checks a stream or durable (consumer group) name. */
export function checkName(value: unknown, option: string, what: 'stream' | 'consumer group'): string {
  if (typeof value !== 'string' || !NAME.test(value) || value.length > MAX_NAME_LENGTH) {
    throw new InvalidOptionError(
      option,
      `a JetStream ${what} name of [A-Za-z0-9_-], 1 to ${MAX_NAME_LENGTH} characters (replace '.', ` +
        `spaces and other characters with '-' or '_'${what === 'consumer group' ? ': it is the durable consumer name' : ''})`,
      value,
    );
  }
  return value;
}

/**
 * Whether every subject that matches `inner` also matches `outer` (both may hold wildcards): a consumer
 * filter must lie within its topic, a topic within its stream's subjects.
 */
export function subjectWithin(inner: string, outer: string): boolean {
  const a = inner.split('.');
  const b = outer.split('.');
  for (let i = 0; i < b.length; i++) {
    if (b[i] === '>') return a.length > i;
    if (i >= a.length || a[i] === '>') return false;
    if (b[i] !== '*' && a[i] !== b[i]) return false;
  }
  return a.length === b.length;
}

/**
 * The consumer's filter subject: the listener's filter (a subject pattern within the topic), or the
 * topic itself when the filter is absent or `'*'` (core's "everything").
 */
export function filterSubjectOf(topic: string, filter: unknown): string {
  return filter === undefined || filter === '*' ? topic : (filter as string);
}

/**
 * Checks a listener's options against NATS's rules: the topic (a subject, wildcards allowed), the
 * consumer group (the durable name), the filter (a subject pattern within the topic) and the options
 * of `@NatsListener` (`filterSubject`, `stream`, `codec`, `deliverPolicy`). Throws `InvalidOptionError`
 * naming the option, prefixed by `where`. The registry runs it at start-up for every listener,
 * `@MessageListener` ones included; `@NatsListener` runs it when the class is defined.
 */
export function checkNatsListener(listener: Readonly<Record<string, unknown>>, where: string): void {
  if (typeof listener !== 'object' || listener === null) {
    throw new InvalidOptionError(where, 'an options object', listener);
  }
  const topic = checkSubject(listener.topic, `${where}.topic`, true);
  checkName(listener.consumerGroup, `${where}.consumerGroup`, 'consumer group');
  for (const option of ['filter', 'filterSubject'] as const) {
    const filter = listener[option];
    if (filter === undefined || (option === 'filter' && filter === '*')) continue;
    checkSubject(filter, `${where}.${option}`, true);
    if (!subjectWithin(filter as string, topic)) {
      throw new InvalidOptionError(
        `${where}.${option}`,
        `a subject pattern within the topic "${topic}" (a JetStream consumer sees only its stream's ` +
          `subjects), or '*' for all of the topic`,
        filter,
      );
    }
  }
  const { stream, codec, deliverPolicy } = listener;
  if (stream !== undefined) checkName(stream, `${where}.stream`, 'stream');
  enumOption(where, 'codec', codec, BODY_CODECS);
  if (deliverPolicy !== undefined && deliverPolicy !== 'all' && deliverPolicy !== 'new') {
    throw new InvalidOptionError(
      `${where}.deliverPolicy`,
      "'all' (a new group starts with the stream's first message) or 'new' (with the next one)",
      deliverPolicy,
    );
  }
}

/**
 * JetStream's profile. It redelivers only on the consumer's word (`nak` with a delay) or silence (past
 * `ack_wait`), never on a schedule of its own (the transport sets no consumer `backoff`), so it has no
 * redelivery horizon beyond the registry's own retries.
 */
export function natsProfile(): TransportProfile {
  return Object.freeze({
    broker: 'NATS JetStream',
    defaultMaxAttempts: NATS_DEFAULT_MAX_ATTEMPTS,
    maxAttempts: NATS_MAX_ATTEMPTS,
    maxRetryDelayMs: NATS_MAX_RETRY_DELAY_MS,
    redeliveryHorizonMs: 0,
    checkListener: checkNatsListener,
  });
}
