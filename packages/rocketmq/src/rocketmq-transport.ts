/**
 * `RocketMQTransport`: the broker side of the transport port on rocketmq-client-nodejs 1.0.8.
 *
 * One SimpleConsumer and one receive loop per subscription. The path of a message, top to bottom:
 * receive (long polling, at most the free concurrency) → decode the body (a body that cannot be decoded
 * is dead-lettered with the reason) → the subscription's `handle`, while a lease keeps each message
 * invisible to the rest of the group → its settlement: ack / change the invisible duration to the retry
 * delay / forward to the dead-letter queue. A retry at or past `maxAttempts` is dead-lettered, as the
 * broker would. Nothing is acknowledged unless the handler said so; a broker call that keeps failing
 * leaves the message to come back after its invisible time (at least once, never lost).
 */
import type { MessageTransport, Settlement, SubscriptionSpec, TransportMessage } from '@idempotent-mq/core';
import { InvalidOptionError } from '@idempotent-mq/core';
import type { MessageView } from 'rocketmq-client-nodejs';
import {
  createSimpleConsumer,
  errorCode,
  INVALID_RECEIPT_HANDLE,
  startClient,
  type TransportSimpleConsumer,
} from './client.js';
import { BODY_CODECS, type BodyCodec, decodeBody } from './codec.js';
import { NotStartedError } from './errors.js';
import {
  backoffDelay,
  type ResolvedTransportOptions,
  type RocketMQLogger,
  type RocketMQTransportOptions,
  resolveTransportOptions,
  type SettledEvent,
} from './options.js';

export class RocketMQTransport implements MessageTransport {
  readonly #options: ResolvedTransportOptions;
  readonly #logger: RocketMQLogger;
  readonly #subscriptions: Subscription[] = [];
  readonly #starting = new Set<Promise<void>>();
  #stopped = false;

  /** Validates every option now, naming the one that is wrong. */
  constructor(options: RocketMQTransportOptions) {
    this.#options = resolveTransportOptions(options);
    this.#logger = this.#options.logger ?? consoleWarnings;
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
    const subscription = new Subscription(spec, consumer, { ...this.#options, codec }, this.#logger);
    this.#subscriptions.push(subscription);
    subscription.start();
  }

  /** Stops receiving, lets every handler in flight settle, then closes the clients. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.allSettled([...this.#starting]);
    await Promise.all(this.#subscriptions.map((s) => s.stop()));
    this.#subscriptions.length = 0;
  }
}

/** One subscription's receive loop and the messages it has in flight. */
class Subscription {
  #running = false;
  #loop: Promise<void> = Promise.resolve();
  #inFlight = 0;
  readonly #batches = new Set<Promise<void>>();
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
    this.#wakeSleep?.();
    // The receive in progress returns within awaitDurationMs; what it brings is handled, not dropped.
    await this.#loop;
    while (this.#batches.size > 0) await Promise.all([...this.#batches]);
    await this.consumer.close(this.logger);
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
      if (views.length > 0) this.#dispatch(views);
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
      .finally(() => {
        this.#inFlight -= views.length;
        this.#batches.delete(batch);
        this.#wakeSlot?.();
      });
    this.#batches.add(batch);
  }

  async #handleBatch(views: MessageView[]): Promise<void> {
    const leases = views.map((view) => new InvisibilityLease(view, this.consumer, this.options, this.logger));
    try {
      const decoded: { lease: InvisibilityLease; message: TransportMessage }[] = [];
      const settled: Promise<void>[] = [];
      for (const lease of leases) {
        const result = toTransportMessage(lease.view, this.options);
        if (result.ok) decoded.push({ lease, message: result.message });
        else settled.push(this.#settle(lease, { action: 'deadLetter', reason: result.reason }));
      }
      if (decoded.length > 0) {
        const settlements = await this.#callHandler(decoded.map((d) => d.message));
        decoded.forEach((d, i) => {
          settled.push(this.#settle(d.lease, settlements[i] as Settlement));
        });
      }
      await Promise.all(settled);
    } finally {
      for (const lease of leases) lease.release();
    }
  }

  /** The subscription's handler; a throw or a malformed answer becomes a retry with backoff for each. */
  async #callHandler(messages: TransportMessage[]): Promise<Settlement[]> {
    let problem: string;
    try {
      const settlements = await this.spec.handle(messages);
      if (
        Array.isArray(settlements) &&
        settlements.length === messages.length &&
        settlements.every(isSettlement)
      ) {
        return settlements;
      }
      problem = `the handler answered ${describeAnswer(settlements)} for ${messages.length} message(s)`;
    } catch (error) {
      problem = `the handler threw: ${error instanceof Error ? error.message : String(error)}`;
    }
    this.logger.warn(`${this.#name()}: ${problem}; the batch will be redelivered`);
    return messages.map((m) => ({
      action: 'retry',
      delayMs: backoffDelay(this.options.failureBackoff, m.deliveryAttempt),
      reason: problem,
    }));
  }

  async #settle(lease: InvisibilityLease, requested: Settlement): Promise<void> {
    await lease.stop();
    const view = lease.view;
    const attempt = deliveryAttemptOf(view);
    let settlement = requested;
    if (settlement.action === 'retry' && attempt >= this.spec.maxAttempts) {
      settlement = {
        action: 'deadLetter',
        reason: `still not done after ${attempt} of ${this.spec.maxAttempts} attempts: ${settlement.reason}`,
      };
    }
    const call =
      settlement.action === 'ack'
        ? () => this.consumer.ackStrictly(view)
        : settlement.action === 'retry'
          ? () => this.consumer.changeInvisibleDuration(view, Math.max(0, Math.round(settlement.delayMs)))
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
    this.#report({
      topic: this.spec.topic,
      consumerGroup: this.spec.consumerGroup,
      messageId: view.messageId,
      keys: [...view.keys],
      deliveryAttempt: attempt,
      action: settlement.action,
      reason: settlement.action === 'ack' ? undefined : settlement.reason,
      delayMs: settlement.action === 'retry' ? settlement.delayMs : undefined,
      ok: outcome.ok,
      error: outcome.error,
    });
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
        await sleep(backoffDelay({ initialMs: 200, maxMs: 2000, multiplier: 2 }, attempt));
      }
    }
    return { ok: false, error };
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
 * Keeps one message invisible to the rest of its group while its handler works, by extending its
 * invisible duration every `renewIntervalMs`. The client replaces the receipt handle on each change,
 * so the settlement that follows uses the newest one.
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

type Mapped = { ok: true; message: TransportMessage } | { ok: false; reason: string };

/** A MessageView as handlers see it; a corrupted or undecodable body is a reason to dead-letter. */
function toTransportMessage(view: MessageView, options: ResolvedTransportOptions): Mapped {
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

/** Checks a subscription; answers its codec and SQL filter (from the listener's RocketMQ metadata). */
function validateSpec(
  spec: SubscriptionSpec,
  defaultCodec: BodyCodec,
): { codec: BodyCodec; sqlFilter?: string } {
  const at = (field: string) =>
    `subscription(${String(spec?.topic)}/${String(spec?.consumerGroup)}).${field}`;
  if (typeof spec?.topic !== 'string' || spec.topic.trim() === '') {
    throw new InvalidOptionError(at('topic'), 'a non-empty string', spec?.topic);
  }
  if (typeof spec.consumerGroup !== 'string' || spec.consumerGroup.trim() === '') {
    throw new InvalidOptionError(at('consumerGroup'), 'a non-empty string', spec.consumerGroup);
  }
  if (spec.filter !== undefined && typeof spec.filter !== 'string') {
    throw new InvalidOptionError(at('filter'), "a tag expression like 'PAY || REFUND'", spec.filter);
  }
  if (!Number.isInteger(spec.concurrency) || spec.concurrency < 1 || spec.concurrency > 1024) {
    throw new InvalidOptionError(at('concurrency'), 'an integer from 1 to 1024', spec.concurrency);
  }
  if (!Number.isInteger(spec.maxAttempts) || spec.maxAttempts < 1 || spec.maxAttempts > 1000) {
    throw new InvalidOptionError(at('maxAttempts'), 'an integer from 1 to 1000', spec.maxAttempts);
  }
  if (typeof spec.handle !== 'function') {
    throw new InvalidOptionError(at('handle'), 'a function', spec.handle);
  }
  const listener = spec.listener ?? {};
  const codec = listener.codec ?? defaultCodec;
  if (!BODY_CODECS.includes(codec as BodyCodec)) {
    throw new InvalidOptionError(at('listener.codec'), "'json' | 'utf8' | 'buffer'", codec);
  }
  const sqlFilter = listener.sqlFilter;
  if (sqlFilter !== undefined && (typeof sqlFilter !== 'string' || sqlFilter.trim() === '')) {
    throw new InvalidOptionError(at('listener.sqlFilter'), 'a non-empty SQL92 expression', sqlFilter);
  }
  return { codec: codec as BodyCodec, ...(sqlFilter !== undefined ? { sqlFilter } : {}) };
}

function isSettlement(s: unknown): s is Settlement {
  const action = (s as { action?: unknown } | null)?.action;
  if (action === 'ack') return true;
  if (action === 'retry') {
    const delay = (s as { delayMs?: unknown }).delayMs;
    return typeof delay === 'number' && Number.isFinite(delay);
  }
  return action === 'deadLetter';
}

function describeAnswer(answer: unknown): string {
  if (!Array.isArray(answer)) return typeof answer;
  return `${answer.length} settlement(s)${answer.every(isSettlement) ? '' : ' (some malformed)'}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const consoleWarnings: RocketMQLogger = {
  info: () => undefined,
  warn: (...args) => console.warn(...args),
  error: (...args) => console.error(...args),
};
