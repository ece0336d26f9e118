/** @idempotent-mq/rocketmq: the RocketMQ 5 transport, its listener decorator and a keyed publisher. */

/** The one backoff of the project (core's), re-exported for `receiveBackoff` and `failureBackoff`. */
export type { Backoff } from '@idempotent-mq/core/adapter';
export { type BodyCodec, decodeBody, encodeBody } from './codec.js';
export {
  MIN_READER_ATTEMPTS,
  type RocketMQDeadLetterSourceOptions,
  rocketMQDeadLetterSource,
} from './dead-letter-source.js';
export {
  BodyEncodingError,
  MissingMessageKeyError,
  NotStartedError,
  RocketMQError,
  type RocketMQErrorCode,
  RocketMQStartupError,
} from './errors.js';
export type {
  RocketMQClientOptions,
  RocketMQLogger,
  RocketMQTransportOptions,
  SettledEvent,
} from './options.js';
export {
  RocketMQListener,
  type RocketMQListenerMetadata,
  type RocketMQListenerOptions,
} from './rocketmq-listener.decorator.js';
export { REDELIVERY_HORIZON_MS } from './rocketmq-profile.js';
export {
  type PublishReceipt,
  type PublishRequest,
  RocketMQPublisher,
  type RocketMQPublisherOptions,
} from './rocketmq-publisher.js';
export { RocketMQTransport } from './rocketmq-transport.js';
