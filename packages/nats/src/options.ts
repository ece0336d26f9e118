/** Options of the transport and the publisher, documented field by field, validated once at construction. */
import {
  type Backoff,
  type SettledEvent as CoreSettledEvent,
  checkBackoff,
  InvalidOptionError,
} from '@idempotent-mq/core/adapter';
import type { NatsConnection, NodeConnectionOptions } from '@nats-io/transport-node';
import { BODY_CODECS, type BodyCodec } from './codec.js';
import { checkName, checkSubject } from './nats-profile.js';

/** A logger the transport writes to; `console` and core's `ConsoleLogger` fit. */
export interface NatsLogger {
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

/** Where a client gets its connection: servers to connect to, or a connection you own. */
export interface NatsConnectionSource {
  /**
   * The servers to connect to (`'127.0.0.1:4222'`, `'nats://host:4222'`, or several). The client then
   * opens and owns its connection, and closes it at `stop()`. Exclusive with `connection`.
   */
  readonly servers?: string | readonly string[];
  /**
   * An open connection you own, with your auth, TLS and reconnect settings; it is never closed for you.
   * Give it a `maxReconnectAttempts` of -1 if it must outlive a long outage (NATS's default, 10 × 2 s,
   * closes it for good after about 20 s, and a closed connection ends the subscriptions on it).
   */
  readonly connection?: NatsConnection;
  /**
   * With `servers`: the other connection options (`name`, `user`/`pass`, `token`, `tls`, …).
   * @defaultValue `{ maxReconnectAttempts: -1, reconnectTimeWait: 500 }` (reconnect for ever)
   */
  readonly connectOptions?: Omit<NodeConnectionOptions, 'servers'>;
  /** With `servers`: how long the first connect may take. @defaultValue `10000` */
  readonly startupTimeoutMs?: number;
  /** Where the client logs. @defaultValue warnings and errors to the console */
  readonly logger?: NatsLogger;
}

/** Options of {@link NatsTransport}. */
export interface NatsTransportOptions extends NatsConnectionSource {
  /**
   * The stream every subscription reads (a listener's own `stream` wins). Without it, a subscription
   * uses the stream that captures its topic, or creates `IMQ_<topic>` (see the README's layout).
   * @defaultValue the stream that captures the topic
   */
  readonly stream?: string;
  /** How bodies are decoded for handlers (a listener's `codec` wins). @defaultValue `'json'` */
  readonly codec?: BodyCodec;
  /**
   * The consumers' `ack_wait`: how long JetStream waits without word from a consumer before it
   * redelivers, as after a crash. While a handler works on a message (or it waits in place) the
   * transport sends `working()` every `renewIntervalMs`, so a handler may run longer than this.
   * @defaultValue `30000`
   */
  readonly ackWaitMs?: number;
  /** How often a held message is renewed with `working()`; at most half of `ackWaitMs`. @defaultValue a third of `ackWaitMs` */
  readonly renewIntervalMs?: number;
  /** The most messages asked for in one fetch (also capped by the subscription's free concurrency). @defaultValue `16` */
  readonly batchSize?: number;
  /**
   * How long one fetch (a pull request) waits on the server for messages. `stop()` waits for the fetch
   * in flight rather than cut it short (what it brings is handled, not left to come back after
   * `ack_wait` with an attempt spent), so it may take this long. @defaultValue `3000`
   */
  readonly fetchExpiresMs?: number;
  /** The consumers' `max_ack_pending`: messages held by the whole group at once. @defaultValue `1000` */
  readonly maxAckPending?: number;
  /**
   * Dead letters of group `g` go to subject `<deadLetterSubjectPrefix>.g`. @defaultValue `'imq.dlq'`
   */
  readonly deadLetterSubjectPrefix?: string;
  /**
   * The stream that keeps dead letters, created with subjects `<deadLetterSubjectPrefix>.>` if absent.
   * @defaultValue `'IMQ_DLQ'`
   */
  readonly deadLetterStream?: string;
  /**
   * Delay between failed fetches (server down, consumer gone), by consecutive failure; core's `Backoff`.
   * @defaultValue `{ initialMs: 200, maxMs: 5000 }`
   */
  readonly fetchBackoff?: Backoff;
  /**
   * Retry delay for a batch whose handler threw (or answered malformed settlements), by delivery
   * attempt; such a retry spends an attempt. @defaultValue `{ initialMs: 1000, maxMs: 60000 }`
   */
  readonly failureBackoff?: Backoff;
  /** How long an ack, nak, term or dead-letter publish waits for the server's reply. @defaultValue `5000` */
  readonly settleTimeoutMs?: number;
  /** Tries of each ack / nak / dead-letter publish before the message is left to come back. @defaultValue `3` */
  readonly settleAttempts?: number;
  /** Called after each settlement is carried out (or not): for metrics, alerts and tests. */
  readonly onSettled?: (event: SettledEvent) => void;
}

/** What happened to one message: core's event, with what this broker adds. */
export interface SettledEvent extends CoreSettledEvent {
  /** `<stream>:<stream sequence>`. */
  readonly messageId: string;
  /**
   * A wait: `true` while this consumer keeps the message and hands it to the handler again itself;
   * `false` when it went back to JetStream (at `stop()`), which counts a delivery when it comes back.
   */
  readonly inPlace?: boolean;
  /**
   * Not carried out because JetStream may have redelivered the message already: this consumer could
   * not renew it for most of `ack_wait` (a disconnect, a frozen process). JetStream accepts a late ack
   * for a delivery it has since given to another consumer, so none is sent; the message comes back.
   */
  readonly stale?: boolean;
}

/** The connection options, checked. */
export interface ResolvedConnectionSource {
  readonly servers?: string[];
  readonly connection?: NatsConnection;
  readonly connectOptions: Omit<NodeConnectionOptions, 'servers'>;
  readonly startupTimeoutMs: number;
  readonly logger: NatsLogger;
}

/** The transport options, checked, with their defaults. */
export interface ResolvedTransportOptions extends ResolvedConnectionSource {
  readonly stream?: string;
  readonly codec: BodyCodec;
  readonly ackWaitMs: number;
  readonly renewIntervalMs: number;
  readonly batchSize: number;
  readonly fetchExpiresMs: number;
  readonly maxAckPending: number;
  readonly deadLetterSubjectPrefix: string;
  readonly deadLetterStream: string;
  readonly fetchBackoff: Required<Backoff>;
  readonly failureBackoff: Required<Backoff>;
  readonly settleTimeoutMs: number;
  readonly settleAttempts: number;
  readonly onSettled?: (event: SettledEvent) => void;
}

const consoleWarnings: NatsLogger = {
  info: () => undefined,
  warn: (...args) => console.warn(...args),
  error: (...args) => console.error(...args),
};

/** Checks where the connection comes from; `prefix` names the client in errors. */
export function resolveConnectionSource(
  options: NatsConnectionSource,
  prefix: string,
): ResolvedConnectionSource {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError(prefix, 'an options object', options);
  }
  const { servers, connection, connectOptions, logger } = options;
  if ((servers === undefined) === (connection === undefined)) {
    throw new InvalidOptionError(
      `${prefix}.servers`,
      'either servers (such as "127.0.0.1:4222") or connection (an open NatsConnection), not both',
      servers === undefined ? 'neither' : 'both',
    );
  }
  let list: string[] | undefined;
  if (servers !== undefined) {
    list = typeof servers === 'string' ? [servers] : Array.isArray(servers) ? [...servers] : [];
    if (list.length === 0 || !list.every((s) => typeof s === 'string' && /^\S+$/.test(s))) {
      throw new InvalidOptionError(
        `${prefix}.servers`,
        '"host:port", "nats://host:port", or a non-empty array of them',
        servers,
      );
    }
  }
  if (
    connection !== undefined &&
    (typeof connection?.publish !== 'function' || typeof connection.isClosed !== 'function')
  ) {
    throw new InvalidOptionError(
      `${prefix}.connection`,
      'an open NatsConnection (from connect())',
      connection,
    );
  }
  if (connection?.isClosed()) {
    throw new InvalidOptionError(
      `${prefix}.connection`,
      'an open NatsConnection, not a closed one',
      'closed',
    );
  }
  if (connectOptions !== undefined && (typeof connectOptions !== 'object' || connectOptions === null)) {
    throw new InvalidOptionError(`${prefix}.connectOptions`, 'NATS connection options', connectOptions);
  }
  if (
    logger !== undefined &&
    (typeof logger?.info !== 'function' ||
      typeof logger.warn !== 'function' ||
      typeof logger.error !== 'function')
  ) {
    throw new InvalidOptionError(`${prefix}.logger`, 'an object with info, warn and error methods', logger);
  }
  return {
    ...(list ? { servers: list } : {}),
    ...(connection ? { connection } : {}),
    connectOptions: { maxReconnectAttempts: -1, reconnectTimeWait: 500, ...connectOptions },
    startupTimeoutMs: integer(`${prefix}.startupTimeoutMs`, options.startupTimeoutMs, 10_000, 100, 600_000),
    logger: logger ?? consoleWarnings,
  };
}

/** Checks every transport option now, naming the one that is wrong and the range it accepts. */
export function resolveTransportOptions(options: NatsTransportOptions): ResolvedTransportOptions {
  const prefix = 'NatsTransport';
  const source = resolveConnectionSource(options, prefix);
  const codec = options.codec ?? 'json';
  if (!BODY_CODECS.includes(codec)) {
    throw new InvalidOptionError(`${prefix}.codec`, BODY_CODECS.map((c) => `'${c}'`).join(' | '), codec);
  }
  if (options.onSettled !== undefined && typeof options.onSettled !== 'function') {
    throw new InvalidOptionError(`${prefix}.onSettled`, 'a function', options.onSettled);
  }
  const ackWaitMs = integer(`${prefix}.ackWaitMs`, options.ackWaitMs, 30_000, 1000, 12 * 3_600_000);
  const renewIntervalMs = integer(
    `${prefix}.renewIntervalMs`,
    options.renewIntervalMs,
    Math.floor(ackWaitMs / 3),
    100,
    Math.floor(ackWaitMs / 2),
  );
  const deadLetterSubjectPrefix = checkSubject(
    options.deadLetterSubjectPrefix ?? 'imq.dlq',
    `${prefix}.deadLetterSubjectPrefix`,
    false,
  );
  return {
    ...source,
    ...(options.stream !== undefined
      ? { stream: checkName(options.stream, `${prefix}.stream`, 'stream') }
      : {}),
    codec,
    ackWaitMs,
    renewIntervalMs,
    batchSize: integer(`${prefix}.batchSize`, options.batchSize, 16, 1, 256),
    fetchExpiresMs: integer(`${prefix}.fetchExpiresMs`, options.fetchExpiresMs, 3000, 1000, 60_000),
    maxAckPending: integer(`${prefix}.maxAckPending`, options.maxAckPending, 1000, 1, 1_000_000),
    deadLetterSubjectPrefix,
    deadLetterStream: checkName(
      options.deadLetterStream ?? 'IMQ_DLQ',
      `${prefix}.deadLetterStream`,
      'stream',
    ),
    fetchBackoff: checkBackoff(`${prefix}.fetchBackoff`, options.fetchBackoff, {
      initialMs: 200,
      maxMs: 5000,
    }),
    failureBackoff: checkBackoff(`${prefix}.failureBackoff`, options.failureBackoff, {
      initialMs: 1000,
      maxMs: 60_000,
    }),
    settleTimeoutMs: integer(`${prefix}.settleTimeoutMs`, options.settleTimeoutMs, 5000, 100, 60_000),
    settleAttempts: integer(`${prefix}.settleAttempts`, options.settleAttempts, 3, 1, 20),
    ...(options.onSettled ? { onSettled: options.onSettled } : {}),
  };
}

/** An integer option from `min` to `max`, or its default when absent. */
export function integer(option: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(option, `an integer from ${min} to ${max}`, value);
  }
  return value;
}
