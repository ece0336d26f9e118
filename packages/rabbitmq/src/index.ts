/** @idempotent-mq/rabbitmq: the RabbitMQ transport (amqplib 2.x), its listener decorator and a keyed publisher. */

/** The one backoff of the project (core's), re-exported for `reconnectBackoff` and `failureBackoff`. */
export type { Backoff } from '@idempotent-mq/core/adapter';
export type { BodyCodec } from './codec.js';
export { type RabbitMQDeadLetterSourceOptions, rabbitMQDeadLetterSource } from './dead-letter-source.js';
export {
  BodyEncodingError,
  MissingMessageKeyError,
  NotStartedError,
  type PublishFailure,
  RabbitMQConnectionError,
  RabbitMQError,
  type RabbitMQErrorCode,
  RabbitMQPublishError,
  RabbitMQTopologyError,
} from './errors.js';
export type {
  RabbitMQConnectionOptions,
  RabbitMQLogger,
  RabbitMQTransportOptions,
  SettledEvent,
} from './options.js';
export {
  RabbitMQListener,
  type RabbitMQListenerMetadata,
  type RabbitMQListenerOptions,
} from './rabbitmq-listener.decorator.js';
export { RABBITMQ_DEFAULT_MAX_ATTEMPTS, RABBITMQ_MAX_ATTEMPTS } from './rabbitmq-profile.js';
export {
  type PublishReceipt,
  type PublishRequest,
  type RabbitMQConsumerGroup,
  RabbitMQPublisher,
  type RabbitMQPublisherOptions,
} from './rabbitmq-publisher.js';
export { RabbitMQTransport } from './rabbitmq-transport.js';
export {
  DEFAULT_RETRY_LADDER_MS,
  HEADERS as RABBITMQ_HEADERS,
  type RabbitMQTopology,
  topologyOf,
} from './topology.js';
