/**
 * `NatsPublisher`: publishes to JetStream with a business key, always, and waits for the stream's ack.
 * The key goes in `Nats-Msg-Id`, so the stream's duplicate window drops an exact resend (a retry after
 * a lost publish ack), and every key in a header of ours, so consumers read them back as `keys`.
 */
import { checkOptionsObject, codecOption, integerOption, publishedKeys } from '@idempotent-mq/core/adapter';
import { type JetStreamClient, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { type BodyCodec, encodeBody } from './codec.js';
import { BodyEncodingError, MissingMessageKeyError, NatsStartupError, NotStartedError } from './errors.js';
import { encodeKeys, KEYS_HEADER } from './headers.js';
import { checkSubject } from './nats-profile.js';
import {
  type NatsConnectionSource,
  type ResolvedConnectionSource,
  resolveConnectionSource,
} from './options.js';

/** Options of {@link NatsPublisher}. */
export interface NatsPublisherOptions extends NatsConnectionSource {
  /** How bodies are encoded. @defaultValue `'json'` */
  readonly codec?: BodyCodec;
  /** How long a publish waits for the stream's ack. @defaultValue `5000` */
  readonly timeoutMs?: number;
  /**
   * Tries of one publish when no stream answers yet (JetStream starting, a reconnect); each resend has
   * the same `Nats-Msg-Id`, so the stream keeps one copy. @defaultValue `3`
   */
  readonly retries?: number;
}

const PUBLISHER_OPTIONS: readonly string[] = ['codec', 'timeoutMs', 'retries'];

/** One message to publish. */
export interface PublishRequest<B = unknown> {
  /** The subject (no wildcards); a stream must capture it. */
  readonly topic: string;
  /** The business key(s): required, non-blank, one line each. */
  readonly keys: string | readonly string[];
  readonly body: B;
  /** Headers of your own, sent as they are. */
  readonly headers?: Readonly<Record<string, string>>;
}

const REQUEST_FIELDS: readonly string[] = ['topic', 'keys', 'body', 'headers'];

/** What the stream said of a publish. */
export interface PublishReceipt {
  /** The stream that stored it, and its sequence there. */
  readonly stream: string;
  readonly seq: number;
  readonly keys: readonly string[];
  /**
   * The stream already held a message with this `Nats-Msg-Id` (these keys) within its duplicate window
   * (2 min by default): this one was dropped, and `seq` is the first one's.
   */
  readonly duplicate: boolean;
}

/**
 * Publishes keyed messages to JetStream and waits for each stream ack.
 *
 * @example
 * ```ts
 * const publisher = new NatsPublisher({ servers: '127.0.0.1:4222' });
 * await publisher.start();
 * await publisher.send({ topic: 'orders.created', keys: order.id, body: order });
 * await publisher.stop();
 * ```
 */
export class NatsPublisher {
  readonly #source: ResolvedConnectionSource;
  readonly #codec: BodyCodec;
  readonly #timeoutMs: number;
  readonly #retries: number;
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #starting: Promise<void> | undefined;

  /** Validates every option now, naming the one that is wrong. */
  constructor(options: NatsPublisherOptions) {
    const prefix = 'NatsPublisher';
    this.#source = resolveConnectionSource(options, prefix, PUBLISHER_OPTIONS);
    this.#codec = codecOption(prefix, 'codec', options.codec, 'json');
    this.#timeoutMs = integerOption(prefix, 'timeoutMs', options.timeoutMs, {
      min: 100,
      max: 600_000,
      fallback: 5000,
    });
    this.#retries = integerOption(prefix, 'retries', options.retries, { min: 1, max: 100, fallback: 3 });
  }

  /**
   * Connects (with `servers`) and checks that JetStream answers. Rejects with `NatsStartupError` within
   * `startupTimeoutMs`.
   */
  async start(): Promise<void> {
    if (this.#js) return;
    this.#starting ??= this.#start().finally(() => {
      this.#starting = undefined;
    });
    await this.#starting;
  }

  async #start(): Promise<void> {
    const source = this.#source;
    let nc = source.connection;
    if (!nc) {
      const servers = source.servers ?? [];
      try {
        nc = await connect({ ...source.connectOptions, servers, timeout: source.startupTimeoutMs });
      } catch (error) {
        throw new NatsStartupError(
          `publisher's connection to ${servers.join(', ')}`,
          'Check that nats-server is up and that "servers" names its client port (4222 by default).',
          error,
        );
      }
    }
    try {
      await jetstreamManager(nc, { timeout: this.#timeoutMs });
    } catch (error) {
      if (!source.connection) await nc.close().catch(() => undefined);
      throw new NatsStartupError(
        'publisher',
        'Run nats-server with JetStream on (-js) and check that the account has JetStream enabled.',
        error,
      );
    }
    this.#nc = nc;
    this.#js = jetstream(nc, { timeout: this.#timeoutMs });
  }

  /**
   * Publishes one message and waits for the stream's ack. Refuses, before any I/O, a message without a
   * business key; rejects if no stream captures the subject or none answers within `timeoutMs`.
   */
  async send<B>(request: PublishRequest<B>): Promise<PublishReceipt> {
    const keys = publishedKeys(
      request?.keys,
      (reason) => new MissingMessageKeyError(String(request?.topic), reason),
      { singleLine: true },
    );
    checkOptionsObject(request, REQUEST_FIELDS, 'NatsPublisher.send');
    checkSubject(request.topic, 'NatsPublisher.send.topic', false);
    let body: Buffer;
    try {
      body = encodeBody(this.#codec, request.body);
    } catch (error) {
      throw new BodyEncodingError(request.topic, this.#codec, error);
    }
    const js = this.#js;
    if (!js) throw new NotStartedError('NatsPublisher');
    const h = headers();
    for (const [name, value] of Object.entries(request.headers ?? {})) h.set(name, value);
    h.set(KEYS_HEADER, encodeKeys(keys));
    const ack = await js.publish(request.topic, body, {
      // One key as it is, so that other producers' and tools' ids line up; several as their JSON.
      msgID: keys.length === 1 ? (keys[0] as string) : encodeKeys(keys),
      headers: h,
      timeout: this.#timeoutMs,
      retries: this.#retries,
    });
    return { stream: ack.stream, seq: ack.seq, keys, duplicate: ack.duplicate };
  }

  /** Drains and closes the connection if the publisher opened it (a start under way finishes first). */
  async stop(): Promise<void> {
    await this.#starting?.catch(() => undefined);
    const nc = this.#nc;
    this.#nc = undefined;
    this.#js = undefined;
    if (!nc || this.#source.connection || nc.isClosed()) return;
    await nc.drain().catch(() => nc.close());
  }
}
