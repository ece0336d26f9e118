/** Options of the transport and the publisher, documented field by field, validated once at start-up. */
import {
  type Backoff,
  type SettledEvent as CoreSettledEvent,
  checkBackoff,
  InvalidOptionError,
} from '@idempotent-mq/core/adapter';
import { BODY_CODECS, type BodyCodec } from './codec.js';
import { MAX_INVISIBLE_DURATION_MS, ROCKETMQ_DEFAULT_MAX_ATTEMPTS } from './rocketmq-profile.js';

/**
 * A logger the client and the transport write to. printf-style like `console` (the client passes
 * `'%s'` arguments); `ConsoleLogger` from core and egg-logger both fit.
 */
export interface RocketMQLogger {
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
  debug?(...args: unknown[]): void;
}

/** What every RocketMQ client of ours passes through to rocketmq-client-nodejs. */
export interface RocketMQClientOptions {
  /** The proxy's gRPC endpoints, `host:port[;host:port]` (8081 on a default proxy). */
  readonly endpoints: string;
  /** The namespace (sent as `x-mq-namespace`). @defaultValue `''` (none) */
  readonly namespace?: string;
  /** ACL credentials; requests are then signed with HMAC-SHA1. @defaultValue none */
  readonly sessionCredentials?: {
    readonly accessKey: string;
    readonly accessSecret: string;
    readonly securityToken?: string;
  };
  /** TLS to the proxy. @defaultValue `false` (plaintext) */
  readonly sslEnabled?: boolean;
  /** Timeout of each request to the proxy, in ms (at least 1000). @defaultValue `3000` */
  readonly requestTimeout?: number;
  /**
   * Where the client and the transport log. Without one, the client writes to
   * `$HOME/logs/rocketmq/rocketmq_client_nodejs.log` and the transport warns on the console.
   */
  readonly logger?: RocketMQLogger;
  /**
   * How long `start()` / `subscribe()` waits for the client to start. rocketmq-client-nodejs 1.0.8 waits
   * forever for a server that never sends its settings; past this, start-up fails with
   * `RocketMQStartupError`. @defaultValue `10000`
   */
  readonly startupTimeoutMs?: number;
}

export interface RocketMQTransportOptions extends RocketMQClientOptions {
  /** How bodies are decoded for handlers. @defaultValue `'json'` */
  readonly codec?: BodyCodec;
  /**
   * How long a received message stays invisible to other consumers of its group. While a handler
   * works on it, or while it waits in place for another copy's claim, the transport extends it every
   * `renewIntervalMs`. At most 12 h (the proxy's limit). @defaultValue `30000`
   */
  readonly invisibleDurationMs?: number;
  /** How often a message being handled has its invisible duration extended. @defaultValue a third of `invisibleDurationMs` */
  readonly renewIntervalMs?: number;
  /**
   * Long-polling duration of each receive. `stop()` waits for the receive in progress, so it may take
   * this long. @defaultValue `10000`
   */
  readonly awaitDurationMs?: number;
  /** Most messages asked for in one receive (also capped by the free concurrency). @defaultValue `16` */
  readonly batchSize?: number;
  /**
   * Delay between failed receives (broker down, network), by consecutive failure; core's `Backoff`.
   * @defaultValue `{ initialMs: 200, maxMs: 5000 }` (multiplier 2, jitter ±20%)
   */
  readonly receiveBackoff?: Backoff;
  /**
   * Retry delay for a batch whose handler threw (or answered malformed settlements), by delivery
   * attempt; such a retry spends an attempt. Core's `Backoff`.
   * @defaultValue `{ initialMs: 1000, maxMs: 60000 }` (multiplier 2, jitter ±20%)
   */
  readonly failureBackoff?: Backoff;
  /** Tries of each ack / invisible-duration change / dead-letter forward before giving up. @defaultValue `3` */
  readonly settleAttempts?: number;
  /**
   * Deliveries after which the subscription groups dead-letter a message by themselves (a group's
   * `retryMaxTimes` + 1); the profile's `maxAttempts`, so that the registry never plans more. The proxy
   * also says it when a consumer starts; a group that allows fewer than a listener's `maxAttempts` is
   * logged as a warning. @defaultValue `17` (RocketMQ's default: 16 retries + the first delivery)
   */
  readonly maxDeliveryAttempts?: number;
  /** Called after each settlement is carried out (or failed): for metrics, alerts and tests. */
  readonly onSettled?: (event: SettledEvent) => void;
}

/** What happened to one message: core's event, with what this broker adds. */
export interface SettledEvent extends CoreSettledEvent {
  /**
   * A wait: `true` while this consumer keeps the message and hands it to the handler again itself;
   * `false` when it went back to the broker (at `stop()`), which counts a delivery when it comes back.
   */
  readonly inPlace?: boolean;
}

export interface ResolvedClientOptions {
  readonly endpoints: string;
  readonly namespace: string;
  readonly sessionCredentials?: RocketMQClientOptions['sessionCredentials'];
  readonly sslEnabled: boolean;
  readonly requestTimeout: number;
  readonly logger?: RocketMQLogger;
  readonly startupTimeoutMs: number;
}

export interface ResolvedTransportOptions extends ResolvedClientOptions {
  readonly codec: BodyCodec;
  readonly invisibleDurationMs: number;
  readonly renewIntervalMs: number;
  readonly awaitDurationMs: number;
  readonly batchSize: number;
  readonly receiveBackoff: Required<Backoff>;
  readonly failureBackoff: Required<Backoff>;
  readonly settleAttempts: number;
  readonly maxDeliveryAttempts: number;
  readonly onSettled?: (event: SettledEvent) => void;
}

export function resolveClientOptions(options: RocketMQClientOptions, prefix: string): ResolvedClientOptions {
  const name = (field: string) => `${prefix}.${field}`;
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError(prefix, 'an options object', options);
  }
  const endpoints = options.endpoints;
  if (typeof endpoints !== 'string' || !/^[^\s;:]+:\d{1,5}(;[^\s;:]+:\d{1,5})*$/.test(endpoints.trim())) {
    throw new InvalidOptionError(name('endpoints'), "'host:port' or 'host:port;host:port'", endpoints);
  }
  if (options.namespace !== undefined && typeof options.namespace !== 'string') {
    throw new InvalidOptionError(name('namespace'), 'a string', options.namespace);
  }
  const credentials = options.sessionCredentials;
  if (credentials !== undefined) {
    if (!nonEmpty(credentials?.accessKey) || !nonEmpty(credentials?.accessSecret)) {
      throw new InvalidOptionError(
        name('sessionCredentials'),
        '{ accessKey, accessSecret } as non-empty strings',
        credentials ? { ...credentials, accessSecret: '***' } : credentials,
      );
    }
  }
  if (options.sslEnabled !== undefined && typeof options.sslEnabled !== 'boolean') {
    throw new InvalidOptionError(name('sslEnabled'), 'a boolean', options.sslEnabled);
  }
  const logger = options.logger;
  if (
    logger !== undefined &&
    (typeof logger?.info !== 'function' ||
      typeof logger.warn !== 'function' ||
      typeof logger.error !== 'function')
  ) {
    throw new InvalidOptionError(name('logger'), 'an object with info, warn and error methods', logger);
  }
  return {
    endpoints: endpoints.trim(),
    namespace: options.namespace ?? '',
    sessionCredentials: credentials,
    sslEnabled: options.sslEnabled ?? false,
    requestTimeout: integer(name('requestTimeout'), options.requestTimeout, 3000, 1000, 600_000),
    logger,
    startupTimeoutMs: integer(name('startupTimeoutMs'), options.startupTimeoutMs, 10_000, 1, 3_600_000),
  };
}

export function resolveTransportOptions(options: RocketMQTransportOptions): ResolvedTransportOptions {
  const prefix = 'RocketMQTransport';
  const client = resolveClientOptions(options, prefix);
  const codec = options.codec ?? 'json';
  if (!BODY_CODECS.includes(codec)) {
    throw new InvalidOptionError(`${prefix}.codec`, BODY_CODECS.map((c) => `'${c}'`).join(' | '), codec);
  }
  const invisibleDurationMs = integer(
    `${prefix}.invisibleDurationMs`,
    options.invisibleDurationMs,
    30_000,
    1000,
    MAX_INVISIBLE_DURATION_MS,
  );
  const renewIntervalMs = integer(
    `${prefix}.renewIntervalMs`,
    options.renewIntervalMs,
    Math.floor(invisibleDurationMs / 3),
    100,
    invisibleDurationMs - 1,
  );
  if (options.onSettled !== undefined && typeof options.onSettled !== 'function') {
    throw new InvalidOptionError(`${prefix}.onSettled`, 'a function', options.onSettled);
  }
  return {
    ...client,
    codec,
    invisibleDurationMs,
    renewIntervalMs,
    awaitDurationMs: integer(`${prefix}.awaitDurationMs`, options.awaitDurationMs, 10_000, 100, 300_000),
    batchSize: integer(`${prefix}.batchSize`, options.batchSize, 16, 1, 32),
    receiveBackoff: checkBackoff(`${prefix}.receiveBackoff`, options.receiveBackoff, {
      initialMs: 200,
      maxMs: 5000,
    }),
    failureBackoff: checkBackoff(`${prefix}.failureBackoff`, options.failureBackoff, {
      initialMs: 1000,
      maxMs: 60_000,
    }),
    settleAttempts: integer(`${prefix}.settleAttempts`, options.settleAttempts, 3, 1, 20),
    maxDeliveryAttempts: integer(
      `${prefix}.maxDeliveryAttempts`,
      options.maxDeliveryAttempts,
      ROCKETMQ_DEFAULT_MAX_ATTEMPTS,
      1,
      1000,
    ),
    onSettled: options.onSettled,
  };
}

export function integer(option: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(option, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

function nonEmpty(value: unknown): boolean {
  return typeof value === 'string' && value.trim().length > 0;
}
