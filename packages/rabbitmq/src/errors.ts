/** Errors of the RabbitMQ transport and publisher: one base with a stable `code`, subclasses named for what happened. */

export type RabbitMQErrorCode =
  | 'CONNECTION_FAILED'
  | 'TOPOLOGY_FAILED'
  | 'PUBLISH_FAILED'
  | 'MISSING_MESSAGE_KEY'
  | 'BODY_ENCODING_FAILED'
  | 'NOT_STARTED';

/**
 * The base of every error the RabbitMQ transport and publisher raise (option errors are core's
 * `InvalidOptionError`). `code` is stable, safe to match on in metrics and alerts; the message says
 * what to do.
 *
 * @example
 * ```ts
 * try {
 *   await publisher.send(request);
 * } catch (error) {
 *   // Not confirmed: resending is safe, consumers deduplicate on the key.
 *   if (error instanceof RabbitMQError && error.code === 'PUBLISH_FAILED') await publisher.send(request);
 *   else throw error;
 * }
 * ```
 */
export class RabbitMQError extends Error {
  override readonly name: string = 'RabbitMQError';
  constructor(
    readonly code: RabbitMQErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The broker could not be reached (or refused the login), or a connection given to us was closed for good. */
export class RabbitMQConnectionError extends RabbitMQError {
  override readonly name = 'RabbitMQConnectionError';
  constructor(
    /** Where, with any password masked: `amqp://guest:***@127.0.0.1:5672`. */
    readonly target: string,
    reason: string,
    cause?: unknown,
  ) {
    super('CONNECTION_FAILED', `Cannot use RabbitMQ at ${target}: ${reason}`, { cause });
  }
}

/**
 * RabbitMQ refused to declare an exchange, a queue or a binding of a consumer group: typically one that
 * already exists with other arguments (declared by another tool or another version), or permissions.
 */
export class RabbitMQTopologyError extends RabbitMQError {
  override readonly name = 'RabbitMQTopologyError';
  constructor(
    readonly topic: string,
    readonly consumerGroup: string,
    cause: unknown,
  ) {
    super(
      'TOPOLOGY_FAILED',
      `RabbitMQ refused the topology of group "${consumerGroup}" on topic "${topic}": ${messageOf(cause)}. ` +
        'If an exchange or queue of that name already exists with other arguments, delete it (its messages ' +
        'with it) or use another group name; if it is a permission, grant configure/write/read on the names.',
      { cause },
    );
  }
}

/** Why a publish was not confirmed. */
export type PublishFailure =
  /** RabbitMQ answered basic.nack: it did not take the message. */
  | 'nacked'
  /** No queue is bound to receive it (a mandatory publish came back with basic.return). */
  | 'unroutable'
  /** No confirm came within the timeout: the message may or may not be stored. */
  | 'timeout'
  /** The channel or connection closed before the confirm: the message may or may not be stored. */
  | 'closed';

/** A publish that RabbitMQ did not confirm. Resending is safe: consumers deduplicate on the business key. */
export class RabbitMQPublishError extends RabbitMQError {
  override readonly name = 'RabbitMQPublishError';
  constructor(
    readonly exchange: string,
    readonly routingKey: string,
    readonly failure: PublishFailure,
    detail: string,
    cause?: unknown,
  ) {
    super(
      'PUBLISH_FAILED',
      `${describeTarget(exchange, routingKey)}: ${detail}` +
        (failure === 'unroutable'
          ? '. Declare the consumer groups first (RabbitMQPublisher `declare`, or start the consumers once).'
          : failure === 'nacked'
            ? '.'
            : '. It may have been stored: resend it (the consumers deduplicate on its key).'),
      { cause },
    );
  }
}

/** The publisher was asked to send a message without a business key. */
export class MissingMessageKeyError extends RabbitMQError {
  override readonly name = 'MissingMessageKeyError';
  constructor(
    readonly topic: string,
    reason: string,
  ) {
    super(
      'MISSING_MESSAGE_KEY',
      `Refusing to send to topic "${topic}" without a business key: ${reason}. Set "keys" to the ` +
        'business identifier (e.g. the payment serial number): consumers deduplicate on it.',
    );
  }
}

/** The body could not be encoded with the publisher's codec. */
export class BodyEncodingError extends RabbitMQError {
  override readonly name = 'BodyEncodingError';
  constructor(
    readonly topic: string,
    readonly codec: string,
    cause: unknown,
  ) {
    super(
      'BODY_ENCODING_FAILED',
      `Cannot encode the body for topic "${topic}" with codec "${codec}": ${messageOf(cause)}.`,
      { cause },
    );
  }
}

/** A method was called before `start()` or after `stop()`. */
export class NotStartedError extends RabbitMQError {
  override readonly name = 'NotStartedError';
  constructor(what: string, hint = 'call start() first (and not after stop())') {
    super('NOT_STARTED', `${what} is not running: ${hint}.`);
  }
}

/** @internal */
export function messageOf(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

function describeTarget(exchange: string, routingKey: string): string {
  return exchange === ''
    ? `Publish to queue "${routingKey}" failed`
    : `Publish to exchange "${exchange}" (routing key "${routingKey}") failed`;
}
