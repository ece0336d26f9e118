/**
 * A confirm-mode channel whose `publish` resolves only once RabbitMQ has taken the message: confirmed
 * with basic.ack and not returned as unroutable. Anything else rejects with `RabbitMQPublishError`
 * (nacked, unroutable, no confirm in time, channel closed), so a caller acks nothing it was not sure of.
 */
import { randomUUID } from 'node:crypto';
import type { ConfirmChannel, Message, Options } from 'amqplib';
import { messageOf, type PublishFailure, RabbitMQPublishError } from './errors.js';
import { HEADERS } from './topology.js';

/** One confirm channel with its pending publishes, the returns matched to them, and what it has declared. */
export class ConfirmedChannel {
  /** Publishes awaiting their confirm, by publish id; `returned` once RabbitMQ sent it back. */
  readonly #pending = new Map<string, { returned: boolean }>();
  #closed = false;
  /** Names this channel has declared already (a new channel declares again). */
  readonly declared = new Set<string>();

  constructor(
    readonly channel: ConfirmChannel,
    onError: (error: Error) => void,
  ) {
    channel.on('return', (message: Message) => {
      const id = message.properties.headers?.[HEADERS.publishId];
      const pending = typeof id === 'string' ? this.#pending.get(id) : undefined;
      if (pending) pending.returned = true;
    });
    // amqplib throws an 'error' nobody listens to from its socket handler: always listen.
    channel.on('error', onError);
    channel.on('close', () => {
      this.#closed = true;
    });
  }

  /** Closed by us, by the server or with its connection: open a new one. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Publishes and waits for the confirm. `mandatory` (the default) asks RabbitMQ to return a message no
   * queue receives, which rejects as `unroutable`.
   */
  publish(
    exchange: string,
    routingKey: string,
    content: Buffer,
    options: Options.Publish,
    timeoutMs: number,
  ): Promise<void> {
    const id = randomUUID();
    const state = { returned: false };
    this.#pending.set(id, state);
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (failure: PublishFailure, detail: string, cause?: unknown) =>
        done(new RabbitMQPublishError(exchange, routingKey, failure, detail, cause));
      const timer = setTimeout(
        () => fail('timeout', `no confirm from RabbitMQ within ${timeoutMs} ms`),
        timeoutMs,
      );
      function done(error?: RabbitMQPublishError) {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      }
      const confirmed = (error: unknown) => {
        this.#pending.delete(id);
        if (error) {
          const closed = /closed/i.test(messageOf(error)) || this.#closed;
          if (closed) fail('closed', 'the channel closed before RabbitMQ confirmed it', error);
          else fail('nacked', 'RabbitMQ refused it (basic.nack)', error);
        } else if (state.returned) {
          fail('unroutable', 'no queue is bound to receive it (RabbitMQ returned it)');
        } else done();
      };
      try {
        this.channel.publish(
          exchange,
          routingKey,
          content,
          { mandatory: true, ...options, headers: { ...options.headers, [HEADERS.publishId]: id } },
          confirmed,
        );
      } catch (error) {
        this.#pending.delete(id);
        fail('closed', `the channel is closed (${messageOf(error)})`, error);
      }
    });
  }

  /** Closes the channel; a publish not yet confirmed fails as `closed`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.channel.close().catch(() => undefined);
  }
}
