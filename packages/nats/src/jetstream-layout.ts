/**
 * The streams and consumers a subscription needs, found or created once at `subscribe()`:
 *
 * - the topic's stream: the one named (listener, then transport option), else the stream that captures
 *   the topic, else a new `IMQ_<topic>` (file storage, limits retention) with the topic as its subject;
 * - the group's durable pull consumer on it: durable name = consumer group, explicit acks, the filter
 *   subject, `ack_wait`, `max_deliver: -1` (the registry decides dead letters), no `backoff`;
 * - the dead-letter stream, with subjects `<prefix>.>`.
 *
 * An existing stream is never changed; an existing durable has its `ack_wait`, `max_deliver` and
 * `max_ack_pending` brought to what the transport needs. What contradicts the subscription (a stream
 * that does not capture the topic, a durable with another filter) fails with the fix, changing nothing.
 */
import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerInfo,
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamInfo,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { NatsLayoutConflictError } from './errors.js';
import { subjectWithin } from './nats-profile.js';
import type { NatsLogger } from './options.js';

const STREAM_NOT_FOUND = 10059;
const CONSUMER_NOT_FOUND = 10014;

/** What a subscription asks of its durable. */
export interface ConsumerPlan {
  readonly stream: string;
  readonly durable: string;
  readonly filterSubject: string;
  readonly ackWaitMs: number;
  readonly maxAckPending: number;
  readonly deliverPolicy: 'all' | 'new';
}

/** The name of the stream `IMQ_<topic>` created for a topic no stream captures. */
export function derivedStreamName(topic: string): string {
  return `IMQ_${topic.replace(/\./g, '_').replace(/\*/g, 'STAR').replace(/>/g, 'ALL')}`.slice(0, 255);
}

/** Whether one of a stream's subjects captures every subject of `topic`. */
export function captures(info: StreamInfo, topic: string): boolean {
  return (info.config.subjects ?? []).some((s) => subjectWithin(topic, s));
}

/** The stream a subscription on `topic` reads: found, named, or created. */
export async function ensureStream(
  jsm: JetStreamManager,
  topic: string,
  named: string | undefined,
  logger: NatsLogger,
): Promise<string> {
  if (named !== undefined) {
    const info = await streamInfo(jsm, named);
    if (info) return checkCaptures(info, topic);
    return createStream(jsm, named, topic, logger);
  }
  let overlapping: string | undefined;
  for await (const name of jsm.streams.names(topic)) {
    const info = await streamInfo(jsm, name);
    if (info && captures(info, topic)) return name;
    overlapping ??= name;
  }
  if (overlapping !== undefined) {
    const info = await streamInfo(jsm, overlapping);
    if (info) checkCaptures(info, topic);
  }
  return createStream(jsm, derivedStreamName(topic), topic, logger);
}

/** The dead-letter stream, created with subjects `<prefix>.>` if absent; it must capture `subject`. */
export async function ensureDeadLetterStream(
  jsm: JetStreamManager,
  name: string,
  prefix: string,
  subject: string,
  logger: NatsLogger,
): Promise<void> {
  const info = await streamInfo(jsm, name);
  if (info) {
    checkCaptures(info, subject);
    return;
  }
  await createStream(jsm, name, `${prefix}.>`, logger);
}

/** The group's durable pull consumer, created or brought to the plan. */
export async function ensureConsumer(
  jsm: JetStreamManager,
  plan: ConsumerPlan,
  logger: NatsLogger,
): Promise<ConsumerInfo> {
  const wanted: Partial<ConsumerConfig> = {
    durable_name: plan.durable,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(plan.ackWaitMs),
    max_deliver: -1,
    max_ack_pending: plan.maxAckPending,
    filter_subject: plan.filterSubject,
    deliver_policy: plan.deliverPolicy === 'new' ? DeliverPolicy.New : DeliverPolicy.All,
  };
  let existing = await consumerInfo(jsm, plan.stream, plan.durable);
  if (!existing) {
    try {
      return await jsm.consumers.add(plan.stream, wanted);
    } catch (error) {
      // Another consumer of the group may have created it at the same moment: check what it made.
      existing = await consumerInfo(jsm, plan.stream, plan.durable);
      if (!existing) throw error;
    }
  }
  const config = existing.config;
  const where = `durable "${plan.durable}" on stream "${plan.stream}"`;
  if (config.deliver_subject) {
    throw new NatsLayoutConflictError(
      plan.stream,
      plan.durable,
      `The ${where} is a push consumer (deliver_subject "${config.deliver_subject}"); this transport ` +
        'pulls. Delete it (nats consumer rm) or use another consumerGroup.',
    );
  }
  if (config.ack_policy !== AckPolicy.Explicit) {
    throw new NatsLayoutConflictError(
      plan.stream,
      plan.durable,
      `The ${where} has ack_policy "${config.ack_policy}"; settlements need "explicit". Delete it or use ` +
        'another consumerGroup.',
    );
  }
  const filters = config.filter_subjects ?? (config.filter_subject ? [config.filter_subject] : []);
  if (filters.length !== 1 || filters[0] !== plan.filterSubject) {
    throw new NatsLayoutConflictError(
      plan.stream,
      plan.durable,
      `The ${where} already filters ${filters.length ? filters.map((f) => `"${f}"`).join(', ') : 'every subject'}, ` +
        `not "${plan.filterSubject}": a JetStream durable is one group's cursor over one filter. Give this ` +
        'listener another consumerGroup (or one listener a wildcard topic), or delete the durable to start over.',
    );
  }
  if (config.backoff?.length) {
    logger.warn(
      `NATS ${where} has a backoff (${config.backoff.length} steps): JetStream redelivers unanswered ` +
        'messages on that schedule as well as after ack_wait; remove it to leave redeliveries to the registry.',
    );
  }
  const changed =
    config.ack_wait !== wanted.ack_wait ||
    config.max_deliver !== wanted.max_deliver ||
    config.max_ack_pending !== wanted.max_ack_pending;
  if (!changed) return existing;
  logger.info(
    `NATS ${where}: setting ack_wait ${plan.ackWaitMs} ms, max_deliver -1, max_ack_pending ${plan.maxAckPending} ` +
      `(was ${Number(config.ack_wait) / 1e6} ms, ${config.max_deliver}, ${config.max_ack_pending})`,
  );
  try {
    return await jsm.consumers.update(plan.stream, plan.durable, {
      ack_wait: wanted.ack_wait,
      max_deliver: -1,
      max_ack_pending: plan.maxAckPending,
    });
  } catch (error) {
    throw new NatsLayoutConflictError(
      plan.stream,
      plan.durable,
      `The ${where} has max_deliver ${config.max_deliver} and ack_wait ${Number(config.ack_wait) / 1e6} ms, and ` +
        `the server refused to change them (${error instanceof Error ? error.message : String(error)}): past ` +
        'max_deliver JetStream stops delivering a message without telling anyone. Delete the durable so that ' +
        'it is created anew, or use another consumerGroup.',
    );
  }
}

function checkCaptures(info: StreamInfo, subject: string): string {
  if (captures(info, subject)) return info.config.name;
  const subjects = (info.config.subjects ?? []).map((s) => `"${s}"`).join(', ') || 'none';
  throw new NatsLayoutConflictError(
    info.config.name,
    undefined,
    `Stream "${info.config.name}" captures ${subjects}, not all of "${subject}". Add "${subject}" to its ` +
      'subjects (nats stream edit), or name the stream that captures it with the "stream" option.',
  );
}

async function createStream(
  jsm: JetStreamManager,
  name: string,
  subject: string,
  logger: NatsLogger,
): Promise<string> {
  try {
    await jsm.streams.add({
      name,
      subjects: [subject],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
    });
    logger.info(`NATS: created stream "${name}" for "${subject}"`);
    return name;
  } catch (error) {
    // Created meanwhile by another process (with another configuration, JetStream refuses a second add).
    const info = await streamInfo(jsm, name);
    if (info) return checkCaptures(info, subject);
    if (/overlap/i.test(error instanceof Error ? error.message : '')) {
      throw new NatsLayoutConflictError(
        name,
        undefined,
        `Cannot create stream "${name}" for "${subject}": its subjects overlap an existing stream's without ` +
          'it capturing all of them. Name the stream to read with the "stream" option, or widen that ' +
          "stream's subjects to the whole topic.",
      );
    }
    throw error;
  }
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (error) {
    if (error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND) return undefined;
    throw error;
  }
}

async function consumerInfo(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
): Promise<ConsumerInfo | undefined> {
  try {
    return await jsm.consumers.info(stream, durable);
  } catch (error) {
    if (error instanceof JetStreamApiError && error.code === CONSUMER_NOT_FOUND) return undefined;
    throw error;
  }
}
