/** Options of the transport and the publisher, documented field by field, validated once at construction. */
import {
  type Backoff,
  backoffOption,
  CONSOLE_WARNINGS,
  type SettledEvent as CoreSettledEvent,
  checkOptionsObject,
  codecOption,
  functionOption,
  InvalidOptionError,
  integerOption,
  loggerOption,
  type TransportLogger,
} from '@idempotent-mq/core/adapter';
import type { NatsConnection, NodeConnectionOptions } from '@nats-io/transport-node';
import type { BodyCodec } from './codec.js';
import { checkName, checkSubject } from './nats-profile.js';

/** A logger the transport writes to; `console` and core's `ConsoleLogger` fit. */
export type NatsLogger = TransportLogger;

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

/** The names every client of ours takes (see {@link NatsConnectionSource}). */
const CONNECTION_OPTIONS: readonly string[] = [
  'servers',
  'connection',
  'connectOptions',
  'startupTimeoutMs',
  'logger',
];

const TRANSPORT_OPTIONS: readonly string[] = [
  'stream',
  'codec',
  'ackWaitMs',
  'renewIntervalMs',
  'batchSize',
  'fetchExpiresMs',
  'maxAckPending',
  'deadLetterSubjectPrefix',
  'deadLetterStream',
  'fetchBackoff',
  'failureBackoff',
  'settleTimeoutMs',
  'settleAttempts',
  'onSettled',
];

/**
 * Checks where the connection comes from; `prefix` names the client in errors. The options object's
 * names must all be the connection's or one of `ownNames` (the client's own).
 * Without `ownNames` the caller checks the names itself (a client with options of its own elsewhere).
 */
export function resolveConnectionSource(
  options: NatsConnectionSource,
  prefix: string,
  ownNames?: readonly string[],
): ResolvedConnectionSource {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError(prefix, 'an options object', options);
  }
  if (ownNames) checkOptionsObject(options, [...CONNECTION_OPTIONS, ...ownNames], prefix);
  const { servers, connection, connectOptions } = options;
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
  const logger = loggerOption(prefix, 'logger', options.logger);
  return {
    ...(list ? { servers: list } : {}),
    ...(connection ? { connection } : {}),
    connectOptions: { maxReconnectAttempts: -1, reconnectTimeWait: 500, ...connectOptions },
    startupTimeoutMs: integerOption(prefix, 'startupTimeoutMs', options.startupTimeoutMs, {
      min: 100,
      max: 600_000,
      fallback: 10_000,
    }),
    logger: logger ?? CONSOLE_WARNINGS,
  };
}

/** Checks every transport option now, naming the one that is wrong and the range it accepts. */
export function resolveTransportOptions(options: NatsTransportOptions): ResolvedTransportOptions {
  const prefix = 'NatsTransport';
  const source = resolveConnectionSource(options, prefix, TRANSPORT_OPTIONS);
  const codec = codecOption(prefix, 'codec', options.codec, 'json');
  functionOption(prefix, 'onSettled', options.onSettled);
  const ackWaitMs = integerOption(prefix, 'ackWaitMs', options.ackWaitMs, {
    min: 1000,
    max: 12 * 3_600_000,
    fallback: 30_000,
  });
  const renewIntervalMs = integerOption(prefix, 'renewIntervalMs', options.renewIntervalMs, {
    min: 100,
    max: Math.floor(ackWaitMs / 2),
    fallback: Math.floor(ackWaitMs / 3),
  });
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
    batchSize: integerOption(prefix, 'batchSize', options.batchSize, { min: 1, max: 256, fallback: 16 }),
    fetchExpiresMs: integerOption(prefix, 'fetchExpiresMs', options.fetchExpiresMs, {
      min: 1000,
      max: 60_000,
      fallback: 3000,
    }),
    maxAckPending: integerOption(prefix, 'maxAckPending', options.maxAckPending, {
      min: 1,
      max: 1_000_000,
      fallback: 1000,
    }),
    deadLetterSubjectPrefix,
    deadLetterStream: checkName(
      options.deadLetterStream ?? 'IMQ_DLQ',
      `${prefix}.deadLetterStream`,
      'stream',
    ),
    fetchBackoff: backoffOption(prefix, 'fetchBackoff', options.fetchBackoff, {
      initialMs: 200,
      maxMs: 5000,
    }),
    failureBackoff: backoffOption(prefix, 'failureBackoff', options.failureBackoff, {
      initialMs: 1000,
      maxMs: 60_000,
    }),
    settleTimeoutMs: integerOption(prefix, 'settleTimeoutMs', options.settleTimeoutMs, {
      min: 100,
      max: 60_000,
      fallback: 5000,
    }),
    settleAttempts: integerOption(prefix, 'settleAttempts', options.settleAttempts, {
      min: 1,
      max: 20,
      fallback: 3,
    }),
    ...(options.onSettled ? { onSettled: options.onSettled } : {}),
  };
}
