/**
 * Where channels come from. With a URL the transport owns its connections: it opens each on first use,
 * and after a drop (a broker restart, a network cut) reconnects with core's `backoffDelay`, while the
 * subscriptions wait for it and then re-declare and re-subscribe. A connection the user gave is used
 * as it is, and never closed by us.
 */
import type { EventEmitter } from 'node:events';
import { backoffDelay, sleepUnless } from '@idempotent-mq/core/adapter';
import {
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  connect,
  type RecoveringChannelModel,
} from 'amqplib';
import { messageOf, RabbitMQConnectionError } from './errors.js';
import type { ConnectionTarget, ResolvedConnectionOptions } from './options.js';

/** A supply of channels on one (logical) connection. */
export interface ConnectionSource {
  /** Where it connects, the password masked, for messages. */
  readonly display: string;
  /** Connects if it has not yet; rejects with `RabbitMQConnectionError` if the broker cannot be reached. */
  open(): Promise<void>;
  /** A channel on a live connection, waiting through a reconnection; rejects once closed, or when `signal` aborts. */
  channel(signal?: AbortSignal): Promise<Channel>;
  /** The same, in confirm mode (publisher confirms). */
  confirmChannel(signal?: AbortSignal): Promise<ConfirmChannel>;
  /** Closes what it owns (a connection given to it stays open). */
  close(): Promise<void>;
  /** Test double of SIGKILL: drops the socket without a word to the broker, and never reconnects. */
  kill(): void;
}

/** The source for resolved connection options; `role` names it in logs ('RabbitMQPublisher', …). */
export function connectionSource(options: ResolvedConnectionOptions, role: string): ConnectionSource {
  return options.target.kind === 'url'
    ? new OwnedConnection(options.target, options, role)
    : new GivenConnection(options.target.connection, options, options.target.display);
}

/** A connection of our own, reopened after every drop until closed. */
class OwnedConnection implements ConnectionSource {
  readonly display: string;
  #model: ChannelModel | undefined;
  #opening: Promise<ChannelModel> | undefined;
  #reconnecting = false;
  #closed = false;
  readonly #changes = new Set<() => void>();
  readonly #closing = new AbortController();

  constructor(
    private readonly target: Extract<ConnectionTarget, { kind: 'url' }>,
    private readonly options: ResolvedConnectionOptions,
    private readonly role: string,
  ) {
    this.display = target.display;
  }

  async open(): Promise<void> {
    await this.#live();
  }

  async channel(signal?: AbortSignal): Promise<Channel> {
    return (await this.#live(signal)).createChannel();
  }

  async confirmChannel(signal?: AbortSignal): Promise<ConfirmChannel> {
    return (await this.#live(signal)).createConfirmChannel();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#closing.abort();
    this.#changed();
    await this.#opening?.catch(() => undefined);
    const model = this.#model;
    this.#model = undefined;
    await model?.close().catch(() => undefined);
  }

  kill(): void {
    this.#closed = true;
    this.#closing.abort();
    this.#changed();
    const model = this.#model;
    this.#model = undefined;
    if (model) destroySocket(model);
  }

  /** The live connection: the first call connects (its failure is the caller's); a drop is waited out. */
  async #live(signal?: AbortSignal): Promise<ChannelModel> {
    for (;;) {
      if (this.#closed) throw new RabbitMQConnectionError(this.display, 'the connection was closed (stop())');
      if (signal?.aborted) throw new RabbitMQConnectionError(this.display, 'given up (stopping)');
      if (this.#model) return this.#model;
      if (!this.#reconnecting) {
        this.#opening ??= this.#connect().finally(() => {
          this.#opening = undefined;
        });
        return await this.#opening;
      }
      await this.#nextChange(signal);
    }
  }

  async #connect(): Promise<ChannelModel> {
    let model: ChannelModel;
    try {
      model = await connect(this.target.url, this.target.socketOptions);
    } catch (error) {
      throw new RabbitMQConnectionError(
        this.display,
        `${messageOf(error)}. Check the URL, the credentials and that the broker is up`,
        error,
      );
    }
    if (this.#closed) {
      await model.close().catch(() => undefined);
      throw new RabbitMQConnectionError(this.display, 'the connection was closed (stop())');
    }
    this.#adopt(model);
    return model;
  }

  #adopt(model: ChannelModel): void {
    const { logger } = this.options;
    this.#model = model;
    // amqplib throws an 'error' nobody listens to from its socket handler: always listen.
    model.on('error', (error: Error) => {
      if (!this.#closed) logger.warn(`${this.role} connection to ${this.display}: ${error.message}`);
    });
    model.on('blocked', (reason: string) =>
      logger.warn(`RabbitMQ blocked the ${this.role} connection (${reason}): its publishes wait meanwhile`),
    );
    model.on('unblocked', () => logger.info(`RabbitMQ unblocked the ${this.role} connection`));
    model.once('close', (error?: Error) => {
      if (this.#model !== model) return;
      this.#model = undefined;
      if (this.#closed) return;
      logger.warn(
        `${this.role} connection to ${this.display} lost (${error ? error.message : 'closed'}); reconnecting`,
      );
      void this.#reconnect();
    });
    this.#changed();
  }

  async #reconnect(): Promise<void> {
    this.#reconnecting = true;
    try {
      for (let n = 1; !this.#closed; n++) {
        await sleepUnless(backoffDelay(this.options.reconnectBackoff, n), this.#closing.signal);
        if (this.#closed) return;
        try {
          const model = await connect(this.target.url, this.target.socketOptions);
          if (this.#closed) {
            await model.close().catch(() => undefined);
            return;
          }
          this.#adopt(model);
          this.options.logger.info(`${this.role} connection back after ${n} attempt(s)`);
          return;
        } catch (error) {
          if (n === 1 || n % 10 === 0) {
            this.options.logger.warn(
              `${this.role} connection to ${this.display}: reconnection attempt ${n} failed: ${messageOf(error)}`,
            );
          }
        }
      }
    } finally {
      this.#reconnecting = false;
      this.#changed();
    }
  }

  #changed(): void {
    for (const wake of [...this.#changes]) wake();
  }

  #nextChange(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.#changes.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.#changes.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}

/** An event listener, as Node's EventEmitter types it. */
type Listener = Parameters<EventEmitter['on']>[1];

/** A connection the user gave: used, watched, never closed by us. */
class GivenConnection implements ConnectionSource {
  #closed = false;
  #lost = false;
  readonly #recovering: boolean;
  readonly #listeners: [string, Listener][] = [];

  constructor(
    private readonly model: ChannelModel | RecoveringChannelModel,
    options: ResolvedConnectionOptions,
    readonly display: string,
  ) {
    const { logger } = options;
    this.#recovering = typeof (model as Partial<RecoveringChannelModel>).waitForConnect === 'function';
    this.#listen('error', (error: Error) => {
      if (!this.#closed) logger.warn(`RabbitMQ: ${display}: ${error.message}`);
    });
    if (this.#recovering) {
      this.#listen('disconnect', (error: Error) =>
        logger.warn(`RabbitMQ: ${display} lost (${error?.message}); it reconnects by itself`),
      );
    } else {
      this.#listen('close', (error?: Error) => {
        this.#lost = true;
        if (this.#closed) return;
        logger.error(
          `RabbitMQ: ${display} closed (${error ? error.message : 'by its owner'}); it cannot be reopened, so ` +
            "its subscriptions stay down. Give the transport a 'url' (it then reconnects by itself) or a " +
            'recovering connection (amqplib `connect(url, { recovery: true })`)',
        );
      });
    }
  }

  async open(): Promise<void> {
    this.#check();
    if (this.#recovering) await (this.model as RecoveringChannelModel).waitForConnect();
  }

  async channel(signal?: AbortSignal): Promise<Channel> {
    this.#check();
    return untilAborted(this.model.createChannel(), signal, (ch) => ch.close().catch(() => undefined));
  }

  async confirmChannel(signal?: AbortSignal): Promise<ConfirmChannel> {
    this.#check();
    return untilAborted(this.model.createConfirmChannel(), signal, (ch) => ch.close().catch(() => undefined));
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const [event, listener] of this.#listeners) this.model.removeListener(event, listener);
  }

  kill(): void {
    this.#closed = true;
    if (this.#recovering) {
      throw new Error(
        'killTransport cannot kill a recovering connection given to the transport (it reconnects)',
      );
    }
    destroySocket(this.model as ChannelModel);
  }

  #check(): void {
    if (this.#closed) throw new RabbitMQConnectionError(this.display, 'the transport was stopped');
    if (this.#lost) throw new RabbitMQConnectionError(this.display, 'it was closed and cannot be reopened');
  }

  #listen(event: string, listener: Listener): void {
    this.model.on(event, listener);
    this.#listeners.push([event, listener]);
  }
}

/**
 * Ends a connection as a killed process would: the socket goes, no AMQP close is sent, so RabbitMQ
 * requeues every unacknowledged delivery of it (redelivered: true). amqplib then closes its side.
 */
function destroySocket(model: ChannelModel): void {
  const stream = (model.connection as unknown as { stream?: { destroy(error?: Error): void } }).stream;
  stream?.destroy(new Error('killed (test double of SIGKILL)'));
}

/** `promise`, or a rejection once `signal` aborts (what arrives late is handed to `late`). */
export function untilAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  late: (value: T) => unknown,
): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(new Error('given up (stopping)'));
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', abort);
        if (signal.aborted) late(value);
        else resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(error);
      },
    );
  });
}
