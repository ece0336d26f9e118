/** Errors of the NATS transport and publisher: one base with a stable `code`, subclasses named for what happened. */

/** Stable codes, safe to match on in metrics and alerts. */
export type NatsErrorCode =
  | 'STARTUP_FAILED'
  | 'LAYOUT_CONFLICT'
  | 'MISSING_MESSAGE_KEY'
  | 'BODY_ENCODING_FAILED'
  | 'NOT_STARTED';

/**
 * The base of every error the NATS transport and publisher raise (option errors are core's
 * `InvalidOptionError`). `code` is stable, safe to match on in metrics and alerts; the message says
 * what to do.
 *
 * @example
 * ```ts
 * try {
 *   await transport.subscribe(spec);
 * } catch (error) {
 *   if (error instanceof NatsError && error.code === 'LAYOUT_CONFLICT') alertOperators(error.message);
 *   throw error;
 * }
 * ```
 */
export class NatsError extends Error {
  override readonly name: string = 'NatsError';
  constructor(
    readonly code: NatsErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The connection, JetStream, or the stream and consumer a subscription needs could not be reached or
 * set up (the server is down, JetStream is off, a permission is missing).
 */
export class NatsStartupError extends NatsError {
  override readonly name = 'NatsStartupError';
  constructor(
    /** What was being started: `connection to nats://…`, `consumer "billing" on stream "ORDERS"`. */
    readonly what: string,
    hint: string,
    cause?: unknown,
  ) {
    super('STARTUP_FAILED', `Could not start the ${what}: ${messageOf(cause)}. ${hint}`, { cause });
  }
}

/**
 * What exists on the server contradicts what a subscription needs: a stream that does not capture the
 * topic, a durable of the group with another filter or a push configuration. Nothing was changed.
 */
export class NatsLayoutConflictError extends NatsError {
  override readonly name = 'NatsLayoutConflictError';
  constructor(
    readonly stream: string,
    readonly consumer: string | undefined,
    problem: string,
  ) {
    super('LAYOUT_CONFLICT', problem);
  }
}

/** The publisher was asked to send a message without a usable business key. */
export class MissingMessageKeyError extends NatsError {
  override readonly name = 'MissingMessageKeyError';
  constructor(
    readonly topic: string,
    reason: string,
  ) {
    super(
      'MISSING_MESSAGE_KEY',
      `Refusing to publish to "${topic}" without a business key: ${reason}. Set "keys" to the business ` +
        `identifier (e.g. the payment serial number): consumers deduplicate on it, and JetStream drops an ` +
        `exact resend within the stream's duplicate window through Nats-Msg-Id.`,
    );
  }
}

/** The body could not be encoded with the publisher's codec. */
export class BodyEncodingError extends NatsError {
  override readonly name = 'BodyEncodingError';
  constructor(
    readonly topic: string,
    readonly codec: string,
    cause: unknown,
  ) {
    super(
      'BODY_ENCODING_FAILED',
      `Cannot encode the body for "${topic}" with codec "${codec}": ${messageOf(cause)}.`,
      { cause },
    );
  }
}

/** A method was called before `start()` or after `stop()`. */
export class NotStartedError extends NatsError {
  override readonly name = 'NotStartedError';
  constructor(what: string, hint = 'call start() first (and not after stop())') {
    super('NOT_STARTED', `${what} is not running: ${hint}.`);
  }
}

/** The message of an error, or the thing itself as a string. */
export function messageOf(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
