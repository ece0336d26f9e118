/**
 * Dead letters as the CLI sees them, whatever the transport: a {@link DeadLetterSource} lists them and
 * re-publishes one. A config file names its sources and, for each, the scope and key function of the
 * listener that consumes them, so that `dlq redrive` can look each message's token up first.
 */
import type { IdempotencyKeyValue, TransportMessage } from '@idempotent-mq/core';

/** One dead-lettered message, broker-neutral. */
export interface DeadLetter {
  /** Unique within its source: what `dlq redrive --id` selects. */
  readonly id: string;
  /** The topic (subject, exchange) it was published to. */
  readonly topic: string;
  /** The consumer group that gave up on it. */
  readonly consumerGroup: string;
  /** The message's business keys: what `@Idempotent({ key: (m) => m.keys })` reads. */
  readonly keys: readonly string[];
  readonly messageId?: string;
  /** Why it was dead-lettered, as the transport recorded it. */
  readonly reason?: string;
  /** When it was dead-lettered (epoch ms), if the transport says. */
  readonly deadLetteredAt?: number;
  /** Its delivery attempt when it was given up on, if the transport says. */
  readonly deliveryAttempt?: number;
  /** The message itself, for the source's `redrive` and for a config's `key` function. */
  readonly message?: unknown;
}

/** Where dead letters are read and re-published: one per transport (and dead-letter queue). */
export interface DeadLetterSource {
  /** For people: `in-memory broker`, `RabbitMQ queue orders.billing.dlq`. */
  readonly description?: string;
  /** The dead letters waiting now. */
  list(): Promise<readonly DeadLetter[]>;
  /**
   * Publishes the message again for its consumer group. A source that can should then remove it from
   * its dead letters (ack it, delete it), so that the next `list` does not show it again.
   */
  redrive(letter: DeadLetter): Promise<void>;
  /** Releases the source's connections; called once the command is done. */
  close?(): Promise<void>;
}

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
