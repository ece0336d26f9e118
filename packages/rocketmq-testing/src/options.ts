/** The test broker's options, and their defaults. */
import type { TopicPerm } from './records.js';

export interface RocketMQTestBrokerOptions {
  /** The port to listen on. @defaultValue `0` (a free one) */
  readonly port?: number;
  /** Deliveries after which the broker dead-letters a message itself (RocketMQ: 16 retries). @defaultValue `17` */
  readonly maxDeliveryAttempts?: number;
  /** Never answer the telemetry stream with settings: the client's start-up then hangs. @defaultValue `false` */
  readonly silentTelemetry?: boolean;
  /** `receive_batch_size` in the settings sent to consumers. @defaultValue `32` */
  readonly receiveBatchSize?: number;
  /** `max_body_size` in the settings sent to producers. @defaultValue 4 MiB */
  readonly maxBodySize?: number;
  /**
   * Per consumer group, the deliveries after which the broker dead-letters a message of the group (its
   * `retryMaxTimes` + 1, as `mqadmin updateSubGroup -r` sets it), told to its consumers in their settings;
   * a group not named here has `maxDeliveryAttempts`. @defaultValue `{}`
   */
  readonly groupMaxDeliveryAttempts?: Readonly<Record<string, number>>;
  /**
   * The perm a dead-letter topic `%DLQ%<group>` is created with (RocketMQ's numbers): `6`, read-write, as
   * brokers since 4.9.2 create it; `2`, write-only, as older ones did (its route then has no readable
   * queue and a receive is refused, until `updateTopicPerm(topic, 6)`). @defaultValue `6`
   */
  readonly deadLetterTopicPerm?: TopicPerm;
}

/** The options with their defaults, but the port, which changes as the broker binds. */
export type ResolvedBrokerOptions = Required<Omit<RocketMQTestBrokerOptions, 'port'>>;

export function resolveOptions(options: RocketMQTestBrokerOptions): ResolvedBrokerOptions {
  return {
    maxDeliveryAttempts: options.maxDeliveryAttempts ?? 17,
    silentTelemetry: options.silentTelemetry ?? false,
    receiveBatchSize: options.receiveBatchSize ?? 32,
    maxBodySize: options.maxBodySize ?? 4 * 1024 * 1024,
    groupMaxDeliveryAttempts: { ...(options.groupMaxDeliveryAttempts ?? {}) },
    deadLetterTopicPerm: options.deadLetterTopicPerm ?? 6,
  };
}
