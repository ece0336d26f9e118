/**
 * Every span, attribute and metric name this package emits, in one place: the messaging semantic
 * conventions' own, and ours under `idempotent_mq.`.
 */

/** The attributes of the messaging semantic conventions this package sets. */
export const SEMCONV = {
  MESSAGING_SYSTEM: 'messaging.system',
  MESSAGING_OPERATION_TYPE: 'messaging.operation.type',
  MESSAGING_OPERATION_NAME: 'messaging.operation.name',
  MESSAGING_DESTINATION_NAME: 'messaging.destination.name',
  MESSAGING_CONSUMER_GROUP_NAME: 'messaging.consumer.group.name',
  MESSAGING_MESSAGE_ID: 'messaging.message.id',
  MESSAGING_BATCH_MESSAGE_COUNT: 'messaging.batch.message_count',
  ERROR_TYPE: 'error.type',
} as const;

/** Our own attributes, on spans and (outcome, tier, scope, operation) on metrics. */
export const ATTR = {
  /** `processed`, `takeover`, `duplicate`, `inFlight`, `conflict` or `failed`. */
  OUTCOME: 'idempotent_mq.outcome',
  /** Who recognised a duplicate: `cache` or `store`. */
  TIER: 'idempotent_mq.tier',
  /** The handler's scope (`v1:<consumer group>:<Class>.<method>` by default). */
  SCOPE: 'idempotent_mq.scope',
  /** `Class.method` of the handler. */
  HANDLER: 'idempotent_mq.handler',
  /** The delivery attempt, 1 for the first. */
  ATTEMPT: 'idempotent_mq.attempt',
  /** The fencing token of the claim (this call's, or the record's that decided it). */
  FENCE: 'idempotent_mq.fence',
  /** The cache failed or timed out on this message and was skipped. Set when true. */
  CACHE_BYPASSED: 'idempotent_mq.cache_bypassed',
  /** Transactions rerun at once after a transient failure (a deadlock). Set when above 0. */
  TRANSIENT_RETRIES: 'idempotent_mq.transient_retries',
  /** The handler ran without a claim (missing key by policy, or fail-open). Set when true. */
  UNPROTECTED: 'idempotent_mq.unprotected',
  /** The idempotency key. Only with `recordKeys: true`: keys are business data. */
  KEY: 'idempotent_mq.key',
  /** The stable code of an `IdempotencyError` (`PAYLOAD_CONFLICT`, `HANDLER_TIMEOUT`, ...). */
  ERROR_CODE: 'idempotent_mq.error_code',
  /** A store or cache call: `claim`, `complete`, `get`, `set`, ... */
  OPERATION: 'idempotent_mq.operation',
  /** A store or cache call's duration in milliseconds, on its span event. */
  DURATION_MS: 'idempotent_mq.duration_ms',
} as const;

/** The metrics, all in seconds or counts of messages. */
export const METRIC = {
  /** Histogram (s): a message's time in the engine, key to outcome; by outcome, tier, scope. */
  MESSAGE_DURATION: 'idempotent_mq.message.duration',
  /** Counter ({message}): outcomes, by outcome, tier, scope. */
  OUTCOMES: 'idempotent_mq.outcomes',
  /** Up-down counter ({message}): messages in the engine now, by scope. */
  MESSAGES_ACTIVE: 'idempotent_mq.messages.active',
  /** Histogram (s): each store call (`begin`, `claim`, `complete`, `release`, `commit`, `rollback`). */
  STORE_DURATION: 'idempotent_mq.store.duration',
  /** Histogram (s): each cache call (`get`, `getMany`, `set`). */
  CACHE_DURATION: 'idempotent_mq.cache.duration',
} as const;

/** The instrumentation scope name of the tracer and the meter. */
export const INSTRUMENTATION_NAME = '@idempotent-mq/opentelemetry';

/** `messaging.system` for a transport profile's broker name; the conventions' value where there is one. */
export function messagingSystem(broker: string): string {
  const name = broker.toLowerCase();
  for (const [part, system] of KNOWN_SYSTEMS) if (name.includes(part)) return system;
  return name.replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '') || 'unknown';
}

const KNOWN_SYSTEMS: readonly (readonly [string, string])[] = [
  ['rocketmq', 'rocketmq'],
  ['rabbitmq', 'rabbitmq'],
  ['kafka', 'kafka'],
  ['pulsar', 'pulsar'],
  ['activemq', 'activemq'],
  ['nats', 'nats'],
  ['in-memory', 'in_memory'],
];
