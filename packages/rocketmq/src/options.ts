/** Options of the transport and the publisher, documented field by field, validated once at start-up. */
import {
  type Backoff,
  backoffOption,
  type SettledEvent as CoreSettledEvent,
  checkOptionsObject,
  codecOption,
  functionOption,
  InvalidOptionError,
  integerOption,
  loggerOption,
  type TransportLogger,
} from '@idempotent-mq/core/adapter';
import type { BodyCodec } from './codec.js';
import { MAX_INVISIBLE_DURATION_MS, ROCKETMQ_DEFAULT_MAX_ATTEMPTS } from './rocketmq-profile.js';

/**
 * A logger the client and the transport write to. printf-style like `console` (the client passes
 * `'%s'` arguments); `ConsoleLogger` from core and egg-logger both fit.
 */
export type RocketMQLogger = TransportLogger;

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

/** The names every client of ours takes (see {@link RocketMQClientOptions}). */
export const CLIENT_OPTIONS: readonly string[] = [
  'endpoints',
  'namespace',
  'sessionCredentials',
  'sslEnabled',
  'requestTimeout',
  'logger',
  'startupTimeoutMs',
];

const TRANSPORT_OPTIONS: readonly string[] = [
  ...CLIENT_OPTIONS,
  'codec',
  'invisibleDurationMs',
  'renewIntervalMs',
  'awaitDurationMs',
  'batchSize',
  'receiveBackoff',
  'failureBackoff',
  'settleAttempts',
  'maxDeliveryAttempts',
  'onSettled',
];

const CREDENTIAL_OPTIONS: readonly string[] = ['accessKey', 'accessSecret', 'securityToken'];

/**
 * Checks the client options of a transport or a publisher (`prefix` names it in errors): an options
 * object whose names are all the client's or one of `ownNames`, each client option valid.
 * Without `ownNames` the caller checks the names itself (a client with options of its own elsewhere).
 */
export function resolveClientOptions(
  options: RocketMQClientOptions,
  prefix: string,
  ownNames?: readonly string[],
): ResolvedClientOptions {
  const name = (field: string) => `${prefix}.${field}`;
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError(prefix, 'an options object', options);
  }
  if (ownNames) checkOptionsObject(options, [...CLIENT_OPTIONS, ...ownNames], prefix);
  const endpoints = options.endpoints;
  if (typeof endpoints !== 'string' || !/^[^\s;:]+:\d{1,5}(;[^\s;:]+:\d{1,5})*$/.test(endpoints.trim())) {
    throw new InvalidOptionError(name('endpoints'), "'host:port' or 'host:port;host:port'", endpoints);
  }
  if (options.namespace !== undefined && typeof options.namespace !== 'string') {
    throw new InvalidOptionError(name('namespace'), 'a string', options.namespace);
  }
  const credentials = options.sessionCredentials;
  if (credentials !== undefined) {
    if (typeof credentials === 'object' && credentials !== null && !Array.isArray(credentials)) {
      // A misspelt name's value is a secret: shown masked.
      const masked = Object.fromEntries(Object.keys(credentials).map((key) => [key, '***']));
      checkOptionsObject(masked, CREDENTIAL_OPTIONS, name('sessionCredentials'));
    }
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
  return {
    endpoints: endpoints.trim(),
    namespace: options.namespace ?? '',
    sessionCredentials: credentials,
    sslEnabled: options.sslEnabled ?? false,
    requestTimeout: integerOption(prefix, 'requestTimeout', options.requestTimeout, {
      min: 1000,
      max: 600_000,
      fallback: 3000,
    }),
    logger: loggerOption(prefix, 'logger', options.logger),
    startupTimeoutMs: integerOption(prefix, 'startupTimeoutMs', options.startupTimeoutMs, {
      min: 1,
      max: 3_600_000,
      fallback: 10_000,
    }),
  };
}

export function resolveTransportOptions(options: RocketMQTransportOptions): ResolvedTransportOptions {
  const prefix = 'RocketMQTransport';
  const client = resolveClientOptions(options, prefix, TRANSPORT_OPTIONS);
  const codec = codecOption(prefix, 'codec', options.codec, 'json');
  const invisibleDurationMs = integerOption(prefix, 'invisibleDurationMs', options.invisibleDurationMs, {
    min: 1000,
    max: MAX_INVISIBLE_DURATION_MS,
    fallback: 30_000,
  });
  const renewIntervalMs = integerOption(prefix, 'renewIntervalMs', options.renewIntervalMs, {
    min: 100,
    max: invisibleDurationMs - 1,
    fallback: Math.floor(invisibleDurationMs / 3),
  });
  functionOption(prefix, 'onSettled', options.onSettled);
  return {
    ...client,
    codec,
    invisibleDurationMs,
    renewIntervalMs,
    awaitDurationMs: integerOption(prefix, 'awaitDurationMs', options.awaitDurationMs, {
      min: 100,
      max: 300_000,
      fallback: 10_000,
    }),
    batchSize: integerOption(prefix, 'batchSize', options.batchSize, { min: 1, max: 32, fallback: 16 }),
    receiveBackoff: backoffOption(prefix, 'receiveBackoff', options.receiveBackoff, {
      initialMs: 200,
      maxMs: 5000,
    }),
    failureBackoff: backoffOption(prefix, 'failureBackoff', options.failureBackoff, {
      initialMs: 1000,
      maxMs: 60_000,
    }),
    settleAttempts: integerOption(prefix, 'settleAttempts', options.settleAttempts, {
      min: 1,
      max: 20,
      fallback: 3,
    }),
    maxDeliveryAttempts: integerOption(prefix, 'maxDeliveryAttempts', options.maxDeliveryAttempts, {
      min: 1,
      max: 1000,
      fallback: ROCKETMQ_DEFAULT_MAX_ATTEMPTS,
    }),
    onSettled: options.onSettled,
  };
}

function nonEmpty(value: unknown): boolean {
  return typeof value === 'string' && value.trim().length > 0;
}
