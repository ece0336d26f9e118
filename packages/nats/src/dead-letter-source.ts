/**
 * The dead letters the transport keeps in its dead-letter stream (`IMQ_DLQ`, subjects `imq.dlq.<group>`),
 * as the operator CLI reads and re-drives them (`idempotent-mq dlq list|redrive`): a `DeadLetterSource`
 * of core's shape. The stream is read by sequence (`STREAM.MSG.GET` with `next_by_subj`), with no
 * consumer at all: listing changes nothing on the server, whatever the stream's retention.
 */
import type { DeadLetter, DeadLetterSource, TransportMessage } from '@idempotent-mq/core/adapter';
import { decodeBody, enumOption, InvalidOptionError, integerOption } from '@idempotent-mq/core/adapter';
import {
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type MsgRequest,
  type StoredMsg,
} from '@nats-io/jetstream';
import { connect, headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { BODY_CODECS, type BodyCodec } from './codec.js';
import { messageOf, NatsStartupError } from './errors.js';
import {
  DLQ_ATTEMPT,
  DLQ_GROUP,
  DLQ_REASON,
  DLQ_SEQUENCE,
  DLQ_STREAM,
  DLQ_SUBJECT,
  keysOf,
  propertiesOf,
} from './headers.js';
import { checkName, checkSubject } from './nats-profile.js';
import {
  type NatsConnectionSource,
  type ResolvedConnectionSource,
  resolveConnectionSource,
} from './options.js';

/** Options of {@link natsDeadLetterSource}: which dead letters to read, and how to connect. */
export interface NatsDeadLetterSourceOptions extends NatsConnectionSource {
  /** The stream that keeps the dead letters, as the transport was told. @defaultValue `'IMQ_DLQ'` */
  readonly deadLetterStream?: string;
  /** Dead letters of group `g` are on `<deadLetterSubjectPrefix>.g`, as the transport was told. @defaultValue `'imq.dlq'` */
  readonly deadLetterSubjectPrefix?: string;
  /** Only this consumer group's dead letters. @defaultValue every group's in the stream */
  readonly consumerGroup?: string;
  /** How a letter's body is decoded for `letter.message.body` (a key function reads it). @defaultValue `'json'` */
  readonly codec?: BodyCodec;
  /** How long each request to JetStream (a read, the re-drive's publish, the delete) may take. @defaultValue `5000` */
  readonly timeoutMs?: number;
  /** The most letters `list()` reads, oldest first. @defaultValue `10000` */
  readonly maxLetters?: number;
}

/** The source's own option names (the connection's are checked with them). */
const OWN_OPTIONS = [
  'deadLetterStream',
  'deadLetterSubjectPrefix',
  'consumerGroup',
  'codec',
  'timeoutMs',
  'maxLetters',
];

const STREAM_NOT_FOUND = 10059;

/** The headers the transport adds to a dead letter: a re-driven copy goes without them. */
const DEAD_LETTER_HEADERS = new Set([
  DLQ_REASON,
  DLQ_SUBJECT,
  DLQ_STREAM,
  DLQ_SEQUENCE,
  DLQ_GROUP,
  DLQ_ATTEMPT,
]);

/**
 * The dead letters of the transport's dead-letter stream, for `idempotent-mq dlq` (name it in the
 * config's `deadLetters`). Options are checked now; the connection is opened on the first `list()`.
 *
 * - `list()` reads the stream by sequence, oldest first, and changes nothing. Each letter's `id` is
 *   `<stream>:<sequence>` in the dead-letter stream, stable while it waits; its `messageId` is the
 *   original's, `<stream>:<sequence>` as the transport named it.
 * - `redrive(letter)` reads the letter again by its sequence, publishes it to the subject it was first
 *   published to (the stream that captures that subject stores it; every consumer group on that
 *   subject gets it, and the groups that processed it answer it as a duplicate) with its body, keys and
 *   headers, without the dead-letter headers (JetStream counts its deliveries afresh from 1), **waits for
 *   the stream's ack**, and only then deletes the letter from the dead-letter stream. A crash between the
 *   two leaves the letter as well as the copy: a duplicate, never a loss, and a harmless one, since the
 *   consumer answers the second copy from its token as a duplicate (and `dlq redrive` skips a letter
 *   whose token is completed). The copy carries `Nats-Msg-Id: imq-redrive:<stream>:<sequence>`, so a second
 *   re-drive of the same letter within the topic stream's duplicate window is dropped by JetStream. A
 *   letter no longer in the stream is an error, and nothing is published.
 *
 * @example
 * ```js
 * // idempotent-mq.config.mjs
 * deadLetters: [{
 *   name: 'nats',
 *   source: () => natsDeadLetterSource({ servers: '127.0.0.1:4222', consumerGroup: 'billing' }),
 *   scope: 'v1:billing:PaymentConsumer.onMessage',
 * }]
 * ```
 */
export function natsDeadLetterSource(options: NatsDeadLetterSourceOptions = {}): DeadLetterSource {
  return new NatsDeadLetterStream(options);
}

interface Link {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly js: JetStreamClient;
}

/** The source behind {@link natsDeadLetterSource}: one dead-letter stream (one group's subject, or all). */
class NatsDeadLetterStream implements DeadLetterSource {
  readonly description: string;
  readonly #connection: ResolvedConnectionSource;
  readonly #stream: string;
  readonly #prefix: string;
  readonly #subject: string;
  readonly #codec: BodyCodec;
  readonly #timeoutMs: number;
  readonly #maxLetters: number;
  #link: Promise<Link> | undefined;

  constructor(options: NatsDeadLetterSourceOptions) {
    const where = 'natsDeadLetterSource';
    this.#connection = resolveConnectionSource(options, where, OWN_OPTIONS);
    this.#stream = checkName(options.deadLetterStream ?? 'IMQ_DLQ', `${where}.deadLetterStream`, 'stream');
    this.#prefix = checkSubject(
      options.deadLetterSubjectPrefix ?? 'imq.dlq',
      `${where}.deadLetterSubjectPrefix`,
      false,
    );
    const group = options.consumerGroup;
    if (group !== undefined) checkName(group, `${where}.consumerGroup`, 'consumer group');
    this.#subject = group === undefined ? `${this.#prefix}.>` : `${this.#prefix}.${group}`;
    this.#codec = enumOption(where, 'codec', options.codec, BODY_CODECS, 'json') as BodyCodec;
    this.#timeoutMs = integerOption(where, 'timeoutMs', options.timeoutMs, {
      min: 100,
      max: 600_000,
      fallback: 5000,
    });
    this.#maxLetters = integerOption(where, 'maxLetters', options.maxLetters, {
      min: 1,
      max: 1_000_000,
      fallback: 10_000,
    });
    this.description = `NATS stream ${this.#stream} (${this.#subject})`;
  }

  async list(): Promise<readonly DeadLetter[]> {
    const { jsm } = await this.#open();
    const info = await this.#info(jsm);
    const letters: DeadLetter[] = [];
    let seq = info.state.first_seq;
    while (letters.length < this.#maxLetters && seq <= info.state.last_seq) {
      // Typed as seq-or-last only; the server (2.9+) takes next_by_subj here too, wildcards included.
      const query = { seq, next_by_subj: this.#subject } as unknown as MsgRequest;
      const stored = await jsm.streams.getMessage(this.#stream, query);
      if (!stored) break;
      letters.push(this.#letterOf(stored));
      seq = stored.seq + 1;
    }
    return letters;
  }

  async redrive(letter: DeadLetter): Promise<void> {
    const seq = this.#sequenceOf(letter.id);
    const { jsm, js } = await this.#open();
    await this.#info(jsm);
    const stored = await jsm.streams.getMessage(this.#stream, { seq });
    const now = stored && this.#within(stored.subject) ? this.#letterOf(stored) : undefined;
    if (
      !stored ||
      !now ||
      now.topic !== letter.topic ||
      now.consumerGroup !== letter.consumerGroup ||
      now.messageId !== letter.messageId
    ) {
      throw new Error(
        `Dead letter ${letter.id} is no longer in stream ${this.#stream} (re-driven or removed since it was ` +
          'listed); nothing was published.',
      );
    }
    if (now.topic === '') {
      throw new Error(
        `Dead letter ${letter.id} has no ${DLQ_SUBJECT} header, so where it came from is unknown (it was not ` +
          'dead-lettered by NatsTransport); nothing was published.',
      );
    }
    const copy = headers();
    for (const name of stored.header?.keys() ?? []) {
      // Nats-* headers are the server's (the original's Nats-Msg-Id would make the stream drop the copy).
      if (DEAD_LETTER_HEADERS.has(name) || name.startsWith('Nats-')) continue;
      for (const value of stored.header.values(name)) copy.append(name, value);
    }
    try {
      await js.publish(now.topic, stored.data, {
        headers: copy,
        msgID: `imq-redrive:${this.#stream}:${seq}`,
        timeout: this.#timeoutMs,
      });
    } catch (error) {
      throw new Error(
        `Could not re-publish dead letter ${letter.id} to "${now.topic}": ${messageOf(error)}. It stays in ` +
          `stream ${this.#stream}.`,
        { cause: error },
      );
    }
    // Acknowledged by the topic's stream: only now may the letter leave the dead letters.
    let deleted: boolean;
    try {
      deleted = await jsm.streams.deleteMessage(this.#stream, seq, false);
    } catch (error) {
      throw new Error(notDeleted(letter.id, now.topic, this.#stream, messageOf(error)), { cause: error });
    }
    if (!deleted) throw new Error(notDeleted(letter.id, now.topic, this.#stream, 'the server said no'));
  }

  async close(): Promise<void> {
    const link = await this.#link?.catch(() => undefined);
    this.#link = undefined;
    if (!link || this.#connection.connection || link.nc.isClosed()) return;
    await link.nc.close().catch(() => undefined);
  }

  /** The connection and JetStream clients, opened once (again after a failed try). */
  #open(): Promise<Link> {
    this.#link ??= openLink(this.#connection, this.#timeoutMs).catch((error: unknown) => {
      this.#link = undefined;
      throw error;
    });
    return this.#link;
  }

  async #info(jsm: JetStreamManager) {
    try {
      return await jsm.streams.info(this.#stream);
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND) {
        throw new Error(
          `The dead-letter stream ${this.#stream} does not exist: no NatsTransport subscription has created it ` +
            'on this server, or deadLetterStream names another (the transport\'s "deadLetterStream" option).',
          { cause: error },
        );
      }
      throw error;
    }
  }

  #sequenceOf(id: string): number {
    const match = /^(.+):(\d+)$/.exec(id);
    const seq = match ? Number(match[2]) : Number.NaN;
    if (!match || match[1] !== this.#stream || !Number.isSafeInteger(seq) || seq < 1) {
      throw new InvalidOptionError(
        'redrive(letter).id',
        `a dead letter id of this source, "${this.#stream}:<sequence>", as list() answers it`,
        id,
      );
    }
    return seq;
  }

  #within(subject: string): boolean {
    return this.#subject.endsWith('.>') ? subject.startsWith(`${this.#prefix}.`) : subject === this.#subject;
  }

  #letterOf(stored: StoredMsg): DeadLetter {
    const h = stored.header;
    const topic = h?.get(DLQ_SUBJECT) ?? '';
    const group = h?.get(DLQ_GROUP) || stored.subject.slice(this.#prefix.length + 1);
    const stream = h?.get(DLQ_STREAM);
    const sequence = h?.get(DLQ_SEQUENCE);
    const messageId = stream && sequence ? `${stream}:${sequence}` : undefined;
    const reason = h?.get(DLQ_REASON);
    const attempt = Number(h?.get(DLQ_ATTEMPT));
    const deliveryAttempt = Number.isInteger(attempt) && attempt >= 1 ? attempt : undefined;
    const keys = keysOf(h);
    const decoded = decodeBody(this.#codec, stored.data);
    // A body the codec cannot read (often why it was dead-lettered) is shown as its bytes.
    const body = decoded.ok ? decoded.body : Buffer.from(stored.data);
    const message: TransportMessage = {
      messageId: messageId ?? `${this.#stream}:${stored.seq}`,
      topic,
      keys,
      body,
      properties: originalProperties(h),
      deliveryAttempt: deliveryAttempt ?? 1,
    };
    return {
      id: `${this.#stream}:${stored.seq}`,
      topic,
      consumerGroup: group,
      keys,
      ...(messageId ? { messageId } : {}),
      ...(reason ? { reason } : {}),
      deadLetteredAt: stored.time.getTime(),
      ...(deliveryAttempt !== undefined ? { deliveryAttempt } : {}),
      message,
    };
  }
}

async function openLink(source: ResolvedConnectionSource, timeoutMs: number): Promise<Link> {
  let nc = source.connection;
  const owned = nc === undefined;
  if (!nc) {
    const servers = source.servers ?? [];
    try {
      nc = await connect({ ...source.connectOptions, servers, timeout: source.startupTimeoutMs });
    } catch (error) {
      throw new NatsStartupError(
        `dead-letter source's connection to ${servers.join(', ')}`,
        // No full stop: the CLI ends the sentence it quotes this in.
        'Check that nats-server is up and that "servers" names its client port (4222 by default)',
        error,
      );
    }
  }
  try {
    return {
      nc,
      jsm: await jetstreamManager(nc, { timeout: timeoutMs }),
      js: jetstream(nc, { timeout: timeoutMs }),
    };
  } catch (error) {
    if (owned) await nc.close().catch(() => undefined);
    throw new NatsStartupError(
      'dead-letter source',
      'Run nats-server with JetStream on (-js) and check that the account has JetStream enabled',
      error,
    );
  }
}

/** The message's headers as a handler saw them: without the ones the dead-lettering added. */
function originalProperties(h: MsgHdrs | undefined): Record<string, string> {
  const properties = propertiesOf(h);
  for (const name of DEAD_LETTER_HEADERS) delete properties[name];
  return properties;
}

function notDeleted(id: string, topic: string, stream: string, why: string): string {
  return (
    `Dead letter ${id} was re-published to "${topic}" but could not be deleted from stream ${stream} (${why}): ` +
    'it is listed again, and re-driving it once more is answered by the consumer as a duplicate.'
  );
}
