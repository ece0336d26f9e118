/** @idempotent-mq/nats: the NATS JetStream transport, its listener decorator and a keyed publisher. */

/** The one backoff of the project (core's), re-exported for `fetchBackoff` and `failureBackoff`. */
export type { Backoff } from '@idempotent-mq/core/adapter';
export { type BodyCodec, decodeBody, encodeBody } from './codec.js';
export { type NatsDeadLetterSourceOptions, natsDeadLetterSource } from './dead-letter-source.js';
export {
  BodyEncodingError,
  MissingMessageKeyError,
  NatsError,
  type NatsErrorCode,
  NatsLayoutConflictError,
  NatsStartupError,
  NotStartedError,
} from './errors.js';
export {
  DLQ_ATTEMPT,
  DLQ_GROUP,
  DLQ_REASON,
  DLQ_SEQUENCE,
  DLQ_STREAM,
  DLQ_SUBJECT,
  KEYS_HEADER,
  NATS_MSG_ID,
} from './headers.js';
export { derivedStreamName } from './jetstream-layout.js';
export {
  NatsListener,
  type NatsListenerMetadata,
  type NatsListenerOptions,
} from './nats-listener.decorator.js';
export { NATS_DEFAULT_MAX_ATTEMPTS, NATS_MAX_ATTEMPTS } from './nats-profile.js';
export {
  NatsPublisher,
  type NatsPublisherOptions,
  type PublishReceipt,
  type PublishRequest,
} from './nats-publisher.js';
export { NatsTransport } from './nats-transport.js';
export type {
  NatsConnectionSource,
  NatsLogger,
  NatsTransportOptions,
  SettledEvent,
} from './options.js';
