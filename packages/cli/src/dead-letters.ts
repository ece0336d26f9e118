/**
 * Dead letters as the CLI sees them, whatever the transport: a {@link DeadLetterSource} lists them and
 * re-publishes one. A config file names its sources and, for each, the scope and key function of the
 * listener that consumes them, so that `dlq redrive` can look each message's token up first.
 */
import type { IdempotencyKeyValue, TransportMessage } from '@idempotent-mq/core';
import type { DeadLetter, DeadLetterSource } from '@idempotent-mq/core/adapter';

// The shape is core's, so that the transport packages' sources (`rabbitMQDeadLetterSource`,
// `natsDeadLetterSource`) satisfy it without depending on the CLI.
export type { DeadLetter, DeadLetterSource } from '@idempotent-mq/core/adapter';

/** A dead-letter source as the config names it, with what tells each letter's token. */
export interface DeadLetterSourceConfig {
  /** The name `--source` selects. */
  readonly name: string;
  /** The source, or a function that opens it (called only by the `dlq` commands). */
  readonly source: DeadLetterSource | (() => DeadLetterSource | Promise<DeadLetterSource>);
  /**
   * The scope of the listener that consumes these messages (`v1:billing:PaymentConsumer.onMessage`, as
   * `inspect` shows it), or a function of the letter (e.g. by consumer group). `--scope` overrides it.
   * @defaultValue none: `--scope` is then required
   */
  readonly scope?: string | ((letter: DeadLetter) => string | undefined);
  /**
   * That listener's key function, applied to the letter. The value is turned into the stored key as
   * the engine does (arrays joined canonically, long keys hashed past `maxKeyLength`).
   * @defaultValue the letter's `keys`
   */
  readonly key?: (letter: DeadLetter) => IdempotencyKeyValue;
}

/** What {@link inMemoryDeadLetterSource} needs of a broker: `InMemoryBroker` from `@idempotent-mq/testing` has it. */
export interface InMemoryDeadLetterBroker {
  deadLetters(consumerGroup?: string): readonly {
    readonly consumerGroup: string;
    readonly message: TransportMessage;
    readonly reason: string;
  }[];
  publish(
    topic: string,
    message: { keys: readonly string[]; body: unknown; tag?: string; properties?: Record<string, string> },
  ): string;
}

/**
 * The dead letters of an in-process `InMemoryBroker` (or anything with its `deadLetters()` and
 * `publish()`), for `run()` in the same process: tests, the demo, an embedded broker.
 *
 * `redrive` publishes the message to its topic again with its keys, body, tag and properties: every
 * consumer group of the topic gets a copy, and the groups that processed it already answer it as a
 * duplicate. The broker keeps its dead letters for ever, so the source remembers the letters it has
 * re-driven and lists only the others.
 */
export function inMemoryDeadLetterSource(broker: InMemoryDeadLetterBroker): DeadLetterSource {
  const redriven = new WeakSet<object>();
  const entries = new Map<string, object>();
  return {
    description: 'in-memory broker',
    async list() {
      entries.clear();
      return broker
        .deadLetters()
        .filter((dead) => !redriven.has(dead))
        .map((dead) => {
          const id = `${dead.consumerGroup}/${dead.message.messageId}`;
          entries.set(id, dead);
          return {
            id,
            topic: dead.message.topic,
            consumerGroup: dead.consumerGroup,
            keys: dead.message.keys,
            messageId: dead.message.messageId,
            reason: dead.reason,
            deliveryAttempt: dead.message.deliveryAttempt,
            message: dead.message,
          };
        });
    },
    async redrive(letter) {
      const dead = entries.get(letter.id);
      const message = (letter.message ?? {}) as Partial<TransportMessage>;
      broker.publish(letter.topic, {
        keys: letter.keys,
        body: message.body,
        ...(message.tag === undefined ? {} : { tag: message.tag }),
        properties: { ...message.properties },
      });
      if (dead) redriven.add(dead);
    },
  };
}
