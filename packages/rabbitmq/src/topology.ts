/**
 * The RabbitMQ objects behind a subscription, named from its topic and consumer group, and declared the
 * same way by the transport and the publisher (a second declaration with other arguments would fail):
 *
 * - exchange `<topic>`: a durable **topic** exchange; publishers send to it with the message's routing key;
 * - queue `<topic>.<group>`: the group's durable queue, bound to the exchange with the listener's binding
 *   keys (`#` for the filter `'*'`); its consumers share its messages;
 * - queues `<topic>.<group>.retry.<ms>`: one per step of the retry ladder, declared when first used, with
 *   `x-message-ttl: <ms>` and a dead-letter route back to the group's queue (the default exchange, routing
 *   key `<topic>.<group>`): a retry is a copy parked there until its time is up;
 * - queue `<topic>.<group>.dlq`: the group's dead letters, with the reason in a header.
 *
 * Topic and group names cannot contain `.` (`rabbitmq-profile.ts`), so these names never collide.
 */
import type { Channel } from 'amqplib';

/** Delays a retry can take, in ms: a delay is rounded **up** to the next step, so it never comes back early. */
export const DEFAULT_RETRY_LADDER_MS: readonly number[] = Object.freeze([
  50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10_000, 15_000, 20_000, 30_000, 45_000,
  60_000, 90_000, 120_000, 180_000, 300_000, 450_000, 600_000, 900_000, 1_200_000, 1_800_000, 2_700_000,
  3_600_000, 5_400_000, 7_200_000, 10_800_000, 14_400_000, 21_600_000, 43_200_000, 86_400_000,
]);

/** Headers of our own. None starts with `x-`: RabbitMQ reserves those and rewrites some of them. */
export const HEADERS = Object.freeze({
  /** The business keys, a JSON array of strings (the `messageId` property holds a single key too). */
  keys: 'idempotent-mq-keys',
  /** The delivery attempt of this copy (absent: 1). Incremented by retries that spend an attempt only. */
  attempt: 'idempotent-mq-attempt',
  /** The routing key the message was first published with (its `tag`), kept across retries. */
  routingKey: 'idempotent-mq-routing-key',
  /** When the publisher created it, epoch ms (the AMQP `timestamp` property holds seconds). */
  bornAt: 'idempotent-mq-born-at',
  /** Why it was last sent back (a retry, a wait, a redelivery counted, a hand-over). */
  retryReason: 'idempotent-mq-retry-reason',
  /** Why it was dead-lettered. */
  deadLetterReason: 'idempotent-mq-dead-letter-reason',
  /** When it was dead-lettered, epoch ms. */
  deadLetteredAt: 'idempotent-mq-dead-lettered-at',
  /** Correlates a returned (unroutable) publish with its confirm. */
  publishId: 'idempotent-mq-publish-id',
});

/** The names of one consumer group's objects. */
export interface RabbitMQTopology {
  /** The topic exchange: the topic's name. */
  readonly exchange: string;
  /** The group's queue: `<topic>.<group>`. */
  readonly queue: string;
  /** The group's dead-letter queue: `<topic>.<group>.dlq`. */
  readonly deadLetterQueue: string;
  /** Every retry queue the ladder can declare: `<topic>.<group>.retry.<ms>`. */
  readonly retryQueues: readonly string[];
  /** The retry queue of one ladder step. */
  retryQueue(stepMs: number): string;
}

/** The names of the objects behind `consumerGroup` on `topic` (see the file's opening comment). */
export function topologyOf(
  topic: string,
  consumerGroup: string,
  retryLadderMs: readonly number[] = DEFAULT_RETRY_LADDER_MS,
): RabbitMQTopology {
  const queue = `${topic}.${consumerGroup}`;
  const retryQueue = (stepMs: number) => `${queue}.retry.${stepMs}`;
  return {
    exchange: topic,
    queue,
    deadLetterQueue: `${queue}.dlq`,
    retryQueues: retryLadderMs.map(retryQueue),
    retryQueue,
  };
}

/**
 * The ladder step a retry after `delayMs` takes: the smallest step at least `delayMs` (the top step for a
 * longer delay), or 0, meaning straight back to the group's queue, for a delay of 0.
 */
export function retryStep(retryLadderMs: readonly number[], delayMs: number): number {
  if (!(delayMs > 0)) return 0;
  for (const step of retryLadderMs) if (step >= delayMs) return step;
  return retryLadderMs[retryLadderMs.length - 1] as number;
}

/** The filter `'*'` means every message: RabbitMQ's `#`. Otherwise binding keys joined by `||`. */
export function bindingKeysOf(filter: string | undefined): string[] {
  const text = (filter ?? '*').trim();
  if (text === '*') return ['#'];
  return [...new Set(text.split('||').map((key) => key.trim()))];
}

/**
 * Declares the exchange, the group's queue with its bindings, and its dead-letter queue. Idempotent:
 * RabbitMQ accepts a declaration equal to what exists.
 */
export async function declareConsumerGroup(
  channel: Channel,
  group: { readonly topic: string; readonly consumerGroup: string; readonly filter?: string },
): Promise<RabbitMQTopology> {
  const names = topologyOf(group.topic, group.consumerGroup);
  await channel.assertExchange(names.exchange, 'topic', { durable: true });
  await channel.assertQueue(names.queue, { durable: true });
  for (const key of bindingKeysOf(group.filter)) await channel.bindQueue(names.queue, names.exchange, key);
  await channel.assertQueue(names.deadLetterQueue, { durable: true });
  return names;
}

/** Declares the retry queue of one step: its messages go back to the group's queue after `stepMs`. */
export async function declareRetryQueue(
  channel: Channel,
  names: RabbitMQTopology,
  stepMs: number,
): Promise<string> {
  const retryQueue = names.retryQueue(stepMs);
  await channel.assertQueue(retryQueue, {
    durable: true,
    messageTtl: stepMs,
    deadLetterExchange: '',
    deadLetterRoutingKey: names.queue,
  });
  return retryQueue;
}
