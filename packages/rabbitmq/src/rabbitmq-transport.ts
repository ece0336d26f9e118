/**
 * `RabbitMQTransport`: the broker side of the transport port on amqplib 2.x.
 *
 * One consumer channel per subscription, manual acks, prefetch = the subscription's concurrency. The
 * path of a message, top to bottom: a delivery from the group's queue → a **redelivery** (RabbitMQ gave
 * it back after a consumer died or its channel closed mid-handler) is counted first: a copy with
 * `deliveryAttempt + 1` goes back to the queue and the original is acked → the deliveries that arrived
 * together are decoded (a body that cannot be decoded is dead-lettered with the reason) and handed to the
 * subscription's `handle` as one batch, RabbitMQ keeping each invisible meanwhile → each settlement is
 * carried out as given: ack; a copy published, with publisher confirms, to the TTL retry queue of the
 * delay's ladder step (attempt + 1 for a failure, the same attempt for a wait), then the original acked;
 * a copy published to the dead-letter queue with the reason, then the original acked.
 *
 * Publishing first and acking second means a crash between the two duplicates a message, never loses
 * one. A delivery tag belongs to its channel: once a channel is gone, the settlements of its deliveries
 * are dropped (RabbitMQ has given those messages back to the queue), never acked on another channel.
 */
import {
  backoffDelay,
  InvalidOptionError,
  type MessageTransport,
  type Settlement,
  type SubscriptionSpec,
  settlementsOf,
  sleepUnless,
  type TransportMessage,
  type TransportProfile,
  withTimeout,
} from '@idempotent-mq/core/adapter';
import type { Channel, ConsumeMessage } from 'amqplib';
import type { BodyCodec } from './codec.js';
import { ConfirmedChannel } from './confirmed-channel.js';
import { type ConnectionSource, connectionSource } from './connection.js';
import { messageOf, NotStartedError, RabbitMQConnectionError, RabbitMQTopologyError } from './errors.js';
import { attemptOf, copyOptions, keysOf, reasonHeader, toTransportMessage } from './message.js';
import {
  type RabbitMQTransportOptions,
  type ResolvedTransportOptions,
  resolveTransportOptions,
  SETTLE_RETRY_BACKOFF,
  type SettledEvent,
} from './options.js';
import {
  checkFilter,
  checkHandOverFits,
  checkRabbitMQNames,
  checkRabbitMQOptions,
  MAX_PREFETCH,
  rabbitMQProfile,
} from './rabbitmq-profile.js';
import {
  declareConsumerGroup,
  declareRetryQueue,
  HEADERS,
  type RabbitMQTopology,
  retryStep,
  topologyOf,
} from './topology.js';

/**
 * The test double of SIGKILL (`killTransport` in `@idempotent-mq/rabbitmq/testing`): a symbol, so that
 * it is no method a user finds on the transport.
 */
export const kill = Symbol('RabbitMQTransport.kill');

/**
 * The RabbitMQ side of the transport port: bind it to `MESSAGE_TRANSPORT` and let a `ListenerRegistry`
 * subscribe the listeners through it. See the package README for the topology, the settlements and the
 * consumer_timeout rules.
 */
export class RabbitMQTransport implements MessageTransport {
  /**
   * RabbitMQ's limits and rules: 17 attempts by default (1000 at most: the transport counts them
   * itself), retry delays up to the top step of the retry ladder (24 h by default), no redelivery
   * horizon of its own, and its name and filter rules.
   */
  readonly profile: TransportProfile;
  readonly #options: ResolvedTransportOptions;
  /** Consumer channels come from one connection, publishes (retries, dead letters) from another. */
  readonly #consumer: ConnectionSource;
  readonly #publisher: ConnectionSource;
  readonly #subscriptions = new Set<Subscription>();
  #stopped = false;

  /**
   * Validates every option now, naming the one that is wrong. Connects on the first `subscribe`. With
   * `url`, consumers and publishes get a connection each (RabbitMQ blocks a connection that publishes
   * during a memory alarm; acks on the other keep flowing); a `connection` given is used for both.
   */
  constructor(options: RabbitMQTransportOptions) {
    this.#options = resolveTransportOptions(options);
    this.profile = rabbitMQProfile(this.#options);
    this.#consumer = connectionSource(this.#options, 'RabbitMQTransport consuming');
    this.#publisher =
      this.#options.target.kind === 'url'
        ? connectionSource(this.#options, 'RabbitMQTransport publishing')
        : this.#consumer;
  }

  /**
   * Declares the group's topology (exchange, queue and bindings, dead-letter queue) and starts
   * consuming. Rejects with `RabbitMQConnectionError` if the broker cannot be reached, with
   * `RabbitMQTopologyError` if it refuses a declaration, with `InvalidOptionError` for a bad spec.
   */
  async subscribe(spec: SubscriptionSpec): Promise<void> {
    if (this.#stopped) throw new NotStartedError('RabbitMQTransport', 'it was stopped; create a new one');
    const plan = planSubscription(spec, this.#options);
    const subscription = new Subscription(spec, plan, this.#options, this.#consumer, this.#publisher);
    // Known before it starts, so that a stop() meanwhile stops it too.
    this.#subscriptions.add(subscription);
    try {
      await subscription.start();
    } catch (error) {
      this.#subscriptions.delete(subscription);
      await subscription.stop();
      throw error;
    }
  }

  /**
   * Stops consuming (basic.cancel), lets every handler in flight finish and carries out its settlement,
   * then closes the channels and the connections it opened. What was not delivered stays in the queue.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.#subscriptions].map((s) => s.stop()));
    this.#subscriptions.clear();
    await this.#consumer.close();
    if (this.#publisher !== this.#consumer) await this.#publisher.close();
  }

  /** Dies on the spot, as a killed process: see `killTransport`. */
  [kill](): void {
    this.#stopped = true;
    for (const s of this.#subscriptions) s.kill();
    this.#subscriptions.clear();
    this.#consumer.kill();
    if (this.#publisher !== this.#consumer) this.#publisher.kill();
  }
}

/** What `subscribe` resolved from the spec and the listener's options. */
interface Plan {
  readonly names: RabbitMQTopology;
  readonly codec: BodyCodec;
  readonly handOverAfterMs: number | undefined;
}

/** A consumer channel and what became of it. */
interface ConsumerChannel {
  readonly channel: Channel;
  consumerTag?: string;
  closed: boolean;
  /** Why the server closed it, when it said. */
  error?: Error;
}

/** One delivery, from its arrival to its settlement. */
class Delivery {
  /**
   * `queued` → `handling` → `settling` → `done`; a handler running past `handOverAfterMs` goes
   * `handingOver` → `handedOver` (its late settlement is dropped) or back to `handling`.
   */
  phase: 'queued' | 'handling' | 'settling' | 'handingOver' | 'handedOver' | 'done' = 'queued';
  /** Settles once a hand-over under way has succeeded or failed. */
  handOver: Promise<void> | undefined;
  timer: NodeJS.Timeout | undefined;
  /** The attempt our header records; a redelivery that could not be counted by a copy counts here. */
  attempt: number;

  constructor(
    readonly message: ConsumeMessage,
    /** The channel it came on: its tag means nothing on any other. */
    readonly on: ConsumerChannel,
  ) {
    this.attempt = attemptOf(message);
  }
}

/** One subscription: its consumer channel (re-opened after a loss), its deliveries, its settlements. */
class Subscription {
  #running = false;
  /** Killed: nothing more reaches the broker, not even a settlement already decided. */
  #dead = false;
  #current: ConsumerChannel | undefined;
  #recovery: Promise<void> | undefined;
  /** The first subscription, under way: `stop()` waits for it, so that no consumer is left behind. */
  #starting: Promise<void> | undefined;
  /** Batches, counted redeliveries and hand-overs in flight. */
  readonly #work = new Set<Promise<void>>();
  #queued: Delivery[] = [];
  #flushScheduled = false;
  /** Every delivery not settled yet. */
  readonly #held = new Set<Delivery>();
  /** Cuts short the re-subscription waits when `stop()` begins. */
  readonly #stopping = new AbortController();
  /** The confirm channel the copies are published on. */
  #confirmed: ConfirmedChannel | undefined;
  #confirmedOpening: Promise<ConfirmedChannel> | undefined;
  readonly #name: string;

  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly plan: Plan,
    private readonly options: ResolvedTransportOptions,
    private readonly consumer: ConnectionSource,
    private readonly publisher: ConnectionSource,
  ) {
    this.#name = `RabbitMQ ${spec.consumerGroup}@${spec.topic}`;
  }

  async start(): Promise<void> {
    this.#running = true;
    this.#starting = (async () => {
      await this.consumer.open();
      await this.#subscribe();
    })();
    await this.#starting;
  }

  /** Opens a consumer channel, declares the topology, sets the prefetch and consumes. */
  async #subscribe(): Promise<void> {
    const channel = await this.consumer.channel(this.#stopping.signal);
    const state: ConsumerChannel = { channel, closed: false };
    channel.on('error', (error: Error) => {
      state.error = error;
    });
    channel.on('close', () => this.#lost(state));
    const { names } = this.plan;
    try {
      await declareConsumerGroup(channel, this.spec);
      // Per consumer (global = false): at most `concurrency` deliveries of this queue unacked at once.
      await channel.prefetch(this.spec.concurrency, false);
    } catch (error) {
      await channel.close().catch(() => undefined);
      throw new RabbitMQTopologyError(this.spec.topic, this.spec.consumerGroup, state.error ?? error);
    }
    if (!this.#running) {
      await channel.close().catch(() => undefined);
      return;
    }
    this.#current = state;
    try {
      const { consumerTag } = await channel.consume(names.queue, (m) => this.#received(state, m), {
        noAck: false,
      });
      state.consumerTag = consumerTag;
    } catch (error) {
      if (this.#current === state) this.#current = undefined;
      await channel.close().catch(() => undefined);
      throw new RabbitMQTopologyError(this.spec.topic, this.spec.consumerGroup, state.error ?? error);
    }
  }

  /** A delivery arrived (or `null`: RabbitMQ cancelled the consumer, e.g. its queue was deleted). */
  #received(on: ConsumerChannel, message: ConsumeMessage | null): void {
    if (this.#dead) return;
    if (message === null) {
      this.#track(this.#consumeAgain(on));
      return;
    }
    const d = new Delivery(message, on);
    this.#held.add(d);
    const { handOverAfterMs } = this.plan;
    if (handOverAfterMs !== undefined) {
      d.timer = setTimeout(() => this.#track(this.#handOver(d)), handOverAfterMs);
      d.timer.unref?.();
    }
    if (message.fields.redelivered) this.#track(this.#countRedelivery(d));
    else this.#enqueue(d);
  }

  /**
   * RabbitMQ redelivers what a dead consumer (or a closed channel) held with `redelivered: true` and
   * our header untouched. A lost delivery spends an attempt, as a crash does on any broker: a copy with
   * the attempt counted goes back to the queue, the original is acked. If the copy cannot be sent, the
   * delivery is handled here with the attempt counted.
   */
  async #countRedelivery(d: Delivery): Promise<void> {
    d.phase = 'settling';
    const reason =
      'redelivered by RabbitMQ (a consumer died, or its channel closed, while handling it): counted as an attempt';
    const queue = this.plan.names.queue;
    const sent = await this.#sendCopy(d, queue, 0, {
      [HEADERS.attempt]: d.attempt + 1,
      [HEADERS.retryReason]: reason,
    });
    if (this.#dead) return;
    if (sent.ok) {
      this.#finish(d, { action: 'retry', delayMs: 0, countsAsAttempt: true, reason }, queue);
      return;
    }
    if (d.on.closed)
      return this.#dropStale(d, { action: 'retry', delayMs: 0, countsAsAttempt: true, reason });
    this.options.logger.warn(
      `${this.#name}: could not count the redelivery of message ${d.message.properties.messageId} with a copy ` +
        `(${messageOf(sent.error)}); handling it with deliveryAttempt ${d.attempt + 1}`,
    );
    d.attempt++;
    d.phase = 'queued';
    this.#enqueue(d);
  }

  /** Deliveries that arrive together (within one turn of the event loop) make one batch. */
  #enqueue(d: Delivery): void {
    this.#queued.push(d);
    if (this.#queued.length >= this.options.batchSize) this.#flush();
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushScheduled = false;
    while (this.#queued.length > 0) {
      const batch = this.#queued.splice(0, this.options.batchSize).filter((d) => {
        if (d.on.closed) this.#release(d); // RabbitMQ has it back
        return !d.on.closed;
      });
      if (batch.length > 0) this.#track(this.#handleBatch(batch));
    }
  }

  async #handleBatch(batch: Delivery[]): Promise<void> {
    const decoded: { d: Delivery; message: TransportMessage }[] = [];
    const settling: Promise<void>[] = [];
    for (const d of batch) {
      d.phase = 'handling';
      const mapped = toTransportMessage(d.message, this.spec.topic, this.plan.codec, d.attempt);
      if (mapped.ok) decoded.push({ d, message: mapped.message });
      else settling.push(this.#carryOut(d, { action: 'deadLetter', reason: mapped.reason }));
    }
    if (decoded.length > 0) {
      const settlements = await this.#callHandler(decoded.map((x) => x.message));
      decoded.forEach((x, i) => {
        settling.push(this.#carryOut(x.d, settlements[i] as Settlement));
      });
    }
    await Promise.all(settling);
  }

  /** The subscription's handler; a throw or a malformed answer becomes a failure retry for each. */
  async #callHandler(messages: TransportMessage[]): Promise<Settlement[]> {
    return settlementsOf(this.spec, messages, this.options.failureBackoff, (problem) =>
      this.options.logger.warn(`${this.#name}: ${problem}; the batch will be redelivered`),
    );
  }

  /**
   * Carries out a settlement: ack; or publish a copy (a retry queue, the group's queue for no delay, the
   * dead-letter queue), confirmed, then ack. A copy that cannot be published after `settleAttempts`
   * tries hands the delivery back with basic.nack(requeue): it comes back, counted as a redelivery.
   */
  async #carryOut(d: Delivery, settlement: Settlement): Promise<void> {
    if (this.#dead) return;
    if (d.phase === 'handingOver') await d.handOver;
    if (d.phase === 'handedOver') {
      this.#report(d, settlement, { ok: false, dropped: 'handedOver' });
      return;
    }
    d.phase = 'settling';
    clearTimeout(d.timer);
    if (d.on.closed) return this.#dropStale(d, settlement);
    if (settlement.action === 'ack') return this.#finish(d, settlement);

    const { names } = this.plan;
    let queue: string;
    let step = 0;
    let headers: Record<string, string | number>;
    let carried: Settlement = settlement;
    if (settlement.action === 'retry') {
      step = retryStep(this.options.retryLadderMs, settlement.delayMs);
      queue = step === 0 ? names.queue : names.retryQueue(step);
      headers = {
        [HEADERS.attempt]: settlement.countsAsAttempt ? d.attempt + 1 : d.attempt,
        [HEADERS.retryReason]: reasonHeader(settlement.reason),
      };
      carried = { ...settlement, delayMs: step };
    } else {
      queue = names.deadLetterQueue;
      headers = {
        [HEADERS.attempt]: d.attempt,
        [HEADERS.deadLetterReason]: reasonHeader(settlement.reason),
        [HEADERS.deadLetteredAt]: Date.now(),
      };
    }
    const sent = await this.#sendCopy(d, queue, step, headers);
    if (this.#dead) return;
    if (settlement.action === 'deadLetter') {
      this.options.logger.warn(
        `${this.#name}: message ${d.message.properties.messageId} (keys ${JSON.stringify(keysOf(d.message))}) ` +
          `${sent.ok ? `dead-lettered to ${queue}` : 'could not be dead-lettered'}: ${settlement.reason}`,
      );
    }
    if (sent.ok) return this.#finish(d, carried, queue);
    if (d.on.closed) return this.#dropStale(d, carried);
    this.#giveBack(d, carried, queue, sent.error);
  }

  /**
   * Publishes a copy of the delivery to `queue` through the default exchange, with publisher confirms,
   * up to `settleAttempts` times; declares a retry queue (`step` > 0) on first use. Stops trying once
   * the delivery's channel is gone: RabbitMQ has the original back, a copy would only duplicate it.
   */
  async #sendCopy(
    d: Delivery,
    queue: string,
    step: number,
    headers: Record<string, string | number>,
  ): Promise<{ ok: true } | { ok: false; error: unknown }> {
    const { settleAttempts, confirmTimeoutMs } = this.options;
    let error: unknown;
    for (let attempt = 1; attempt <= settleAttempts; attempt++) {
      if (this.#dead) return { ok: false, error: new Error('killed') };
      if (d.on.closed) return { ok: false, error: new Error('its channel closed') };
      try {
        const confirmed = await bounded(this.#confirmedChannel(), confirmTimeoutMs, 'a publishing channel');
        if (step > 0 && !confirmed.declared.has(queue)) {
          await bounded(
            declareRetryQueue(confirmed.channel, this.plan.names, step),
            confirmTimeoutMs,
            `the declaration of ${queue}`,
          );
          confirmed.declared.add(queue);
        }
        await confirmed.publish(
          '',
          queue,
          d.message.content,
          copyOptions(d.message, headers),
          confirmTimeoutMs,
        );
        return { ok: true };
      } catch (e) {
        error = e;
        if (attempt < settleAttempts) await sleep(backoffDelay(SETTLE_RETRY_BACKOFF, attempt));
      }
    }
    return { ok: false, error };
  }

  /** The confirm channel of this subscription, opened (again) when needed on the publishing connection. */
  async #confirmedChannel(): Promise<ConfirmedChannel> {
    if (this.#confirmed && !this.#confirmed.closed) return this.#confirmed;
    this.#confirmedOpening ??= (async () => {
      const channel = await this.publisher.confirmChannel();
      const confirmed = new ConfirmedChannel(channel, (error) =>
        this.options.logger.warn(`${this.#name}: publishing channel: ${error.message}`),
      );
      this.#confirmed = confirmed;
      return confirmed;
    })().finally(() => {
      this.#confirmedOpening = undefined;
    });
    return this.#confirmedOpening;
  }

  /**
   * Past `handOverAfterMs` the handler is still running: the message is handed back before RabbitMQ's
   * `consumer_timeout` closes the channel (and gives back every other delivery of it too). A copy with
   * the attempt counted goes to the queue, the original is acked; the handler's settlement, when it
   * comes, is dropped: the copy carries the message on, and the idempotency engine makes it wait for the
   * claim still held, or skip the completed work.
   */
  async #handOver(d: Delivery): Promise<void> {
    if (this.#dead || d.phase !== 'handling' || d.on.closed) return;
    d.phase = 'handingOver';
    let done!: () => void;
    d.handOver = new Promise<void>((resolve) => {
      done = resolve;
    });
    const ms = this.plan.handOverAfterMs as number;
    const reason =
      `handed back: its handler was still running ${ms} ms after the delivery (handOverAfterMs), ` +
      `close to RabbitMQ's consumer_timeout (${this.options.consumerTimeoutMs} ms); counted as an attempt`;
    const queue = this.plan.names.queue;
    try {
      const sent = await this.#sendCopy(d, queue, 0, {
        [HEADERS.attempt]: d.attempt + 1,
        [HEADERS.retryReason]: reason,
      });
      if (this.#dead) return;
      if (sent.ok) {
        const acked = this.#ackOriginal(d);
        d.phase = 'handedOver';
        this.#held.delete(d);
        this.#report(d, { action: 'retry', delayMs: 0, countsAsAttempt: true, reason }, { ...acked, queue });
        this.options.logger.warn(`${this.#name}: message ${d.message.properties.messageId} ${reason}`);
      } else {
        d.phase = 'handling';
        this.options.logger.warn(
          `${this.#name}: could not hand back message ${d.message.properties.messageId} (${messageOf(sent.error)}); ` +
            'RabbitMQ may close its channel at consumer_timeout',
        );
      }
    } finally {
      done();
    }
  }

  /** Acks the delivery on its own channel and reports what was carried out. */
  #finish(d: Delivery, carried: Settlement, queue?: string): void {
    const acked = this.#ackOriginal(d);
    this.#release(d);
    this.#report(d, carried, acked.ok ? { ok: true, queue } : { ...acked, queue, dropped: 'channelClosed' });
  }

  /** Nothing can be done with a delivery whose channel is gone: RabbitMQ gives it back to the queue. */
  #dropStale(d: Delivery, settlement: Settlement): void {
    this.#release(d);
    this.#report(d, settlement, { ok: false, dropped: 'channelClosed' });
  }

  /** The copy could not be published: basic.nack(requeue) gives the message back to the queue. */
  #giveBack(d: Delivery, carried: Settlement, queue: string, error: unknown): void {
    try {
      d.on.channel.nack(d.message, false, true);
    } catch {
      // the channel closed meanwhile: RabbitMQ gives the message back all the same
    }
    this.#release(d);
    this.options.logger.warn(
      `${this.#name}: ${carried.action} of message ${d.message.properties.messageId} to ${queue} failed after ` +
        `${this.options.settleAttempts} tries (${messageOf(error)}); handed back to the queue (basic.nack ` +
        'requeue): it comes back counted as a redelivery',
    );
    this.#report(d, carried, { ok: false, error, queue });
  }

  /** basic.ack on the delivery's own channel; never on another (its tag would name another delivery). */
  #ackOriginal(d: Delivery): { ok: boolean; error?: unknown } {
    if (d.on.closed) return { ok: false, error: new Error('its channel closed') };
    try {
      d.on.channel.ack(d.message);
      return { ok: true };
    } catch (error) {
      return { ok: false, error };
    }
  }

  #release(d: Delivery): void {
    d.phase = 'done';
    clearTimeout(d.timer);
    this.#held.delete(d);
  }

  /** The consumer channel closed: by the server (consumer_timeout, an error), or with its connection. */
  #lost(state: ConsumerChannel): void {
    state.closed = true;
    if (this.#current !== state) return;
    this.#current = undefined;
    if (this.#dead || !this.#running) return;
    const unsettled = [...this.#held].filter((d) => d.on === state).length;
    const error = state.error;
    const timedOut = error?.message.match(
      /acknowledgement on channel \d+ timed out\. Timeout value used: (\d+) ms/,
    );
    const { logger, consumerTimeoutMs } = this.options;
    if (timedOut) {
      const serverMs = Number(timedOut[1]);
      logger.warn(
        `${this.#name}: RabbitMQ closed the channel: a delivery stayed unacknowledged past its consumer_timeout ` +
          `(${serverMs} ms). Its ${unsettled} unsettled deliveries go back to the queue and come back counted ` +
          "as a redelivery; their handlers' settlements are dropped (a delivery tag is never acked on another " +
          'channel). ' +
          (serverMs !== consumerTimeoutMs
            ? `Set consumerTimeoutMs to ${serverMs} (it is ${consumerTimeoutMs}), so that a slow handler's ` +
              'message is handed back before (handOverAfterMs).'
            : "Lower handOverAfterMs, or raise the server consumer_timeout above the handlers' longest run."),
      );
    } else if (error) {
      logger.warn(`${this.#name}: RabbitMQ closed the channel (${error.message}); re-subscribing`);
    } else {
      logger.info(`${this.#name}: the channel closed with its connection; re-subscribing once it is back`);
    }
    this.#recovery ??= this.#recover().finally(() => {
      this.#recovery = undefined;
    });
  }

  /** Re-declares and re-subscribes, with core's backoff, until it works or the subscription stops. */
  async #recover(): Promise<void> {
    for (let n = 1; this.#running && !this.#dead; n++) {
      await sleepUnless(backoffDelay(this.options.reconnectBackoff, n), this.#stopping.signal);
      if (!this.#running || this.#dead) return;
      try {
        await this.#subscribe();
        this.options.logger.info(`${this.#name}: subscribed again after ${n} attempt(s)`);
        return;
      } catch (error) {
        if (!this.#running || this.#dead) return;
        if (error instanceof RabbitMQConnectionError && error.message.includes('cannot be reopened')) return;
        if (n === 1 || n % 10 === 0) {
          this.options.logger.warn(`${this.#name}: subscribing again failed (${n}x): ${messageOf(error)}`);
        }
      }
    }
  }

  /** RabbitMQ cancelled the consumer (its queue deleted, …): declare and consume again on the same channel. */
  async #consumeAgain(state: ConsumerChannel): Promise<void> {
    if (!this.#running || state.closed || this.#current !== state) return;
    this.options.logger.warn(
      `${this.#name}: RabbitMQ cancelled the consumer (was the queue deleted?); declaring again`,
    );
    try {
      await declareConsumerGroup(state.channel, this.spec);
      const { consumerTag } = await state.channel.consume(
        this.plan.names.queue,
        (m) => this.#received(state, m),
        {
          noAck: false,
        },
      );
      state.consumerTag = consumerTag;
    } catch (error) {
      this.options.logger.warn(
        `${this.#name}: consuming again failed (${messageOf(error)}); reopening the channel`,
      );
      await state.channel.close().catch(() => undefined);
    }
  }

  /**
   * Stops consuming (basic.cancel), lets every handler in flight finish and carries out its settlement
   * (a delivery that arrived before the cancel was confirmed is handled too), then closes the channels.
   */
  async stop(): Promise<void> {
    this.#running = false;
    this.#stopping.abort();
    await this.#starting?.catch(() => undefined);
    await this.#recovery;
    const state = this.#current;
    if (state && !state.closed && state.consumerTag !== undefined) {
      await state.channel.cancel(state.consumerTag).catch(() => undefined);
    }
    while (this.#queued.length > 0 || this.#work.size > 0) {
      this.#flush();
      await Promise.allSettled([...this.#work]);
    }
    if (state && !state.closed) await state.channel.close().catch(() => undefined);
    this.#current = undefined;
    await this.#confirmedOpening?.catch(() => undefined);
    await this.#confirmed?.close();
  }

  /**
   * Dies on the spot: nothing more is received, acked or published, the handlers in flight are abandoned
   * (their answers dropped). The transport then drops the sockets, so RabbitMQ gives back every
   * unacknowledged delivery, `redelivered: true`.
   */
  kill(): void {
    this.#dead = true;
    this.#running = false;
    this.#stopping.abort();
    for (const d of this.#held) clearTimeout(d.timer);
    this.#held.clear();
    this.#queued = [];
  }

  #track(work: Promise<void>): void {
    const tracked: Promise<void> = work
      .catch((error: unknown) => this.options.logger.error(`${this.#name}: [bug] ${messageOf(error)}`))
      .finally(() => this.#work.delete(tracked));
    this.#work.add(tracked);
  }

  #report(
    d: Delivery,
    settlement: Settlement,
    outcome: { ok: boolean; error?: unknown; queue?: string; dropped?: SettledEvent['dropped'] },
  ): void {
    const event: SettledEvent = {
      topic: this.spec.topic,
      consumerGroup: this.spec.consumerGroup,
      messageId: typeof d.message.properties.messageId === 'string' ? d.message.properties.messageId : '',
      keys: keysOf(d.message),
      deliveryAttempt: d.attempt,
      action: settlement.action,
      ...(settlement.action !== 'ack' ? { reason: settlement.reason } : {}),
      ...(settlement.action === 'retry'
        ? { delayMs: settlement.delayMs, countsAsAttempt: settlement.countsAsAttempt }
        : {}),
      ...(outcome.queue !== undefined ? { queue: outcome.queue } : {}),
      ...(outcome.dropped !== undefined ? { dropped: outcome.dropped } : {}),
      ok: outcome.ok,
      ...(outcome.error !== undefined ? { error: outcome.error } : {}),
    };
    try {
      this.options.onSettled?.(event);
    } catch (error) {
      this.options.logger.error(`${this.#name}: onSettled threw: ${messageOf(error)}`);
    }
  }
}

/**
 * Checks what the transport itself needs of a subscription (the registry has checked the listener
 * against the profile already; a direct caller gets the same rules): names, filter, the concurrency as
 * a prefetch count, the listener's RabbitMQ options and its hand-over against `consumer_timeout`.
 */
function planSubscription(spec: SubscriptionSpec, options: ResolvedTransportOptions): Plan {
  if (typeof spec !== 'object' || spec === null) {
    throw new InvalidOptionError('subscription', 'a SubscriptionSpec object', spec);
  }
  const where = `subscription(${String(spec.topic)}/${String(spec.consumerGroup)})`;
  checkRabbitMQNames(spec, where);
  if (spec.filter !== undefined) checkFilter(spec.filter, `${where}.filter`);
  if (!Number.isInteger(spec.concurrency) || spec.concurrency < 1 || spec.concurrency > MAX_PREFETCH) {
    throw new InvalidOptionError(
      `${where}.concurrency`,
      `an integer from 1 to ${MAX_PREFETCH} (it is the consumer's prefetch count, a 16-bit field of basic.qos)`,
      spec.concurrency,
    );
  }
  if (!Number.isInteger(spec.maxAttempts) || spec.maxAttempts < 1) {
    throw new InvalidOptionError(`${where}.maxAttempts`, 'a positive integer', spec.maxAttempts);
  }
  if (typeof spec.handle !== 'function') {
    throw new InvalidOptionError(`${where}.handle`, 'a function', spec.handle);
  }
  const listener = spec.listener ?? {};
  checkRabbitMQOptions(listener, `${where}.listener`);
  const own = listener.handOverAfterMs as number | undefined;
  if (own !== undefined) checkHandOverFits(own, `${where}.listener.handOverAfterMs`, options);
  return {
    names: topologyOf(spec.topic, spec.consumerGroup, options.retryLadderMs),
    codec: (listener.codec as BodyCodec | undefined) ?? options.codec,
    handOverAfterMs: own ?? options.handOverAfterMs,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`, or a rejection naming `what` after `ms` (core's one bound). */
function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return withTimeout(promise, ms, { error: () => new Error(`${what} took longer than ${ms} ms`) });
}
