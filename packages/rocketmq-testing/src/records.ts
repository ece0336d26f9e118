/** What the test broker keeps and shows: its messages and the record of what clients did with them. */

/** A message as stored. */
export interface StoredMessage {
  readonly offset: number;
  readonly messageId: string;
  readonly topic: string;
  readonly body: Buffer;
  readonly tag?: string;
  readonly keys: readonly string[];
  readonly properties: Readonly<Record<string, string>>;
  readonly bornAt: number;
  readonly messageGroup?: string;
  readonly storedAt: number;
  /** Set on copies that a fault made. */
  readonly duplicateOf?: string;
  /**
   * What a RocketMQ broker keeps as system properties and its proxy does not hand to gRPC clients (they
   * are not user properties): on a dead letter, `RETRY_TOPIC` (the topic it was first published to) and
   * `ORIGIN_MESSAGE_ID` (the original's id), as the broker's send-back sets them.
   */
  readonly systemProperties?: Readonly<Record<string, string>>;
  /**
   * The deliveries counted before it was stored here (RocketMQ's `reconsumeTimes`): a dead letter keeps
   * its count, so a group receiving it from the dead-letter topic goes on from there. @defaultValue `0`
   */
  readonly reconsumeTimes?: number;
}

export interface DeliveryRecord {
  readonly group: string;
  readonly topic: string;
  readonly messageId: string;
  readonly keys: readonly string[];
  readonly attempt: number;
  readonly at: number;
  readonly invisibleMs: number;
}

export interface AckRecord {
  readonly group: string;
  readonly messageId: string;
  readonly keys: readonly string[];
  readonly at: number;
  /** False when a fault dropped it (or the handle was stale). */
  readonly applied: boolean;
  readonly code: number;
}

export interface InvisibleChangeRecord {
  readonly group: string;
  readonly messageId: string;
  readonly durationMs: number;
  readonly at: number;
  readonly code: number;
}

export interface DeadLetterRecord {
  readonly group: string;
  /** `%DLQ%<group>`, as RocketMQ names it. */
  readonly dlqTopic: string;
  readonly message: StoredMessage;
  readonly deliveryAttempt: number;
  /** `forwarded`: the client asked (ForwardMessageToDeadLetterQueue); `maxDeliveryAttempts`: the broker did. */
  readonly cause: 'forwarded' | 'maxDeliveryAttempts';
  readonly at: number;
  /**
   * The letter as stored in topic `dlqTopic`: the original's body, keys, tag, user properties and
   * message id, with `RETRY_TOPIC` and `ORIGIN_MESSAGE_ID` among its system properties. A consumer of any
   * group can receive, ack and change the invisible time of it there (while the topic is readable).
   */
  readonly dlqMessage: StoredMessage;
}

/**
 * A topic's perm, in RocketMQ's numbers (`mqadmin updateTopicPerm -p`): `2` write-only, `4` read-only,
 * `6` read-write.
 */
export type TopicPerm = 2 | 4 | 6;

export interface ClientRecord {
  readonly clientId: string;
  readonly clientType: string;
  readonly namespace?: string;
  /** The `authorization` header, when the client signs its requests. */
  readonly authorization?: string;
  readonly group?: string;
  readonly topics: readonly string[];
  /** A consumer's filters as it declared them: `TAG` or `SQL`, and the expression. */
  readonly filters: readonly {
    readonly topic: string;
    readonly type: 'TAG' | 'SQL';
    readonly expression: string;
  }[];
}

/** Where a message stands for a consumer group. */
export type DeliveryStatus = 'ready' | 'invisible' | 'acked' | 'dead';
