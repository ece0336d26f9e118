/**
 * `NatsTransport`: the broker side of the transport port on NATS JetStream (`@nats-io/jetstream` v3).
 *
 * One durable pull consumer (durable name = consumer group) and one fetch loop per subscription. The
 * path of a message, top to bottom: fetch (at most the free concurrency, so nothing waits unrenewed in
 * a buffer) → held: `working()` every `renewIntervalMs`, so JetStream does not redeliver it while it is
 * here → decode (a body that cannot be decoded is dead-lettered with the reason) → the subscription's
 * `handle` → its settlement, carried out as given: ack / `nak(delay)` / publish to the dead-letter
 * subject, then `term`. The registry decides; nothing here turns one settlement into another.
 *
 * The delivery attempt is JetStream's own `deliveryCount`: a `nak` and an `ack_wait` running out (a
 * crash) each add one. A wait (a retry that spends no attempt) therefore never goes back to JetStream:
 * the message stays here, renewed, and goes to `handle` again after the delay with the same count.
 *
 * JetStream does not fence a settlement to the delivery it answers: an ack sent after `ack_wait` ran
 * out is accepted even once the message went to another consumer. So a message this consumer could not
 * renew for most of `ack_wait` (the connection was down, the process froze) is stale: nothing is sent
 * for it, and JetStream's redelivery goes through the engine again. Nothing is acknowledged unless the
 * registry said so; a settlement that cannot reach the server leaves the message to come back.
 */
import {
  backoffDelay,
  carryOutInPlace,
  handleReceivedBatch,
  InvalidOptionError,
  type MessageTransport,
  type ReceivedMessage,
  type Settlement,
  type SubscriptionSpec,
  settlementsOf,
  type TransportMessage,
  type TransportProfile,
  withTimeout,
} from '@idempotent-mq/core/adapter';
import {
  type Consumer,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { connect, headers, type NatsConnection, nanos, type Status } from '@nats-io/transport-node';
import { type BodyCodec, decodeBody } from './codec.js';
import { messageOf, NatsLayoutConflictError, NatsStartupError, NotStartedError } from './errors.js';
import {
  DLQ_ATTEMPT,
  DLQ_GROUP,
  DLQ_REASON,
  DLQ_SEQUENCE,
  DLQ_STREAM,
  DLQ_SUBJECT,
  encodeKeys,
  headerValue,
  KEYS_HEADER,
  keysOf,
  NATS_MSG_ID,
  propertiesOf,
} from './headers.js';
import { ensureConsumer, ensureDeadLetterStream, ensureStream } from './jetstream-layout.js';
import { checkName, checkNatsListener, filterSubjectOf, natsProfile } from './nats-profile.js';
import {
  type NatsLogger,
  type NatsTransportOptions,
  type ResolvedTransportOptions,
  resolveTransportOptions,
  type SettledEvent,
} from './options.js';

/** Between tries of one ack / nak / dead-letter publish: short, since the message is held meanwhile. */
const SETTLE_RETRY_BACKOFF = { initialMs: 100, maxMs: 1000 } as const;

/** What an ack-protocol reply says of a delivery. */
type Reply =
  | { readonly kind: 'ack' }
  | { readonly kind: 'nak'; readonly delayMs: number }
  | { readonly kind: 'term' };

/** The reply's wire form: `+ACK`, `-NAK` (with `{"delay": ns}`), `+TERM`. */
function payloadOf(reply: Reply): string {
  if (reply.kind === 'ack') return '+ACK';
  if (reply.kind === 'term') return '+TERM';
  return reply.delayMs > 0 ? `-NAK ${JSON.stringify({ delay: nanos(reply.delayMs) })}` : '-NAK';
}

/** What a subscription reads and how, from its spec and the transport's options. */
interface Plan {
  readonly topic: string;
  readonly group: string;
  readonly filterSubject: string;
  readonly stream?: string;
  readonly codec: BodyCodec;
  readonly deliverPolicy: 'all' | 'new';
}

/**
 * The NATS JetStream transport: one durable pull consumer per subscription, settlements carried out
 * with JetStream's own acks (see the package README for the table and the layout).
 *
 * @example
 * ```ts
 * container.bind(MESSAGE_TRANSPORT).toConstantValue(new NatsTransport({ servers: '127.0.0.1:4222' }));
 * // or, on a connection you own: new NatsTransport({ connection: nc })
 * ```
 */
export class NatsTransport implements MessageTransport {
  /**
   * JetStream's limits and rules: 17 attempts by default (up to 1000: the consumer's `max_deliver` is
   * unlimited), retry delays up to 24.8 days, no redelivery horizon of its own, and its subject, durable
   * name and filter rules.
   */
  readonly profile: TransportProfile = natsProfile();
  readonly #options: ResolvedTransportOptions;
  readonly #logger: NatsLogger;
  readonly #subscriptions: Subscription[] = [];
  readonly #starting = new Set<Promise<void>>();
  #link: Promise<Link> | undefined;
  #stopped = false;

  /** Validates every option now, naming the one that is wrong. Connects at the first `subscribe()`. */
  constructor(options: NatsTransportOptions) {
    this.#options = resolveTransportOptions(options);
    this.#logger = this.#options.logger;
  }

  /**
   * Finds or creates the topic's stream, the group's durable consumer and the dead-letter stream (see
   * the README's layout), then starts fetching. Rejects with `NatsStartupError` if the server or
   * JetStream cannot be reached, `NatsLayoutConflictError` if what exists contradicts the subscription.
   */
  async subscribe(spec: SubscriptionSpec): Promise<void> {
    if (this.#stopped) throw new NotStartedError('NatsTransport', 'it was stopped; create a new one');
    const plan = planOf(spec, this.#options);
    // `stop()` waits for a subscription still starting, so that nothing is left fetching after it.
    const starting = this.#start(spec, plan);
    this.#starting.add(starting);
    try {
      await starting;
    } finally {
      this.#starting.delete(starting);
    }
  }

  async #start(spec: SubscriptionSpec, plan: Plan): Promise<void> {
    const link = await this.#connect();
    const what = `consumer "${plan.group}" on "${plan.topic}"`;
    const hint = 'Check that the account may manage streams and consumers (or create them beforehand).';
    const deadLetterSubject = `${this.#options.deadLetterSubjectPrefix}.${plan.group}`;
    let stream: string;
    let consumer: Consumer;
    try {
      stream = await ensureStream(link.jsm, plan.topic, plan.stream, this.#logger);
      await ensureConsumer(
        link.jsm,
        {
          stream,
          durable: plan.group,
          filterSubject: plan.filterSubject,
          ackWaitMs: this.#options.ackWaitMs,
          maxAckPending: this.#options.maxAckPending,
          deliverPolicy: plan.deliverPolicy,
        },
        this.#logger,
      );
      await ensureDeadLetterStream(
        link.jsm,
        this.#options.deadLetterStream,
        this.#options.deadLetterSubjectPrefix,
        deadLetterSubject,
        this.#logger,
      );
      consumer = await link.js.consumers.get(stream, plan.group);
    } catch (error) {
      if (error instanceof NatsLayoutConflictError) throw error;
      throw new NatsStartupError(what, hint, error);
    }
    if (this.#stopped) throw new NotStartedError('NatsTransport', 'it was stopped; create a new one');
    const subscription = new Subscription(spec, plan, stream, consumer, deadLetterSubject, link, {
      ...this.#options,
      codec: plan.codec,
    });
    this.#subscriptions.push(subscription);
    subscription.start();
  }

  /** The connection and JetStream clients, made once (a failed attempt is tried again next time). */
  #connect(): Promise<Link> {
    this.#link ??= openLink(this.#options).catch((error: unknown) => {
      this.#link = undefined;
      throw error;
    });
    return this.#link;
  }

  /**
   * Stops fetching (the fetch in flight runs out within `fetchExpiresMs`; what it brings is handled),
   * lets every handler in flight settle (a message waiting in place goes back to JetStream for the rest
   * of its wait), then drains and closes the connection if the transport opened it.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.allSettled([...this.#starting]);
    await Promise.all(this.#subscriptions.map((s) => s.stop()));
    this.#subscriptions.length = 0;
    const link = await this.#link?.catch(() => undefined);
    this.#link = undefined;
    await link?.close();
  }
}

/** A connection, its JetStream clients, and whether it is up right now. */
class Link {
  #connected = true;
  readonly #waiters = new Set<() => void>();
  readonly #status: AsyncIterable<Status>;

  constructor(
    readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
    readonly js: JetStreamClient,
    private readonly owned: boolean,
    private readonly logger: NatsLogger,
  ) {
    this.#status = nc.status();
    void this.#watch();
    void nc.closed().then(() => this.#wake());
  }

  /** Up, as far as the client knows: settlements and renewals are sent only then. */
  get connected(): boolean {
    return this.#connected && !this.nc.isClosed();
  }

  get closed(): boolean {
    return this.nc.isClosed();
  }

  /** Resolves true once connected (at once if it is), false after `ms`, on `signal` or once closed. */
  whenConnected(ms: number, signal?: AbortSignal): Promise<boolean> {
    if (this.connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve(this.connected);
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.#waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
      if (this.closed || signal?.aborted) done();
    });
  }

  /** Closes the connection if the transport opened it (after draining what is buffered); never a user's. */
  async close(): Promise<void> {
    (this.#status as { stop?: () => void }).stop?.();
    if (!this.owned || this.nc.isClosed()) return;
    try {
      await this.nc.drain();
    } catch {
      await this.nc.close().catch(() => undefined);
    }
  }

  async #watch(): Promise<void> {
    for await (const status of this.#status) {
      if (status.type === 'disconnect') {
        this.#connected = false;
        this.logger.warn(`NATS: disconnected from ${status.server}; reconnecting`);
      } else if (status.type === 'reconnect') {
        this.#connected = true;
        this.logger.info(`NATS: reconnected to ${status.server}`);
        this.#wake();
      }
    }
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

async function openLink(options: ResolvedTransportOptions): Promise<Link> {
  let nc = options.connection;
  const owned = nc === undefined;
  if (!nc) {
    const servers = options.servers ?? [];
    try {
      nc = await connect({ ...options.connectOptions, servers, timeout: options.startupTimeoutMs });
    } catch (error) {
      throw new NatsStartupError(
        `connection to ${servers.join(', ')}`,
        'Check that nats-server is up and that "servers" names its client port (4222 by default); raise ' +
          '"startupTimeoutMs" if it is only slow.',
        error,
      );
    }
  }
  try {
    const jsm = await jetstreamManager(nc, { timeout: options.settleTimeoutMs });
    return new Link(nc, jsm, jetstream(nc, { timeout: options.settleTimeoutMs }), owned, options.logger);
  } catch (error) {
    if (owned) await nc.close().catch(() => undefined);
    throw new NatsStartupError(
      'JetStream client',
      'Run nats-server with JetStream on (-js) and check that the account has JetStream enabled.',
      error,
    );
  }
}

/** A message fetched and not yet settled for good. */
class Held {
  /**
   * When JetStream is known to have (re)started its `ack_wait` for this delivery, at the latest: the
   * receipt, then each `working()` the server confirmed having read (by a flush that followed it).
   */
  touchedAt: number;
  /** `settling`: no more renewals (its settlement is on its way). */
  state: 'held' | 'settling' = 'held';

  constructor(
    readonly msg: JsMsg,
    receivedAt: number,
  ) {
    this.touchedAt = receivedAt;
  }
}

/** One subscription's fetch loop and the messages it holds. */
class Subscription {
  #running = false;
  /** The connection closed for good (the user closed it, or a test killed the consumer). */
  #dead = false;
  #loop: Promise<void> = Promise.resolve();
  /** Every message fetched and not settled yet: it counts against the concurrency and is renewed. */
  readonly #held = new Set<Held>();
  /** Fetched, waiting for a free slot (only when a reconnect made a fetch bring more than asked). */
  readonly #queue: Held[] = [];
  /** Messages in `handle` or waiting in place: each keeps its slot until its final settlement. */
  #busy = 0;
  #dispatchScheduled = false;
  readonly #batches = new Set<Promise<void>>();
  readonly #renewal: NodeJS.Timeout;
  #fetch: ConsumerMessages | undefined;
  /** The stream the durable lives on (found again if the layout has to be set up anew). */
  #streamName: string;
  /** Cuts short the waits in place and the loop's pauses when `stop()` begins. */
  readonly #stopping = new AbortController();
  #wakeLoop: (() => void) | undefined;

  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly plan: Plan,
    stream: string,
    private consumer: Consumer,
    private readonly deadLetterSubject: string,
    private readonly link: Link,
    private readonly options: ResolvedTransportOptions,
  ) {
    this.#streamName = stream;
    this.#renewal = setInterval(() => this.#renew(), options.renewIntervalMs);
    void link.nc.closed().then(() => this.#onClosed());
  }

  start(): void {
    this.#running = true;
    this.#loop = this.#fetchLoop();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#stopping.abort();
    this.#wakeLoop?.();
    await this.#loop;
    while (this.#held.size > 0 && !this.#dead) {
      if (this.#batches.size > 0) await Promise.all([...this.#batches]);
      else await sleep(10);
    }
    clearInterval(this.#renewal);
  }

  /** Receives until stopped: one fetch at a time, for at most the free slots. */
  async #fetchLoop(): Promise<void> {
    let failures = 0;
    while (this.#running && !this.#dead) {
      const room = Math.min(this.options.batchSize, this.spec.concurrency - this.#held.size);
      if (room <= 0) {
        await this.#pause();
        continue;
      }
      if (!this.link.connected) {
        await this.link.whenConnected(this.options.fetchExpiresMs, this.#stopping.signal);
        continue;
      }
      try {
        await this.#fetchOnce(room);
        if (failures > 0) this.#log('info', `fetching again after ${failures} failure(s)`);
        failures = 0;
      } catch (error) {
        if (this.link.closed) break;
        failures++;
        const delay = backoffDelay(this.options.fetchBackoff, failures);
        if (failures === 1 || failures % 10 === 0) {
          this.#log('warn', `fetch failed (${failures}x), retrying in ${delay} ms: ${messageOf(error)}`);
        }
        await this.#pause(delay);
        if (this.#running) await this.#recreateIfGone();
      }
    }
    if (this.link.closed && this.#running) {
      this.#log('error', 'the connection was closed for good: this subscription receives nothing more');
    }
  }

  /**
   * One fetch of up to `room` messages. The client re-issues its pull after a reconnect, so a fetch may
   * bring more than asked: the extra wait in the queue, renewed, for a slot.
   */
  async #fetchOnce(room: number): Promise<void> {
    const messages = await this.consumer.fetch({ max_messages: room, expires: this.options.fetchExpiresMs });
    this.#fetch = messages;
    // The client ends a fetch by itself (expiry, missed heartbeats); this only guards against a pull
    // that a server restart forgot and that nothing else would end.
    const guard = setTimeout(() => messages.stop(), this.options.fetchExpiresMs * 2 + 5000);
    try {
      for await (const msg of messages) this.#receive(msg);
    } finally {
      clearTimeout(guard);
      this.#fetch = undefined;
    }
  }

  /**
   * After a failed fetch: if the durable (or its stream) was deleted under us, sets the layout up again.
   * A pull on a missing durable is simply never answered, so the fetch fails on missed heartbeats.
   */
  async #recreateIfGone(): Promise<void> {
    try {
      await this.link.jsm.consumers.info(this.#streamName, this.plan.group);
      return;
    } catch (error) {
      if (!/not found/i.test(messageOf(error))) return; // the server is not answering: try again later
    }
    try {
      const stream = await ensureStream(
        this.link.jsm,
        this.plan.topic,
        this.plan.stream,
        this.options.logger,
      );
      await ensureConsumer(
        this.link.jsm,
        {
          stream,
          durable: this.plan.group,
          filterSubject: this.plan.filterSubject,
          ackWaitMs: this.options.ackWaitMs,
          maxAckPending: this.options.maxAckPending,
          deliverPolicy: this.plan.deliverPolicy,
        },
        this.options.logger,
      );
      this.consumer = await this.link.js.consumers.get(stream, this.plan.group);
      this.#streamName = stream;
      this.#log('warn', `the durable consumer was gone and has been created again on stream "${stream}"`);
    } catch (error) {
      this.#log('warn', `could not set the durable consumer up again: ${messageOf(error)}`);
    }
  }

  #receive(msg: JsMsg): void {
    if (this.#dead) return;
    const held = new Held(msg, Date.now());
    this.#held.add(held);
    this.#queue.push(held);
    this.#scheduleDispatch();
  }

  /** Messages that arrive together (one fetch's reply) go to `handle` as one batch, slots allowing. */
  #scheduleDispatch(): void {
    if (this.#dispatchScheduled) return;
    this.#dispatchScheduled = true;
    setImmediate(() => {
      this.#dispatchScheduled = false;
      while (this.#queue.length > 0 && this.#busy < this.spec.concurrency && !this.#dead) {
        const batch = this.#queue.splice(0, this.spec.concurrency - this.#busy);
        this.#busy += batch.length;
        const work: Promise<void> = this.#handleBatch(batch)
          .catch((error: unknown) => this.#log('error', `[bug] batch handling threw: ${messageOf(error)}`))
          .finally(() => this.#batches.delete(work));
        this.#batches.add(work);
      }
    });
  }

  /** Each message holds its slot until its final settlement, waits in place included. */
  #handleBatch(batch: Held[]): Promise<void> {
    return handleReceivedBatch(batch, {
      decode: (held) => {
        if (!this.#isStale(held)) return toTransportMessage(held.msg, this.options.codec);
        // Queued past its ack_wait (a long outage): JetStream gives it out again; not handled here.
        this.#log('warn', `message ${idOf(held.msg)} went stale before a slot freed; left to JetStream`);
        return undefined;
      },
      handle: (messages) => this.#callHandler(messages),
      settle: (held, settlement) => this.#settle(held, settlement),
      carryOut: (held, message, settlement) => this.#carryOut(held, message, settlement),
      release: (held) => {
        if (!this.#held.delete(held)) return;
        this.#busy--;
        this.#wakeLoop?.();
        this.#scheduleDispatch();
      },
    });
  }

  /**
   * Carries out the registry's settlement (core's `carryOutInPlace`): a wait is held here, renewed, and
   * goes to `handle` again after the delay with the same delivery attempt, unless it went stale
   * meanwhile; only a settlement that is not a wait reaches JetStream.
   */
  #carryOut(held: Held, message: TransportMessage, first: Settlement): Promise<void> {
    return carryOutInPlace(first, {
      running: () => this.#running,
      dead: () => this.#dead,
      stopping: this.#stopping.signal,
      holding: (wait) => this.#report(held, wait, { ok: true, inPlace: true }),
      lost: (wait) => {
        if (!this.#isStale(held)) return false;
        this.#report(held, wait, { ok: false, stale: true });
        return true;
      },
      handleAgain: async () => (await this.#callHandler([message]))[0] as Settlement,
      settle: (settlement) => this.#settle(held, settlement),
      handBack: (wait) => this.#settle(held, wait, `${wait.reason}; handed back to JetStream at stop()`),
    });
  }

  /** The subscription's handler; a throw or a malformed answer becomes a failure retry for each. */
  async #callHandler(messages: TransportMessage[]): Promise<Settlement[]> {
    return settlementsOf(this.spec, messages, this.options.failureBackoff, (problem) =>
      this.#log('warn', `${problem}; the batch will be redelivered`),
    );
  }

  /**
   * Sends what a settlement stands for: `+ACK`, `-NAK` with the delay, or the dead-letter publish then
   * `+TERM`, each as a request the server answers. `handedBack` marks a wait returned at `stop()`.
   */
  async #settle(held: Held, settlement: Settlement, handedBack?: string): Promise<void> {
    if (this.#dead) return;
    held.state = 'settling';
    const delayMs =
      settlement.action === 'retry' ? Math.min(2 ** 31 - 1, Math.max(0, Math.round(settlement.delayMs))) : 0;
    const carried: Settlement =
      settlement.action === 'retry'
        ? { ...settlement, delayMs, ...(handedBack !== undefined ? { reason: handedBack } : {}) }
        : settlement;
    let outcome: Outcome;
    if (settlement.action === 'ack') outcome = await this.#reply(held, { kind: 'ack' });
    else if (settlement.action === 'retry') outcome = await this.#reply(held, { kind: 'nak', delayMs });
    else {
      outcome = await this.#deadLetter(held, settlement.reason);
      if (outcome.ok) outcome = await this.#reply(held, { kind: 'term' });
    }
    if (outcome.stale) {
      this.#log(
        'warn',
        `message ${idOf(held.msg)} was not renewed for most of ack_wait (disconnected, or the process ` +
          `stalled): JetStream may have given it to another consumer, so its ${settlement.action} is not sent; ` +
          'it comes back and goes through the engine again',
      );
    } else if (!outcome.ok) {
      this.#log(
        'warn',
        `${settlement.action} of message ${idOf(held.msg)} failed (${messageOf(outcome.error)}); it will be ` +
          'redelivered after ack_wait',
      );
    } else if (settlement.action === 'deadLetter') {
      this.#log(
        'warn',
        `message ${idOf(held.msg)} (keys ${JSON.stringify(keysOf(held.msg.headers))}) dead-lettered to ` +
          `${this.deadLetterSubject}: ${settlement.reason}`,
      );
    }
    this.#report(held, carried, {
      ok: outcome.ok,
      ...(outcome.stale ? { stale: true } : {}),
      ...(outcome.error !== undefined ? { error: outcome.error } : {}),
      ...(handedBack !== undefined ? { inPlace: false } : {}),
    });
  }

  /**
   * Sends an ack-protocol reply for the held delivery and waits for the server's answer, a few times
   * if needed; only while the delivery is fresh and the connection up, so that none arrives late.
   */
  async #reply(held: Held, reply: Reply): Promise<Outcome> {
    const subject = ackSubjectOf(held.msg);
    if (subject === undefined) return this.#replyThroughClient(held, reply);
    return this.#withTries(held, async () => {
      await this.link.nc.request(subject, payloadOf(reply), { timeout: this.options.settleTimeoutMs });
    });
  }

  /**
   * Without the ack subject (a client version that hides it): the client's own calls, confirmed by
   * `ackAck` or by a flush. They can be sent once only, so there is no second try.
   */
  async #replyThroughClient(held: Held, reply: Reply): Promise<Outcome> {
    const msg = held.msg;
    let sent = false;
    return this.#withTries(held, async () => {
      if (sent) throw new Error('the client sends a settlement once; it may yet have reached the server');
      sent = true;
      if (reply.kind === 'ack') {
        await msg.ackAck({ timeout: this.options.settleTimeoutMs });
        return;
      }
      if (reply.kind === 'term') msg.term();
      else msg.nak(reply.delayMs);
      if (!(await within(this.link.nc.flush(), this.options.settleTimeoutMs))) {
        throw new Error(`the server did not confirm within ${this.options.settleTimeoutMs} ms`);
      }
    });
  }

  /** Publishes a copy of the message to the group's dead-letter subject, awaiting the stream's ack. */
  async #deadLetter(held: Held, reason: string): Promise<Outcome> {
    const msg = held.msg;
    const info = msg.info;
    const h = headers();
    for (const key of msg.headers?.keys() ?? []) {
      // The original's Nats-Msg-Id would make the dead-letter stream drop other groups' dead letters.
      if (key === NATS_MSG_ID || key.startsWith('Nats-Expected')) continue;
      for (const value of msg.headers?.values(key) ?? []) h.append(key, value);
    }
    if (!h.has(KEYS_HEADER)) h.set(KEYS_HEADER, encodeKeys(keysOf(msg.headers)));
    h.set(DLQ_REASON, headerValue(reason));
    h.set(DLQ_SUBJECT, msg.subject);
    h.set(DLQ_STREAM, info.stream);
    h.set(DLQ_SEQUENCE, String(info.streamSequence));
    h.set(DLQ_GROUP, this.plan.group);
    h.set(DLQ_ATTEMPT, String(Math.max(1, info.deliveryCount)));
    // Dead-lettered twice (a crash between the publish and the term): the duplicate window drops it.
    const msgID = `${info.stream}:${info.streamSequence}:${this.plan.group}`;
    return this.#withTries(held, async () => {
      await this.link.js.publish(this.deadLetterSubject, msg.data, {
        headers: h,
        msgID,
        timeout: this.options.settleTimeoutMs,
      });
    });
  }

  async #withTries(held: Held, call: () => Promise<void>): Promise<Outcome> {
    let error: unknown;
    for (let attempt = 1; attempt <= this.options.settleAttempts; attempt++) {
      if (this.link.closed) return { ok: false, error: error ?? new Error('the connection is closed') };
      const freshFor = this.#freshUntil(held) - Date.now();
      if (freshFor <= 0 || !(await this.link.whenConnected(freshFor))) return { ok: false, stale: true };
      if (this.#isStale(held)) return { ok: false, stale: true };
      try {
        await call();
        return { ok: true };
      } catch (e) {
        error = e;
        if (attempt < this.options.settleAttempts) await sleep(backoffDelay(SETTLE_RETRY_BACKOFF, attempt));
      }
    }
    return { ok: false, error };
  }

  /**
   * Sends `working()` for every held message, then a flush: once the server has answered it, it has
   * read every `working()` before it, so each delivery's `ack_wait` restarted no earlier than `sentAt`.
   */
  #renew(): void {
    if (this.#dead || !this.link.connected) return;
    const sentAt = Date.now();
    const renewed: Held[] = [];
    for (const held of this.#held) {
      if (held.state !== 'held' || this.#isStale(held)) continue;
      held.msg.working();
      renewed.push(held);
    }
    if (renewed.length === 0) return;
    void within(this.link.nc.flush(), this.options.renewIntervalMs).then(
      (flushed) => {
        if (!flushed) return;
        for (const held of renewed) held.touchedAt = Math.max(held.touchedAt, sentAt);
      },
      () => undefined,
    );
  }

  /**
   * Until when the delivery is surely still this consumer's: `ack_wait` after its last confirmed
   * renewal, less a margin for the way there and the server's own timer.
   */
  #freshUntil(held: Held): number {
    const ackWait = this.options.ackWaitMs;
    return held.touchedAt + ackWait - Math.min(Math.floor(ackWait / 5), 5000);
  }

  #isStale(held: Held): boolean {
    return Date.now() >= this.#freshUntil(held);
  }

  /** Sleeps `ms`, or until a slot frees when `ms` is omitted; `stop()` cuts either short. */
  #pause(ms?: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.#wakeLoop = undefined;
        resolve();
      }
      this.#wakeLoop = done;
      if (this.#stopping.signal.aborted && ms !== undefined) done();
    });
  }

  /** The connection closed for good: nothing more can be received, renewed or settled here. */
  #onClosed(): void {
    this.#dead = true;
    clearInterval(this.#renewal);
    this.#fetch?.stop();
    this.#wakeLoop?.();
  }

  #report(
    held: Held,
    settlement: Settlement,
    outcome: { ok: boolean; error?: unknown; inPlace?: boolean; stale?: boolean },
  ): void {
    const event: SettledEvent = {
      topic: held.msg.subject,
      consumerGroup: this.plan.group,
      messageId: idOf(held.msg),
      keys: keysOf(held.msg.headers),
      deliveryAttempt: Math.max(1, held.msg.info.deliveryCount),
      action: settlement.action,
      ...(settlement.action !== 'ack' ? { reason: settlement.reason } : {}),
      ...(settlement.action === 'retry'
        ? { delayMs: settlement.delayMs, countsAsAttempt: settlement.countsAsAttempt }
        : {}),
      ...outcome,
    };
    try {
      this.options.onSettled?.(event);
    } catch (error) {
      this.#log('error', `onSettled threw: ${messageOf(error)}`);
    }
  }

  #log(level: 'info' | 'warn' | 'error', text: string): void {
    this.options.logger[level](`NATS ${this.plan.group}@${this.plan.topic}: ${text}`);
  }
}

type Outcome = { ok: boolean; stale?: boolean; error?: unknown };

/** A JetStream message as handlers see it; a body that cannot be decoded is a reason to dead-letter. */
function toTransportMessage(msg: JsMsg, codec: BodyCodec): ReceivedMessage {
  const decoded = decodeBody(codec, msg.data);
  if (!decoded.ok) return { ok: false, reason: decoded.reason };
  const info = msg.info;
  return {
    ok: true,
    message: {
      messageId: idOf(msg),
      topic: msg.subject,
      keys: keysOf(msg.headers),
      body: decoded.body,
      properties: propertiesOf(msg.headers),
      deliveryAttempt: Math.max(1, info.deliveryCount),
      bornAt: Math.floor(info.timestampNanos / 1e6),
    },
  };
}

/**
 * The delivery's ack subject (`$JS.ACK.…`), to send a settlement as a request the server answers.
 * `JsMsg`'s type does not show it; the v3 implementation has it as `reply`.
 */
function ackSubjectOf(msg: JsMsg): string | undefined {
  const reply = (msg as unknown as { reply?: unknown }).reply;
  return typeof reply === 'string' && reply !== '' ? reply : undefined;
}

/** `<stream>:<stream sequence>`: the same for every delivery of one stored message. */
function idOf(msg: JsMsg): string {
  return `${msg.info.stream}:${msg.info.streamSequence}`;
}

/**
 * Checks what the transport itself needs of a subscription (the registry has already checked the
 * listener against the profile; a direct caller gets the same rules) and answers its plan.
 */
function planOf(spec: SubscriptionSpec, options: ResolvedTransportOptions): Plan {
  if (typeof spec !== 'object' || spec === null) {
    throw new InvalidOptionError('subscription', 'a SubscriptionSpec object', spec);
  }
  const where = `subscription(${String(spec.topic)}/${String(spec.consumerGroup)})`;
  const listener = spec.listener ?? {};
  checkNatsListener(
    { ...listener, topic: spec.topic, consumerGroup: spec.consumerGroup, filter: spec.filter },
    where,
  );
  for (const field of ['concurrency', 'maxAttempts'] as const) {
    const value = spec[field];
    if (!Number.isInteger(value) || value < 1) {
      throw new InvalidOptionError(`${where}.${field}`, 'a positive integer', value);
    }
  }
  if (typeof spec.handle !== 'function') {
    throw new InvalidOptionError(`${where}.handle`, 'a function', spec.handle);
  }
  const stream = (listener.stream as string | undefined) ?? options.stream;
  if (stream !== undefined) checkName(stream, `${where}.stream`, 'stream');
  return {
    topic: spec.topic,
    group: spec.consumerGroup,
    filterSubject: filterSubjectOf(spec.topic, spec.filter ?? listener.filterSubject),
    ...(stream !== undefined ? { stream } : {}),
    codec: (listener.codec as BodyCodec | undefined) ?? options.codec,
    deliverPolicy: (listener.deliverPolicy as 'all' | 'new' | undefined) ?? 'all',
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** True once `promise` resolves within `ms`, false if it takes longer; rejects as it does. */
function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return withTimeout(
    promise.then(() => true),
    ms,
    { fallback: () => false },
  );
}
