/** The test broker's options, and their defaults. */

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
}

/** The options with their defaults, but the port, which changes as the broker binds. */
export type ResolvedBrokerOptions = Required<Omit<RocketMQTestBrokerOptions, 'port'>>;

export function resolveOptions(options: RocketMQTestBrokerOptions): ResolvedBrokerOptions {
  return {
    maxDeliveryAttempts: options.maxDeliveryAttempts ?? 17,
    silentTelemetry: options.silentTelemetry ?? false,
    receiveBatchSize: options.receiveBatchSize ?? 32,
    maxBodySize: options.maxBodySize ?? 4 * 1024 * 1024,
  };
}
