/**
 * Dead letters, broker-neutral: what the operator CLI (`idempotent-mq dlq`) lists and re-drives, and what
 * each transport package's dead-letter source answers. The shape lives here so that the CLI and the
 * transports share it without depending on each other.
 */

/** One dead-lettered message, as a {@link DeadLetterSource} lists it. */
export interface DeadLetter {
  /** Unique within its source and stable while the letter waits: what `dlq redrive --id` selects. */
  readonly id: string;
  /** The topic (subject, exchange) it was published to. */
  readonly topic: string;
  /** The consumer group that gave up on it. */
  readonly consumerGroup: string;
  /** The message's business keys: what `@Idempotent({ key: (m) => m.keys })` reads. */
  readonly keys: readonly string[];
  /** The broker's id of the original message, if it had one. */
  readonly messageId?: string;
  /** Why it was dead-lettered, as the transport recorded it. */
  readonly reason?: string;
  /** When it was dead-lettered (epoch ms), if the transport says. */
  readonly deadLetteredAt?: number;
  /** Its delivery attempt when it was given up on, if the transport says. */
  readonly deliveryAttempt?: number;
  /**
   * The message itself, for the source's `redrive` and for a key function: the transport sources give
   * the `TransportMessage` a handler would have received.
   */
  readonly message?: unknown;
}

/** Where dead letters are read and re-published: one per transport (and dead-letter queue). */
export interface DeadLetterSource {
  /** For people: `in-memory broker`, `queue orders.billing.dlq`. */
  readonly description?: string;
  /** The dead letters waiting now, oldest first. Listing them must leave them where and as they are. */
  list(): Promise<readonly DeadLetter[]>;
  /**
   * Publishes the message again for its consumer group. A source that can should then remove it from
   * its dead letters (ack it, delete it), so that the next `list` does not show it again.
   */
  redrive(letter: DeadLetter): Promise<void>;
  /** Releases the source's connections; called once the command is done. */
  close?(): Promise<void>;
}
