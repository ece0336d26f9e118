/**
 * `RocketMQTransport`: the broker side of the transport port on rocketmq-client-nodejs 1.0.8.
 *
 * One SimpleConsumer and one receive loop per subscription. The path of a message, top to bottom:
 * receive (long polling, at most the free concurrency) → decode the body (a body that cannot be decoded
 * is dead-lettered with the reason) → the subscription's `handle`, while a lease keeps each message
 * invisible to the rest of the group → its settlement, carried out as given: ack / change the invisible
 * duration to the retry delay / forward to the dead-letter queue. The registry decides; nothing here
 * turns one settlement into another.
 *
 * A wait (a retry that spends no attempt) never goes back to the broker, which would count the
 * redelivery and, past its limit, dead-letter the message itself: the message stays here, invisible,
 * and goes to `handle` again after the delay, with the same delivery attempt. Nothing is acknowledged
 * unless the registry said so; a broker call that keeps failing leaves the message to come back after
 * its invisible time (at least once, never lost).
 */
import {
  backoffDelay,
  CONSOLE_WARNINGS,
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
} from '@idempotent-mq/core/adapter';
import type { MessageView } from 'rocketmq-client-nodejs';
import {
  createSimpleConsumer,
  errorCode,
  INVALID_RECEIPT_HANDLE,
  startClient,
  type TransportSimpleConsumer,
} from './client.js';
import { type BodyCodec, decodeBody } from './codec.js';
import { NotStartedError } from './errors.js';
import {
  type ResolvedTransportOptions,
  type RocketMQLogger,
  type RocketMQTransportOptions,
  resolveTransportOptions,
  type SettledEvent,
} from './options.js';
import {
  checkRocketMQNames,
  checkRocketMQOptions,
  MAX_INVISIBLE_DURATION_MS,
  rocketMQProfile,
} from './rocketmq-profile.js';

/** Between tries of one ack / change / forward: short, since the message is held meanwhile. */
const SETTLE_RETRY_BACKOFF = { initialMs: 200, maxMs: 2000 } as const;

/**
 * The test double of SIGKILL (`killTransport` in `@idempotent-mq/rocketmq/testing`): a symbol, so that
 * it is no method a user finds on the transport.
 */
export const kill = Symbol('RocketMQTransport.kill');

/**
 * The RocketMQ 5 side of the transport port, on rocketmq-client-nodejs 1.0.8: one SimpleConsumer and one
 * receive loop per subscription, each settlement carried out as the registry gave it (ack, a retry by
 * the invisible duration, a forward to the group's dead-letter queue; a wait held here, in place). Bind
 * it to `MESSAGE_TRANSPORT` and let a `ListenerRegistry` subscribe the listeners through it; `stop()`
 * lets the handlers in flight settle, then closes the clients. See the package README for the table.
 *
 * @example
 * ```ts
 * container.bind(MESSAGE_TRANSPORT).toConstantValue(
 *   new RocketMQTransport({ endpoints: '127.0.0.1:8081', maxDeliveryAttempts: 17 }),
 * );
 * ```
 */
export class RocketMQTransport implements MessageTransport {
  /**
   * RocketMQ's limits and rules: 17 attempts by default (`maxDeliveryAttempts` at most), retry delays
   * up to 12 h, a redelivery horizon of about 4 h 46 min, and its topic, group and filter rules.
   */
  readonly profile: TransportProfile;
  readonly #options: ResolvedTransportOptions;
  readonly #logger: RocketMQLogger;
  readonly #subscriptions: Subscription[] = [];
  readonly #starting = new Set<Promise<void>>();
  #stopped = false;

  /** Validates every option now, naming the one that is wrong. */
  constructor(options: RocketMQTransportOptions) {
    this.#options = resolveTransportOptions(options);
    this.#logger = this.#options.logger ?? CONSOLE_WARNINGS;
    this.profile = rocketMQProfile(this.#options.maxDeliveryAttempts);
  }

  /**
   * Starts a SimpleConsumer for the subscription and its receive loop. Rejects with
   * `RocketMQStartupError` if the proxy cannot be reached within `startupTimeoutMs`.
   */
  async subscribe(spec: SubscriptionSpec): Promise<void> {
    if (this.#stopped) throw new NotStartedError('RocketMQTransport', 'it was stopped; create a new one');
    const { codec, sqlFilter } = validateSpec(spec, this.#options.codec);
    // `stop()` waits for a subscription still starting, so that its client is closed before it returns.
    const starting = this.#start(spec, codec, sqlFilter);
    this.#starting.add(starting);
    try {
      await starting;
    } finally {
      this.#starting.delete(starting);
    }
  }

  async #start(spec: SubscriptionSpec, codec: BodyCodec, sqlFilter: string | undefined): Promise<void> {
    const consumer = createSimpleConsumer(this.#options, {
      topic: spec.topic,
      consumerGroup: spec.consumerGroup,
      filter: sqlFilter !== undefined ? { sql: sqlFilter } : { tag: spec.filter },
      awaitDurationMs: this.#options.awaitDurationMs,
    });
    await startClient(
      consumer,
      `simple consumer of group "${spec.consumerGroup}" on topic "${spec.topic}"`,
      this.#options,
      this.#logger,
    );
    if (this.#stopped) {
      await consumer.close(this.#logger);
      throw new NotStartedError('RocketMQTransport', 'it was stopped; create a new one');
    }
    this.#warnIfGroupDeadLettersEarlier(spec, consumer.groupMaxAttempts);
    const subscription = new Subscription(spec, consumer, { ...this.#options, codec }, this.#logger);
    this.#subscriptions.push(subscription);
    subscription.start();
  }

  /**
   * The proxy's settings say how many deliveries the group really allows. Fewer than the listener's
   * `maxAttempts` is a configuration to fix, not a reason to refuse: the broker then dead-letters a
   * failing message before the registry's last attempt (waits are unaffected: they stay in place).
   */
  #warnIfGroupDeadLettersEarlier(spec: SubscriptionSpec, groupMaxAttempts: number | undefined): void {
    if (groupMaxAttempts === undefined || groupMaxAttempts >= spec.maxAttempts) return;
    this.#logger.warn(
      `RocketMQ ${spec.consumerGroup}@${spec.topic}: the proxy says group "${spec.consumerGroup}" ` +
        `dead-letters after ${groupMaxAttempts} deliveries, fewer than the listener's maxAttempts ` +
        `(${spec.maxAttempts}): a failing message reaches the dead-letter queue before its last attempt. ` +
        `Raise the group's retryMaxTimes to ${spec.maxAttempts - 1} (mqadmin updateSubGroup -r), or set ` +
        `RocketMQTransport.maxDeliveryAttempts to ${groupMaxAttempts}.`,
    );
  }

  /**
   * Stops receiving, lets every handler in flight settle (a message waiting in place goes back to the
   * broker for the rest of its wait), then closes the clients.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.allSettled([...this.#starting]);
    await Promise.all(this.#subscriptions.map((s) => s.stop()));
    this.#subscriptions.length = 0;
  }

  /** Dies on the spot, as a killed process: see `killTransport`. */
  async [kill](): Promise<void> {
    this.#stopped = true;
    await Promise.allSettled([...this.#starting]);
    await Promise.all(this.#subscriptions.map((s) => s.kill()));
    this.#subscriptions.length = 0;
  }
}

/** One subscription's receive loop and the messages it has in flight. */
class Subscription {
  #running = false;
  /** Killed: nothing more reaches the broker, not even a settlement already decided. */
  #dead = false;
  #loop: Promise<void> = Promise.resolve();
  #inFlight = 0;
  readonly #batches = new Set<Promise<void>>();
  readonly #leases = new Set<InvisibilityLease>();
  /** Cuts short the waits in place when `stop()` begins. */
  readonly #stopping = new AbortController();
  /** Wake the loop from a backoff sleep (stop only) or from a wait for a free slot. */
  #wakeSleep: (() => void) | undefined;
  #wakeSlot: (() => void) | undefined;

  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly consumer: TransportSimpleConsumer,
    private readonly options: ResolvedTransportOptions,
    private readonly logger: RocketMQLogger,
  ) {}

  start(): void {
    this.#running = true;
    this.#loop = this.#receiveLoop();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#stopping.abort();
    this.#wakeSleep?.();
    // The receive in progress returns within awaitDurationMs; what it brings is handled, not dropped.
    await this.#loop;
    while (this.#batches.size > 0) await Promise.all([...this.#batches]);
    await this.consumer.close(this.logger);
  }

  /**
   * Dies on the spot: no receive, renewal or settlement more, the handlers in flight abandoned (their
   * answers are dropped) and no termination notice. What it held comes back to the group after its
   * invisible time, with `deliveryAttempt + 1`.
   */
  async kill(): Promise<void> {
    this.#dead = true;
    this.#running = false;
    this.#stopping.abort();
    this.#wakeSleep?.();
    for (const lease of this.#leases) lease.release();
    await this.consumer.close(this.logger, { notify: false });
    await this.#loop;
  }

  async #receiveLoop(): Promise<void> {
    let failures = 0;
    while (this.#running) {
      const free = this.spec.concurrency - this.#inFlight;
      if (free <= 0) {
        await this.#pause();
        continue;
      }
      let views: MessageView[];
      try {
        views = await this.consumer.receive(
          Math.min(free, this.options.batchSize),
          this.options.invisibleDurationMs,
        );
        if (failures > 0) this.logger.info(`${this.#name()}: receiving again after ${failures} failure(s)`);
        failures = 0;
      } catch (error) {
        failures++;
        const delay = backoffDelay(this.options.receiveBackoff, failures);
        if (failures === 1 || failures % 10 === 0) {
          this.logger.warn(
            `${this.#name()}: receive failed (${failures}x), retrying in ${delay} ms: ${String(error)}`,
          );
        }
        await this.#pause(delay);
        continue;
      }
      // A dead consumer drops what its last receive brought: it comes back after its invisible time.
      if (views.length > 0 && !this.#dead) this.#dispatch(views);
    }
  }

  /** Sleeps `ms`, or until a slot frees when `ms` is omitted; `stop()` cuts either short. */
  #pause(ms?: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.#wakeSleep = undefined;
        self.#wakeSlot = undefined;
        resolve();
      }
      this.#wakeSleep = done;
      if (ms === undefined) this.#wakeSlot = done;
    });
  }

  #dispatch(views: MessageView[]): void {
    this.#inFlight += views.length;
    const batch: Promise<void> = this.#handleBatch(views)
      .catch((error: unknown) =>
        this.logger.error(`${this.#name()}: [bug] batch handling threw: ${String(error)}`),
      )
      .finally(() => this.#batches.delete(batch));
    this.#batches.add(batch);
  }

  /** Each message holds its concurrency slot until its final settlement, waits in place included. */
  async #handleBatch(views: MessageView[]): Promise<void> {
    const leases = views.map((view) => new InvisibilityLease(view, this.consumer, this.options, this.logger));
    for (const lease of leases) this.#leases.add(lease);
    const holding = new Set(leases);
    try {
      await handleReceivedBatch(leases, {
        decode: (lease) => toTransportMessage(lease.view, this.options),
        handle: (messages) => this.#callHandler(messages),
        settle: (lease, settlement) => this.#settle(lease, settlement),
        carryOut: (lease, message, settlement) => this.#carryOut(lease, message, settlement),
        release: (lease) => {
          if (!holding.delete(lease)) return;
          this.#inFlight--;
          this.#wakeSlot?.();
        },
      });
    } finally {
      for (const lease of leases) {
        lease.release();
        this.#leases.delete(lease);
      }
    }
  }

  /**
   * Carries out the registry's settlement (core's `carryOutInPlace`): a wait is held here, the lease
   * keeping the message invisible, and goes to `handle` again after the delay with the same delivery
   * attempt; only a settlement that is not a wait reaches the broker, with the newest receipt handle.
   */
  #carryOut(lease: InvisibilityLease, message: TransportMessage, first: Settlement): Promise<void> {
    return carryOutInPlace(first, {
      running: () => this.#running,
      dead: () => this.#dead,
      stopping: this.#stopping.signal,
      holding: (wait) => this.#report(this.#event(lease.view, wait, { ok: true, inPlace: true })),
      handleAgain: async () => (await this.#callHandler([message]))[0] as Settlement,
      settle: (settlement) => this.#settle(lease, settlement),
      handBack: (wait) => this.#settle(lease, wait, `${wait.reason}; handed back to the broker at stop()`),
    });
  }

  /** The subscription's handler; a throw or a malformed answer becomes a failure retry for each. */
  async #callHandler(messages: TransportMessage[]): Promise<Settlement[]> {
    return settlementsOf(this.spec, messages, this.options.failureBackoff, (problem) =>
      this.logger.warn(`${this.#name()}: ${problem}; the batch will be redelivered`),
    );
  }

  /**
   * Makes the broker call a settlement stands for: ack, ChangeInvisibleDuration(delay), or
   * ForwardMessageToDeadLetterQueue. `handedBack` marks a wait returned to the broker at `stop()`.
   */
  async #settle(lease: InvisibilityLease, settlement: Settlement, handedBack?: string): Promise<void> {
    if (this.#dead) return;
    await lease.stop();
    const view = lease.view;
    const attempt = deliveryAttemptOf(view);
    // The proxy refuses an invisible duration past its limit: a longer delay is cut to it.
    const delayMs =
      settlement.action === 'retry'
        ? Math.min(MAX_INVISIBLE_DURATION_MS, Math.max(0, Math.round(settlement.delayMs)))
        : 0;
    const call =
      settlement.action === 'ack'
        ? () => this.consumer.ackStrictly(view)
        : settlement.action === 'retry'
          ? () => this.consumer.changeInvisibleDuration(view, delayMs)
          : () => this.consumer.forwardToDeadLetterQueue(view, attempt, this.spec.maxAttempts);
    const outcome = await this.#withRetries(call);
    if (settlement.action === 'deadLetter') {
      this.logger.warn(
        `${this.#name()}: message ${view.messageId} (keys ${JSON.stringify(view.keys)}) ` +
          `${outcome.ok ? 'dead-lettered' : 'could not be dead-lettered'}: ${settlement.reason}`,
      );
    }
    if (!outcome.ok) {
      this.logger.warn(
        `${this.#name()}: ${settlement.action} of message ${view.messageId} failed (${String(outcome.error)}); ` +
          'it will be redelivered after its invisible time',
      );
    }
    const carried =
      settlement.action === 'retry'
        ? { ...settlement, delayMs, ...(handedBack !== undefined ? { reason: handedBack } : {}) }
        : settlement;
    this.#report(
      this.#event(view, carried, {
        ok: outcome.ok,
        error: outcome.error,
        ...(handedBack !== undefined ? { inPlace: false } : {}),
      }),
    );
  }

  /** Tries a broker call a few times; a stale receipt handle is final (the broker redelivers anyway). */
  async #withRetries(call: () => Promise<unknown>): Promise<{ ok: boolean; error?: unknown }> {
    let error: unknown;
    for (let attempt = 1; attempt <= this.options.settleAttempts; attempt++) {
      try {
        await call();
        return { ok: true };
      } catch (e) {
        error = e;
        if (errorCode(e) === INVALID_RECEIPT_HANDLE || attempt === this.options.settleAttempts) break;
        await sleep(backoffDelay(SETTLE_RETRY_BACKOFF, attempt));
      }
    }
    return { ok: false, error };
  }

  #event(
    view: MessageView,
    settlement: Settlement,
    outcome: { ok: boolean; error?: unknown; inPlace?: boolean },
  ): SettledEvent {
    return {
      topic: this.spec.topic,
      consumerGroup: this.spec.consumerGroup,
      messageId: view.messageId,
      keys: [...view.keys],
      deliveryAttempt: deliveryAttemptOf(view),
      action: settlement.action,
      reason: settlement.action === 'ack' ? undefined : settlement.reason,
      ...(settlement.action === 'retry'
        ? { delayMs: settlement.delayMs, countsAsAttempt: settlement.countsAsAttempt }
        : {}),
      ...(outcome.inPlace !== undefined ? { inPlace: outcome.inPlace } : {}),
      ok: outcome.ok,
      error: outcome.error,
    };
  }

  #report(event: SettledEvent): void {
    try {
      this.options.onSettled?.(event);
    } catch (error) {
      this.logger.error(`${this.#name()}: onSettled threw: ${String(error)}`);
    }
  }

  #name(): string {
    return `RocketMQ ${this.spec.consumerGroup}@${this.spec.topic}`;
  }
}

/**
 * Keeps one message invisible to the rest of its group while its handler works and while it waits in
 * place, by extending its invisible duration every `renewIntervalMs` (an extension is no redelivery:
 * the broker counts nothing). The client replaces the receipt handle on each change, so the settlement
 * that follows uses the newest one.
 */
class InvisibilityLease {
  readonly #timer: NodeJS.Timeout;
  #renewal: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(
    readonly view: MessageView,
    private readonly consumer: TransportSimpleConsumer,
    private readonly options: ResolvedTransportOptions,
    private readonly logger: RocketMQLogger,
  ) {
    this.#timer = setInterval(() => this.#renew(), options.renewIntervalMs);
  }

  #renew(): void {
    if (this.#stopped) return;
    this.#renewal = this.#renewal.then(async () => {
      if (this.#stopped) return;
      try {
        await this.consumer.changeInvisibleDuration(this.view, this.options.invisibleDurationMs);
      } catch (error) {
        this.logger.warn(
          `RocketMQ: could not extend the invisible time of message ${this.view.messageId} ` +
            `(it may be redelivered to another consumer while this one works): ${String(error)}`,
        );
      }
    });
  }

  /** Stops renewing and waits for a renewal in flight, so the settlement uses the current handle. */
  async stop(): Promise<void> {
    this.release();
    await this.#renewal;
  }

  release(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }
}

/** A MessageView as handlers see it; a corrupted or undecodable body is a reason to dead-letter. */
function toTransportMessage(view: MessageView, options: ResolvedTransportOptions): ReceivedMessage {
  if (view.corrupted) {
    return { ok: false, reason: 'the body does not match its digest (corrupted in transit or in storage)' };
  }
  const decoded = decodeBody(options.codec, view.body);
  if (!decoded.ok) return { ok: false, reason: decoded.reason };
  const born = view.bornTimestamp?.getTime();
  return {
    ok: true,
    message: {
      messageId: view.messageId,
      topic: view.topic,
      keys: [...view.keys],
      ...(view.tag ? { tag: view.tag } : {}),
      body: decoded.body,
      properties: Object.fromEntries(view.properties),
      deliveryAttempt: deliveryAttemptOf(view),
      ...(born !== undefined && born > 0 ? { bornAt: born } : {}),
    },
  };
}

/** The client reports 0 when the broker did not say; the port counts from 1. */
function deliveryAttemptOf(view: MessageView): number {
  const attempt = view.deliveryAttempt;
  return typeof attempt === 'number' && attempt > 0 ? attempt : 1;
}

/**
 * Checks what the transport itself needs of a subscription (the registry has already checked the
 * listener against the profile; a direct caller gets the same name and filter rules); answers its
 * codec and SQL filter, from the listener's RocketMQ metadata.
 */
function validateSpec(
  spec: SubscriptionSpec,
  defaultCodec: BodyCodec,
): { codec: BodyCodec; sqlFilter?: string } {
  const where = `subscription(${String(spec?.topic)}/${String(spec?.consumerGroup)})`;
  if (typeof spec !== 'object' || spec === null) {
    throw new InvalidOptionError('subscription', 'a SubscriptionSpec object', spec);
  }
  checkRocketMQNames(spec, where);
  if (spec.filter !== undefined && (typeof spec.filter !== 'string' || spec.filter.trim() === '')) {
    throw new InvalidOptionError(
      `${where}.filter`,
      "a tag expression like 'PAY || REFUND', or '*'",
      spec.filter,
    );
  }
  for (const field of ['concurrency', 'maxAttempts'] as const) {
    const value = spec[field];
    if (!Number.isInteger(value) || value < 1) {
      throw new InvalidOptionError(`${where}.${field}`, 'a positive integer', value);
    }
  }
  if (typeof spec.handle !== 'function') {
    throw new InvalidOptionError(`${where}.handle`, 'a function', spec.handle);
  }
  const listener = spec.listener ?? {};
  checkRocketMQOptions(listener, `${where}.listener`);
  const sqlFilter = listener.sqlFilter as string | undefined;
  return {
    codec: (listener.codec as BodyCodec | undefined) ?? defaultCodec,
    ...(sqlFilter !== undefined ? { sqlFilter } : {}),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
