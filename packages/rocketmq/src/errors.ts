/** Errors of the RocketMQ transport: one base with a stable `code`, subclasses named for what happened. */

export type RocketMQErrorCode =
  | 'STARTUP_FAILED'
  | 'MISSING_MESSAGE_KEY'
  | 'BODY_ENCODING_FAILED'
  | 'NOT_STARTED';

/**
 * The base of every error the RocketMQ transport and publisher raise (option errors are core's
 * `InvalidOptionError`). `code` is stable, safe to match on in metrics and alerts; the message says
 * what to do.
 *
 * @example
 * ```ts
 * try {
 *   await publisher.send(request);
 * } catch (error) {
 *   if (error instanceof RocketMQError && error.code === 'MISSING_MESSAGE_KEY') rejectRequest(error.message);
 *   else throw error;
 * }
 * ```
 */
export class RocketMQError extends Error {
  override readonly name: string = 'RocketMQError';
  constructor(
    readonly code: RocketMQErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A client could not start: the proxy is unreachable, refused the route query, or never answered the
 * telemetry stream with its settings (rocketmq-client-nodejs 1.0.8 would wait for those forever).
 */
export class RocketMQStartupError extends RocketMQError {
  override readonly name = 'RocketMQStartupError';
  constructor(
    readonly role: string,
    readonly endpoints: string,
    /** The start-up timeout that ran out, or undefined when the client failed by itself. */
    readonly timeoutMs: number | undefined,
    cause?: unknown,
  ) {
    super(
      'STARTUP_FAILED',
      timeoutMs !== undefined
        ? `The RocketMQ ${role} did not start within ${timeoutMs} ms: ${endpoints} never answered with its ` +
            `client settings. Check that the proxy is up and that "endpoints" is its gRPC port (8081 by ` +
            `default), or raise "startupTimeoutMs" if it is only slow.`
        : `The RocketMQ ${role} could not start against ${endpoints}: ${messageOf(cause)}. Check ` +
            `"endpoints", "namespace", "sessionCredentials" and that the topic and group exist.`,
      { cause },
    );
  }

  get timedOut(): boolean {
    return this.timeoutMs !== undefined;
  }
}

/** The producer was asked to send a message without a business key (RocketMQ's message Key). */
export class MissingMessageKeyError extends RocketMQError {
  override readonly name = 'MissingMessageKeyError';
  constructor(
    readonly topic: string,
    reason: string,
  ) {
    super(
      'MISSING_MESSAGE_KEY',
      `Refusing to send to topic "${topic}" without a business key: ${reason}. Set "keys" to the ` +
        `business identifier (e.g. the payment serial number): consumers deduplicate on it, never on the ` +
        `message id, which changes when a producer resends.`,
    );
  }
}

/** The body could not be encoded with the producer's codec. */
export class BodyEncodingError extends RocketMQError {
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
export class NotStartedError extends RocketMQError {
  override readonly name = 'NotStartedError';
  constructor(what: string, hint = 'call start() first (and not after stop())') {
    super('NOT_STARTED', `${what} is not running: ${hint}.`);
  }
}

export function messageOf(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
