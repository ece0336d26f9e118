/**
 * Thin subclasses of the rocketmq-client-nodejs 1.0.8 clients that work around what we measured (all but
 * the first two are shared by both, through `closable`):
 * - `ack` checks the entry's status too (the client checks only the response's);
 * - dead-lettering goes through ForwardMessageToDeadLetterQueue, which the SimpleConsumer does not expose;
 * - `shutdown()` throws half-way when the proxy is down (its termination notice fails), leaving the
 *   telemetry stream reconnecting and the process alive: `close()` then skips the notice and finishes;
 * - `startup()` waits forever on a server that never sends settings, and misses settings that arrive
 *   before it starts waiting: `startClient` bounds it and asks again;
 * - the telemetry stream's late CANCELLED error after shutdown would crash the process: it is caught;
 * - a closed client comes back to life: the telemetry session renews its stream one second after an error
 *   or an end, and `startup()` still fetching routes pushes its timers after `shutdown()` cleared them.
 *   Once `close()` starts, a renewed stream is an inert local one (no connection), route fetches fail
 *   and start-up back-off sleeps end at once, so nothing keeps the process alive after `close()`;
 * - the client closes its logger at the end of `shutdown()` and the producer then logs once more: its
 *   default egg-logger, closed, printed a "log stream had been closed" stack trace to stderr on every
 *   stop. The client gets a logger it cannot close; `close()` closes the default one once it is done.
 */

import { Duplex } from 'node:stream';
import { withTimeout } from '@idempotent-mq/core/adapter';
import {
  type BaseClient,
  FilterExpression,
  getDefaultLogger,
  type ILogger,
  type MessageView,
  Producer,
  type ProducerOptions,
  SimpleConsumer,
  type SimpleConsumerOptions,
  StatusChecker,
} from 'rocketmq-client-nodejs';
import { RocketMQStartupError } from './errors.js';
import type { ResolvedClientOptions, RocketMQLogger } from './options.js';
import { pbDefinition, pbService } from './proto.js';

/** RocketMQ's code for a receipt handle that is stale or expired: the ack or change cannot apply. */
export const INVALID_RECEIPT_HANDLE = 40013;

type Endpoints = MessageView['endpoints'];
type RouteEndpoints = Endpoints[];
type TelemetryStream = ReturnType<SimpleConsumer['createTelemetryStream']>;

/** What `closable` adds to a client, on top of the workaround overrides (see the header). */
interface ClosableClient {
  /** True once `close()` was called: the client opens nothing any more. */
  readonly closed: boolean;
  /** Sends the settings again to every endpoint (see `startClient`: the first answer can be missed). */
  resyncSettings(): void;
  /**
   * Shuts down (once; later calls wait for the first); never throws, never leaves a timer or a stream
   * behind. `notify: false` skips the termination notice, as a process that died would.
   */
  close(logger: RocketMQLogger, options?: { readonly notify?: boolean }): Promise<void>;
}

/** The client class `Base` with the same constructor, its instances `ClosableClient`s too. */
type ClosableClass<A extends unknown[], C> = new (...args: A) => C & ClosableClient;

/**
 * Adds `ClosableClient` and the workaround overrides the base client calls to a rocketmq-client-nodejs
 * client class. The declared return type keeps the class expression (its `#private` fields and
 * `protected` overrides) out of declaration emit, which could not write it (TS4094).
 */
function closable<A extends unknown[], C extends BaseClient>(
  Base: new (...args: A) => C,
): ClosableClass<A, C> {
  // Abstract only to the compiler, which sees BaseClient; at run time it extends the concrete `Base`.
  abstract class Closable extends (Base as unknown as typeof BaseClient) implements ClosableClient {
    #skipTerminationNotice = false;
    #closing: Promise<void> | undefined;

    get closed(): boolean {
      return this.#closing !== undefined;
    }

    resyncSettings(): void {
      if (this.closed) return;
      for (const endpoints of this.getTotalRouteEndpoints()) {
        this.telemetry(endpoints, this.settingsCommand());
      }
    }

    override createTelemetryStream(endpoints: Endpoints): TelemetryStream {
      return this.closed
        ? inertTelemetryStream()
        : guardTelemetryStream(super.createTelemetryStream(endpoints));
    }

    /**
     * Route fetches of a closed client fail (and forget any route), so that a `startup()` still fetching
     * when `close()` ran rejects instead of pushing its periodic timers after `shutdown()` cleared them.
     */
    protected override async updateRoutes(): Promise<void> {
      this.#refuseIfClosed();
      await super.updateRoutes();
      this.#refuseIfClosed();
    }

    #refuseIfClosed(): void {
      if (!this.closed) return;
      this.topicRouteCache.clear();
      throw new Error('the RocketMQ client is closed');
    }

    protected override sleep(ms: number): Promise<void> {
      return this.closed ? Promise.resolve() : super.sleep(ms);
    }

    protected override getTotalRouteEndpoints(): RouteEndpoints {
      return this.#skipTerminationNotice ? [] : super.getTotalRouteEndpoints();
    }

    close(logger: RocketMQLogger, options?: { readonly notify?: boolean }): Promise<void> {
      if (options?.notify === false && this.#closing === undefined) this.#skipTerminationNotice = true;
      this.#closing ??= this.#shutDown(logger);
      return this.#closing;
    }

    async #shutDown(logger: RocketMQLogger): Promise<void> {
      try {
        await this.#shutdownOnce(logger);
      } finally {
        (this.logger as ClientLogger)[closeLog]?.();
      }
    }

    async #shutdownOnce(logger: RocketMQLogger): Promise<void> {
      try {
        await this.shutdown();
      } catch (error) {
        // The termination notice failed (the proxy is down) and shutdown stopped half-way: finish it without.
        logger.warn(`RocketMQ client shutdown could not notify the proxy (${String(error)}); closing anyway`);
        this.#skipTerminationNotice = true;
        try {
          await this.shutdown();
        } catch (again) {
          logger.error(`RocketMQ client shutdown failed: ${String(again)}`);
        }
      }
    }
  }
  return Closable as unknown as ClosableClass<A, C>;
}

/**
 * The transport's SimpleConsumer: the client's, closable (see the header), with a strict ack, the
 * dead-letter forward the client does not expose, and the group's attempt limit as the proxy says it.
 * Internal: `RocketMQTransport` makes one per subscription through `createSimpleConsumer`.
 */
export class TransportSimpleConsumer extends closable(SimpleConsumer) {
  #groupMaxAttempts: number | undefined;

  /**
   * The deliveries after which the proxy says the group dead-letters a message (its settings'
   * `backoff_policy.max_attempts`: the group's `retryMaxTimes` + 1), once the consumer has started.
   * The 1.0.8 SimpleConsumer reads nothing from those settings, so it is taken as they arrive.
   */
  get groupMaxAttempts(): number | undefined {
    return this.#groupMaxAttempts;
  }

  override onSettingsCommand(...args: Parameters<SimpleConsumer['onSettingsCommand']>): void {
    const maxAttempts = args[1]?.getBackoffPolicy?.()?.getMaxAttempts?.();
    if (typeof maxAttempts === 'number' && maxAttempts > 0) this.#groupMaxAttempts = maxAttempts;
    super.onSettingsCommand(...args);
  }

  /** Acks one message and fails if the broker refused it, at the response or at the entry level. */
  async ackStrictly(view: MessageView): Promise<void> {
    const request = new pbService.AckMessageRequest()
      .setGroup(new pbDefinition.Resource().setName(this.getConsumerGroup()))
      .setTopic(new pbDefinition.Resource().setName(view.topic));
    request.addEntries().setMessageId(view.messageId).setReceiptHandle(view.receiptHandle);
    const response = (await this.ackMessageViaRpc(view.endpoints, request, this.requestTimeout)).toObject();
    StatusChecker.check(response.status);
    for (const entry of response.entriesList) StatusChecker.check(entry.status);
  }

  /** Moves a message to the group's dead-letter queue (`%DLQ%<group>`), as RocketMQ's push consumer does. */
  async forwardToDeadLetterQueue(
    view: MessageView,
    deliveryAttempt: number,
    maxAttempts: number,
  ): Promise<void> {
    const request = new pbService.ForwardMessageToDeadLetterQueueRequest()
      .setGroup(new pbDefinition.Resource().setName(this.getConsumerGroup()))
      .setTopic(new pbDefinition.Resource().setName(view.topic))
      .setReceiptHandle(view.receiptHandle)
      .setMessageId(view.messageId)
      .setDeliveryAttempt(deliveryAttempt)
      .setMaxDeliveryAttempts(maxAttempts);
    const response = (await this.forwardMessageToDeadLetterQueueViaRpc(
      view.endpoints,
      request,
      this.requestTimeout,
    )) as InstanceType<typeof pbService.ForwardMessageToDeadLetterQueueResponse>;
    StatusChecker.check(response.getStatus()?.toObject());
  }
}

/**
 * The publisher's Producer: the client's, closable (see the header). Internal: `RocketMQPublisher`
 * makes one at `start()` through `createProducer`.
 */
export class TransportProducer extends closable(Producer) {}

/**
 * The client's telemetry session drops every listener of its stream on release, then closes the channel;
 * the stream's late CANCELLED error would then have no listener and crash the process. Keep exactly one
 * listener that swallows it.
 *
 * `removeAllListeners` must be forwarded with the caller's exact arguments: called as
 * `removeAllListeners(undefined)` an EventEmitter removes nothing at all, which would leave the session's
 * error and end handlers on a released stream, so that its late error renews the stream of a closed
 * client, for ever (and each release would add one more swallowing listener).
 */
function guardTelemetryStream<S extends NodeJS.EventEmitter>(stream: S): S {
  const swallow = () => undefined;
  const keepSwallow = () => {
    if (!stream.listeners('error').includes(swallow)) stream.on('error', swallow);
  };
  keepSwallow();
  const removeAll = stream.removeAllListeners;
  stream.removeAllListeners = ((...args: [event?: string | symbol]) => {
    removeAll.apply(stream, args);
    keepSwallow();
    return stream;
  }) as typeof stream.removeAllListeners;
  return stream;
}

/**
 * What a closed client gets when its telemetry session renews its stream (the renewal is a timer the
 * client does not cancel): a local stream that takes writes, never ends and opens no connection.
 */
function inertTelemetryStream(): TelemetryStream {
  return new Duplex({
    objectMode: true,
    read() {},
    write(_chunk, _encoding, callback) {
      callback();
    },
  }) as unknown as TelemetryStream;
}

/** Closes the log a client was given, once `close()` has finished (see {@link clientLogger}). */
const closeLog = Symbol('closeLog');

/** A logger the client cannot close; `[closeLog]` closes the log behind it, when it is the client's own. */
interface ClientLogger extends ILogger {
  readonly [closeLog]?: () => void;
}

/**
 * What the client logs to: yours, or, without one, its default file log under
 * `$HOME/logs/rocketmq/`. Either way without a `close()`: the client closes its logger at the end of its
 * `shutdown()` and then logs once more (the producer's "Shutdown … successfully"), which a closed
 * egg-logger answers with a stack trace on stderr; and a logger of yours may be shared, so it stays
 * open. The default one is closed by `close()` once the client has finished.
 */
function clientLogger(logger: RocketMQLogger | undefined): ClientLogger {
  const target: ILogger = logger ?? getDefaultLogger();
  return {
    info: (...args: unknown[]) => target.info(...args),
    warn: (...args: unknown[]) => target.warn(...args),
    error: (...args: unknown[]) => target.error(...args),
    debug: (...args: unknown[]) => target.debug?.(...args),
    ...(logger === undefined ? { [closeLog]: () => target.close?.() } : {}),
  };
}

/** The client options rocketmq-client-nodejs takes, from ours. */
export function clientOptions(options: ResolvedClientOptions) {
  return {
    endpoints: options.endpoints,
    namespace: options.namespace,
    sslEnabled: options.sslEnabled,
    requestTimeout: options.requestTimeout,
    ...(options.sessionCredentials ? { sessionCredentials: { ...options.sessionCredentials } } : {}),
    logger: clientLogger(options.logger),
  };
}

export function createSimpleConsumer(
  options: ResolvedClientOptions,
  subscription: {
    topic: string;
    consumerGroup: string;
    filter: { tag?: string; sql?: string };
    awaitDurationMs: number;
  },
): TransportSimpleConsumer {
  const consumerOptions: SimpleConsumerOptions = {
    ...clientOptions(options),
    consumerGroup: subscription.consumerGroup,
    subscriptions: new Map([[subscription.topic, filterExpression(subscription.filter)]]),
    awaitDuration: subscription.awaitDurationMs,
    // Our loop retries receives with its own backoff; the client's own retry would only add latency.
    maxRetryAttempts: 1,
  };
  return new TransportSimpleConsumer(consumerOptions);
}

export function createProducer(
  options: ResolvedClientOptions,
  topics: readonly string[],
  maxAttempts: number,
): TransportProducer {
  const producerOptions: ProducerOptions = {
    ...clientOptions(options),
    topic: [...topics],
    maxAttempts,
  };
  return new TransportProducer(producerOptions);
}

/** A tag expression (`'*'` when blank), or a SQL92 expression on message properties. */
export function filterExpression(filter: { tag?: string; sql?: string }): FilterExpression {
  if (filter.sql !== undefined) return new FilterExpression(filter.sql.trim(), pbDefinition.FilterType.SQL);
  return new FilterExpression(filter.tag?.trim() || '*', pbDefinition.FilterType.TAG);
}

/**
 * Starts a client within `timeoutMs`. On failure or timeout the client is closed (so no timer or stream
 * keeps the process alive) and a `RocketMQStartupError` says which it was.
 */
export async function startClient(
  client: TransportSimpleConsumer | TransportProducer,
  role: string,
  options: ResolvedClientOptions,
  logger: RocketMQLogger,
): Promise<void> {
  const started = client.startup();
  // 1.0.8 resolves start-up on the first settings that arrive *after* it began waiting for them; with
  // several topics (or a quick proxy) the answer comes while routes are still being fetched and is
  // dropped, and start-up would hang. Asking again until it starts closes that window.
  const resync = setInterval(() => {
    try {
      client.resyncSettings();
    } catch {
      // the stream is being renewed; the next tick asks again
    }
  }, 250);
  try {
    await withTimeout(started, options.startupTimeoutMs, {
      error: () => new RocketMQStartupError(role, options.endpoints, options.startupTimeoutMs),
    });
  } catch (error) {
    clearInterval(resync);
    // A start-up still under way when the client closes either fails (routes) or never completes
    // (settings); its rejection is expected and ignored.
    started.catch(() => undefined);
    await client.close(logger);
    throw error instanceof RocketMQStartupError
      ? error
      : new RocketMQStartupError(role, options.endpoints, undefined, error);
  } finally {
    clearInterval(resync);
  }
}

/** The response code of a client or gRPC error, if it has one. */
export function errorCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}
