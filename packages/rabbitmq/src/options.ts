/** Options of the transport and the publisher, documented field by field, validated once in their constructors. */
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
  MAX_TIMER_MS,
  type TransportLogger,
} from '@idempotent-mq/core/adapter';
import type { ChannelModel, Options, RecoveringChannelModel, SocketOptions } from 'amqplib';
import type { BodyCodec } from './codec.js';
import { checkHandOverFits, type ProfileSettings } from './rabbitmq-profile.js';
import { DEFAULT_RETRY_LADDER_MS } from './topology.js';

/** A logger the transport and the publisher write to; `console` fits, as does core's `ConsoleLogger`. */
export type RabbitMQLogger = TransportLogger;

/** How to reach RabbitMQ: a URL (the transport then owns and reconnects its connections), or your connection. */
export interface RabbitMQConnectionOptions {
  /**
   * `amqp://user:password@host:5672/vhost` (`amqps://` for TLS), or amqplib's connect options object.
   * The transport opens its own connections with it and reconnects them after a drop. Exclusive with
   * `connection`.
   */
  readonly url?: string | Options.Connect;
  /** amqplib's socket options for `url` (TLS `ca`/`cert`/`key`, `clientProperties`, `keepAlive` …). @defaultValue none */
  readonly socketOptions?: SocketOptions;
  /**
   * An open amqplib connection: what `connect(url)` answers, or a recovering one from
   * `connect(url, { recovery: … })`. It is yours: `stop()` closes only the channels opened on it. A plain
   * connection cannot be reopened, so after it drops the subscriptions stay down (logged as an error);
   * a recovering one reconnects by itself, and the subscriptions come back with it. Exclusive with `url`.
   */
  readonly connection?: ChannelModel | RecoveringChannelModel;
  /** How long a connection attempt may take (amqplib's socket `timeout`). @defaultValue `10000` */
  readonly connectTimeoutMs?: number;
  /**
   * Delay between reconnection attempts (and between re-subscriptions after a channel closed), by
   * consecutive failure; core's `Backoff`. @defaultValue `{ initialMs: 100, maxMs: 5000 }` (multiplier 2, jitter ±20%)
   */
  readonly reconnectBackoff?: Backoff;
  /** Where warnings go. @defaultValue `console` warnings and errors */
  readonly logger?: RabbitMQLogger;
}

/** Options of {@link RabbitMQTransport}. */
export interface RabbitMQTransportOptions extends RabbitMQConnectionOptions {
  /** How bodies are decoded for handlers; a listener's `codec` overrides it. @defaultValue `'json'` */
  readonly codec?: BodyCodec;
  /** The most messages handed to one `handle` call (those that arrive together). 1 to 1024. @defaultValue `16` */
  readonly batchSize?: number;
  /**
   * The server's `consumer_timeout` (RabbitMQ 3.8.15+; 30 min by default): it closes the channel of a
   * delivery left unacknowledged longer, and every delivery of that channel goes back to the queue. It
   * cannot be read over AMQP, so tell the transport; `false` when the server has it disabled.
   * @defaultValue `1800000` (RabbitMQ's default)
   */
  readonly consumerTimeoutMs?: number | false;
  /**
   * A delivery whose handler is still running this long after it arrived is **handed back**: a copy goes
   * to the group's queue with `deliveryAttempt + 1` (a lost lease counts, as a crash does), the original
   * is acked, and the handler's late settlement is dropped. So `consumer_timeout` never closes the
   * channel and takes the other deliveries with it. Must leave a settlement's time before
   * `consumerTimeoutMs`. A listener may set its own (`@RabbitMQListener({ handOverAfterMs })`).
   * @defaultValue `consumerTimeoutMs` − a settlement's budget − 10% (about 26 min); none with `consumerTimeoutMs: false`
   */
  readonly handOverAfterMs?: number;
  /** How long a publish (a retry copy, a dead letter) waits for RabbitMQ's confirm. @defaultValue `10000` */
  readonly confirmTimeoutMs?: number;
  /** Tries of a settlement's publish before the delivery is handed back with basic.nack(requeue). 1 to 10. @defaultValue `3` */
  readonly settleAttempts?: number;
  /**
   * Retry delay of a batch whose handler threw (or answered malformed settlements), by delivery attempt;
   * such a retry spends an attempt. Core's `Backoff`. @defaultValue `{ initialMs: 1000, maxMs: 60000 }`
   */
  readonly failureBackoff?: Backoff;
  /**
   * The steps a retry delay is rounded up to, in ms, ascending: one TTL queue per step used, so the number
   * of queues stays bounded. The top step is the profile's `maxRetryDelayMs`. At most 64 steps.
   * @defaultValue {@link DEFAULT_RETRY_LADDER_MS}: 50 ms … 24 h, about ×1.5 apart
   */
  readonly retryLadderMs?: readonly number[];
  /** Called after each settlement is carried out (or dropped, or failed): for metrics, alerts and tests. */
  readonly onSettled?: (event: SettledEvent) => void;
}

/** What happened to one delivery. */
export interface SettledEvent extends CoreSettledEvent {
  /** Where the copy was published (a retry queue, the group's queue, the dead-letter queue). */
  readonly queue?: string;
  /**
   * Set when nothing was done: `channelClosed`, the delivery's channel closed before its settlement
   * (RabbitMQ gives the message back to the queue; its delivery tag is never acked on another channel);
   * `handedOver`, the message was handed back while its handler ran past `handOverAfterMs`.
   */
  readonly dropped?: 'channelClosed' | 'handedOver';
}

/** Where connections come from, resolved. */
export type ConnectionTarget =
  | {
      readonly kind: 'url';
      readonly url: string | Options.Connect;
      readonly socketOptions: SocketOptions;
      readonly display: string;
    }
  | {
      readonly kind: 'connection';
      readonly connection: ChannelModel | RecoveringChannelModel;
      readonly display: string;
    };

/** @internal */
export interface ResolvedConnectionOptions {
  readonly target: ConnectionTarget;
  readonly reconnectBackoff: Required<Backoff>;
  readonly logger: RabbitMQLogger;
}

/** @internal */
export interface ResolvedTransportOptions extends ResolvedConnectionOptions, ProfileSettings {
  readonly codec: BodyCodec;
  readonly batchSize: number;
  readonly handOverAfterMs: number | undefined;
  readonly confirmTimeoutMs: number;
  readonly settleAttempts: number;
  readonly failureBackoff: Required<Backoff>;
  readonly onSettled?: (event: SettledEvent) => void;
}

/** Between the tries of one settlement's publish: short, since the delivery is held meanwhile. */
export const SETTLE_RETRY_BACKOFF: Required<Backoff> = {
  initialMs: 200,
  maxMs: 2000,
  multiplier: 2,
  jitter: 0.2,
};

/** The names every client of ours takes (see {@link RabbitMQConnectionOptions}). */
const CONNECTION_OPTIONS: readonly string[] = [
  'url',
  'socketOptions',
  'connection',
  'connectTimeoutMs',
  'reconnectBackoff',
  'logger',
];

const TRANSPORT_OPTIONS: readonly string[] = [
  'codec',
  'batchSize',
  'consumerTimeoutMs',
  'handOverAfterMs',
  'confirmTimeoutMs',
  'settleAttempts',
  'failureBackoff',
  'retryLadderMs',
  'onSettled',
];

/**
 * @internal Checks the connection options of a transport or a publisher (`prefix` names it in errors):
 * an options object whose names are all the connection's or one of `ownNames`, each option valid.
 * Without `ownNames` the caller checks the names itself (a client with options of its own elsewhere).
 */
export function resolveConnectionOptions(
  options: RabbitMQConnectionOptions,
  prefix: string,
  ownNames?: readonly string[],
): ResolvedConnectionOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError(prefix, 'an options object', options);
  }
  if (ownNames) checkOptionsObject(options, [...CONNECTION_OPTIONS, ...ownNames], prefix);
  const { url, connection, socketOptions } = options;
  const urlHint =
    "an AMQP URL such as 'amqp://guest:guest@127.0.0.1:5672' (or amqplib's connect options object), " +
    "or an open amqplib connection as 'connection'";
  if (url !== undefined && connection !== undefined) {
    throw new InvalidOptionError(
      `${prefix}.connection`,
      "either 'url' or 'connection', not both",
      '(both set)',
    );
  }
  const logger = loggerOption(prefix, 'logger', options.logger);
  const connectTimeoutMs = integerOption(prefix, 'connectTimeoutMs', options.connectTimeoutMs, {
    min: 100,
    max: 600_000,
    fallback: 10_000,
  });
  const reconnectBackoff = backoffOption(prefix, 'reconnectBackoff', options.reconnectBackoff, {
    initialMs: 100,
    maxMs: 5000,
  });
  let target: ConnectionTarget;
  if (connection !== undefined) {
    const c = connection as Partial<ChannelModel> | null;
    if (typeof c?.createChannel !== 'function' || typeof c.createConfirmChannel !== 'function') {
      throw new InvalidOptionError(
        `${prefix}.connection`,
        'an amqplib connection (what `await connect(url)` answers, with or without `{ recovery }`)',
        connection,
      );
    }
    if (socketOptions !== undefined) {
      throw new InvalidOptionError(
        `${prefix}.socketOptions`,
        "no socket options with 'connection' (they apply when the transport connects with 'url')",
        socketOptions,
      );
    }
    target = { kind: 'connection', connection, display: describeGiven(connection) };
  } else {
    if (url === undefined || url === null || url === '')
      throw new InvalidOptionError(`${prefix}.url`, urlHint, url);
    const display = checkUrl(url, `${prefix}.url`, urlHint);
    if (socketOptions !== undefined && (typeof socketOptions !== 'object' || socketOptions === null)) {
      throw new InvalidOptionError(
        `${prefix}.socketOptions`,
        "amqplib's socket options object",
        socketOptions,
      );
    }
    if (socketOptions && 'recovery' in socketOptions) {
      throw new InvalidOptionError(
        `${prefix}.socketOptions.recovery`,
        "nothing: with 'url' the transport reconnects by itself (pass your own recovering connection " +
          "as 'connection' to use amqplib's recovery instead)",
        (socketOptions as { recovery?: unknown }).recovery,
      );
    }
    target = {
      kind: 'url',
      url,
      socketOptions: { timeout: connectTimeoutMs, ...socketOptions },
      display,
    };
  }
  return { target, reconnectBackoff, logger: logger ?? CONSOLE_WARNINGS };
}

/** @internal */
export function resolveTransportOptions(options: RabbitMQTransportOptions): ResolvedTransportOptions {
  const prefix = 'RabbitMQTransport';
  const connection = resolveConnectionOptions(options, prefix, TRANSPORT_OPTIONS);
  const codec = codecOption(prefix, 'codec', options.codec, 'json');
  const consumerTimeoutMs = orFalse(options.consumerTimeoutMs, (value) =>
    integerOption(prefix, 'consumerTimeoutMs', value, { min: 1000, max: MAX_TIMER_MS, fallback: 1_800_000 }),
  );
  const confirmTimeoutMs = integerOption(prefix, 'confirmTimeoutMs', options.confirmTimeoutMs, {
    min: 100,
    max: 600_000,
    fallback: 10_000,
  });
  const settleAttempts = integerOption(prefix, 'settleAttempts', options.settleAttempts, {
    min: 1,
    max: 10,
    fallback: 3,
  });
  const settleBudgetMs =
    settleAttempts * confirmTimeoutMs + (settleAttempts - 1) * SETTLE_RETRY_BACKOFF.maxMs;
  const retryLadderMs = checkLadder(options.retryLadderMs, `${prefix}.retryLadderMs`);
  const settings: ProfileSettings = { consumerTimeoutMs, settleBudgetMs, retryLadderMs };
  let handOverAfterMs: number | undefined;
  if (options.handOverAfterMs !== undefined) {
    handOverAfterMs = integerOption(prefix, 'handOverAfterMs', options.handOverAfterMs, {
      min: 100,
      max: MAX_TIMER_MS,
    }) as number;
    checkHandOverFits(handOverAfterMs, `${prefix}.handOverAfterMs`, settings);
  } else if (consumerTimeoutMs !== false) {
    handOverAfterMs = consumerTimeoutMs - settleBudgetMs - Math.floor(consumerTimeoutMs / 10);
    if (handOverAfterMs < 100) {
      throw new InvalidOptionError(
        `${prefix}.consumerTimeoutMs`,
        `at least ${Math.ceil(((settleBudgetMs + 100) * 10) / 9)} ms with confirmTimeoutMs ${confirmTimeoutMs} ` +
          `and settleAttempts ${settleAttempts} (a message must be handed back and confirmed before the ` +
          'server closes its channel), or set handOverAfterMs yourself',
        consumerTimeoutMs,
      );
    }
  }
  functionOption(prefix, 'onSettled', options.onSettled);
  return {
    ...connection,
    ...settings,
    codec,
    batchSize: integerOption(prefix, 'batchSize', options.batchSize, { min: 1, max: 1024, fallback: 16 }),
    handOverAfterMs,
    confirmTimeoutMs,
    settleAttempts,
    failureBackoff: backoffOption(prefix, 'failureBackoff', options.failureBackoff, {
      initialMs: 1000,
      maxMs: 60_000,
    }),
    onSettled: options.onSettled,
  };
}

/** `false`, or what `check` makes of the value; a refusal says that `false` is accepted too. */
function orFalse(value: unknown, check: (value: unknown) => number): number | false {
  if (value === false) return false;
  try {
    return check(value);
  } catch (error) {
    if (!(error instanceof InvalidOptionError)) throw error;
    throw new InvalidOptionError(error.option, `${error.accepted} or false`, value);
  }
}

function checkLadder(value: unknown, option: string): readonly number[] {
  if (value === undefined) return DEFAULT_RETRY_LADDER_MS;
  const accepted = 'an ascending array of 1 to 64 integers from 1 to 2147483647 (ms)';
  if (!Array.isArray(value) || value.length === 0 || value.length > 64) {
    throw new InvalidOptionError(option, accepted, value);
  }
  value.forEach((step: unknown, i) => {
    const previous = i > 0 ? (value[i - 1] as number) : 0;
    if (typeof step !== 'number' || !Number.isInteger(step) || step <= previous || step > 2 ** 31 - 1) {
      throw new InvalidOptionError(`${option}[${i}]`, accepted, step);
    }
  });
  return Object.freeze([...(value as number[])]);
}

/** Checks a URL (string or amqplib's object) and answers how to show it, the password masked. */
function checkUrl(url: string | Options.Connect, option: string, hint: string): string {
  if (typeof url === 'string') {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new InvalidOptionError(option, hint, url.replace(/:[^:@/]*@/, ':***@'));
    }
    if (parsed.protocol !== 'amqp:' && parsed.protocol !== 'amqps:') {
      throw new InvalidOptionError(option, `${hint} (amqp:// or amqps://)`, masked(parsed));
    }
    return masked(parsed);
  }
  if (typeof url !== 'object' || url === null) throw new InvalidOptionError(option, hint, url);
  const { protocol = 'amqp', hostname = 'localhost', port, username = 'guest', vhost = '/' } = url;
  if (protocol !== 'amqp' && protocol !== 'amqps') {
    throw new InvalidOptionError(`${option}.protocol`, "'amqp' or 'amqps'", protocol);
  }
  if (typeof hostname !== 'string' || hostname === '') {
    throw new InvalidOptionError(`${option}.hostname`, 'a host name', hostname);
  }
  integerOption(option, 'port', port, { min: 1, max: 65_535 });
  return `${protocol}://${username}:***@${hostname}:${port ?? (protocol === 'amqps' ? 5671 : 5672)}${vhost === '/' ? '' : `/${vhost}`}`;
}

function masked(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password) copy.password = '***';
  return copy.href.replace(/\/$/, '');
}

function describeGiven(connection: ChannelModel | RecoveringChannelModel): string {
  const server = (connection as Partial<ChannelModel>).connection?.serverProperties;
  return server ? `the connection given (${server.product} ${server.version})` : 'the connection given';
}
