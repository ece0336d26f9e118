/**
 * An at-least-once broker in memory: topics, consumer groups, invisibility, delivery attempts, a
 * dead-letter queue, and seeded fault injection for each way a real broker duplicates a message. The
 * embedded default transport of the demo, and the broker of the end-to-end tests.
 */
import type {
  Clock,
  MessageTransport,
  Settlement,
  SubscriptionSpec,
  TransportMessage,
  TransportProfile,
} from '@idempotent-mq/core/adapter';
import { InvalidOptionError, integerOption, MAX_TIMER_MS } from '@idempotent-mq/core/adapter';

/** Probabilities (0 to 1) of each cause of duplicates. All off by default. */
export interface BrokerFaults {
  /** A publish is stored twice: the producer resent after a lost send ack (same key, a new message id). */
  readonly producerResend: number;
  /** An ack is lost: the message comes back after the visibility timeout, its work already done. */
  readonly lostAck: number;
  /** A rebalance hands a message in flight to another consumer of the group, at once. */
  readonly rebalance: number;
  /** The consumer dies mid-handler: its settlement never arrives; redelivered after the visibility timeout. */
  readonly crash: number;
}

export interface InMemoryBrokerOptions {
  /** @defaultValue no faults */
  readonly faults?: Partial<BrokerFaults>;
  /** Seeds the fault injection, so a run can be replayed. @defaultValue 1 */
  readonly seed?: number;
  /**
   * How long a delivered message stays invisible without word from its consumer: a transport renews it
   * while its handler runs; a consumer that dies (or crashes, or loses its ack) stops renewing, and the
   * message comes back this long after. @defaultValue 200 ms
   */
  readonly visibilityTimeoutMs?: number;
  /**
   * Deliveries after which the broker dead-letters a message by itself, as a real broker does (crashes
   * and failures count; waits do not). @defaultValue 17
   */
  readonly maxDeliveries?: number;
  /** The most messages handed to one `handle` call. @defaultValue 8 */
  readonly batchSize?: number;
  /**
   * The broker's time: visibility, retry delays and its own waits. Give the engine's `FakeClock` and
   * move it with {@link advanceUntilIdle}, and a test of engine and broker needs no real sleep.
   * @defaultValue the system clock
   */
  readonly clock?: Clock;
}

/** How a delivery came about (`wait`: after a retry that spent no attempt). */
export type DeliveryCause = 'first' | 'resend' | 'retry' | 'wait' | 'lostAck' | 'rebalance' | 'crash';

export interface DeadLetter {
  readonly consumerGroup: string;
  readonly message: TransportMessage;
  readonly reason: string;
}

interface Stored {
  readonly messageId: string;
  readonly topic: string;
  readonly keys: readonly string[];
  readonly tag?: string;
  readonly body: unknown;
  readonly properties: Readonly<Record<string, string>>;
  readonly bornAt: number;
  readonly resent: boolean;
}

interface Entry {
  readonly stored: Stored;
  attempts: number;
  visibleAt: number;
  /** Deliveries in flight, by id, with the time their consumer must renew them by. */
  readonly live: Map<number, number>;
  done: boolean;
  /** Why it is visible again, for the statistics of its next delivery. */
  cause: DeliveryCause;
  /** A rebalance copy is due: deliverable once more even though it is in flight. */
  rebalanceDue: boolean;
}

interface Group {
  readonly name: string;
  readonly topic: string;
  readonly entries: Entry[];
}

/**
 * The wall clock with timers that keep the process alive (core's SystemClock unrefs its timers): a
 * broker waiting for its next delivery is work in progress, as a real broker's socket would be.
 */
const WALL_CLOCK: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

const FAULTS_OFF: BrokerFaults = { producerResend: 0, lostAck: 0, rebalance: 0, crash: 0 };

/** A small, fast, seeded PRNG (mulberry32): numbers in [0, 1), the same for the same seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A broker in this process with the at-least-once faults of a real one, seeded: resends, lost acks,
 * consumer crashes, rebalances, a dead-letter queue per group, `maxDeliveries`, and the injected
 * clock. `connect()` gives a `MessageTransport` for the listener registry; `advanceUntilIdle()` drives
 * a FakeClock until nothing is left in flight. For tests and the demo, never production.
 */
export class InMemoryBroker {
  /** Deliveries made, by cause. */
  readonly deliveries: Record<DeliveryCause, number> = {
    first: 0,
    resend: 0,
    retry: 0,
    wait: 0,
    lostAck: 0,
    rebalance: 0,
    crash: 0,
  };
  /** Messages stored, resent copies included. */
  stored = 0;
  private readonly faults: BrokerFaults;
  private readonly random: () => number;
  /** @internal */
  readonly visibilityTimeoutMs: number;
  private readonly maxDeliveries: number;
  readonly batchSize: number;
  /** What the broker brings to the settlement policy. */
  readonly profile: TransportProfile;
  private readonly topics = new Map<string, Stored[]>();
  private readonly groups = new Map<string, Group>();
  private readonly dead: DeadLetter[] = [];
  private readonly waiters = new Set<() => void>();
  /** @internal */
  readonly clock: Clock;
  private nextId = 1;
  private nextDelivery = 1;

  constructor(options: InMemoryBrokerOptions = {}) {
    this.faults = { ...FAULTS_OFF, ...options.faults };
    for (const [name, p] of Object.entries(this.faults)) {
      if (typeof p !== 'number' || !(p >= 0 && p <= 1))
        throw new InvalidOptionError(`faults.${name}`, 'a probability from 0 to 1', p);
    }
    this.random = seededRandom(options.seed ?? 1);
    this.visibilityTimeoutMs = integerOption('', 'visibilityTimeoutMs', options.visibilityTimeoutMs, {
      min: 1,
      max: MAX_TIMER_MS,
      fallback: 200,
    });
    this.batchSize = integerOption('', 'batchSize', options.batchSize, { min: 1, max: 1024, fallback: 8 });
    this.clock = options.clock ?? WALL_CLOCK;
    this.maxDeliveries = integerOption('', 'maxDeliveries', options.maxDeliveries, {
      min: 1,
      max: 1000,
      fallback: 17,
    });
    this.profile = Object.freeze({
      broker: 'the in-memory broker',
      defaultMaxAttempts: this.maxDeliveries,
      maxAttempts: this.maxDeliveries,
      maxRetryDelayMs: 2 ** 31 - 1,
      // It redelivers only on a consumer's word or silence: no schedule of its own to outlive.
      redeliveryHorizonMs: 0,
      checkListener: () => undefined,
    });
  }

  /** Publishes a message; returns its id (a resent copy, if the fault fires, gets another). */
  publish(
    topic: string,
    message: { keys: readonly string[]; body: unknown; tag?: string; properties?: Record<string, string> },
  ): string {
    const copies = this.roll('producerResend') ? 2 : 1;
    let first = '';
    for (let i = 0; i < copies; i++) {
      const stored: Stored = {
        messageId: `MSG-${String(this.nextId++).padStart(8, '0')}`,
        topic,
        keys: [...message.keys],
        tag: message.tag,
        body: message.body,
        properties: { ...message.properties },
        bornAt: this.clock.now(),
        resent: i > 0,
      };
      first ||= stored.messageId;
      this.stored++;
      const log = this.topics.get(topic) ?? [];
      log.push(stored);
      this.topics.set(topic, log);
      for (const group of this.groups.values())
        if (group.topic === topic) group.entries.push(entryOf(stored));
    }
    this.wake();
    return first;
  }

  /** A consumer's connection: the {@link MessageTransport} one process binds. */
  connect(): InMemoryTransport {
    return new InMemoryTransport(this);
  }

  /** Messages given up on, per consumer group or all. */
  deadLetters(consumerGroup?: string): readonly DeadLetter[] {
    return consumerGroup ? this.dead.filter((d) => d.consumerGroup === consumerGroup) : [...this.dead];
  }

  /** Messages not yet acknowledged nor dead-lettered, across groups (or in one). */
  pending(consumerGroup?: string): number {
    let n = 0;
    for (const group of this.groups.values()) {
      if (consumerGroup && group.name !== consumerGroup) continue;
      for (const e of group.entries) if (!e.done) n++;
    }
    return n;
  }

  /**
   * Resolves once every message of every group is settled for good, or rejects after `timeoutMs`. On a
   * `FakeClock`, move the clock instead: {@link advanceUntilIdle}.
   */
  async idle(timeoutMs = 60_000): Promise<void> {
    const deadline = this.clock.now() + timeoutMs;
    while (this.pending() > 0) {
      if (this.clock.now() > deadline)
        throw new Error(`the broker still has ${this.pending()} pending messages`);
      await this.changed(50);
    }
  }

  /** @internal The group's queue, created on first subscription with the topic's history. */
  group(topic: string, name: string): Group {
    const id = `${topic}\u0000${name}`;
    let group = this.groups.get(id);
    if (!group) {
      group = { name, topic, entries: (this.topics.get(topic) ?? []).map(entryOf) };
      this.groups.set(id, group);
    }
    return group;
  }

  /** @internal Takes up to `max` deliverable messages of the group that match the filter. */
  take(group: Group, filter: string, max: number): Delivery[] {
    const now = this.clock.now();
    const taken: Delivery[] = [];
    for (const entry of group.entries) {
      if (taken.length >= max) break;
      if (entry.done) continue;
      this.expireDead(entry, now);
      const rebalance = entry.rebalanceDue;
      if (!rebalance && (entry.live.size > 0 || entry.visibleAt > now)) continue;
      if (!matches(filter, entry.stored.tag)) {
        entry.done = true; // not for this group's subscription, as a broker filters it out
        continue;
      }
      const cause: DeliveryCause = rebalance ? 'rebalance' : entry.cause;
      // A rebalance copy and a wait's redelivery spend no attempt; every other delivery does.
      const spends = cause !== 'rebalance' && cause !== 'wait';
      if (spends && entry.attempts >= this.maxDeliveries) {
        this.deadLetter(
          group,
          entry,
          messageOf(entry),
          `the broker gave up after ${entry.attempts} deliveries`,
        );
        continue;
      }
      if (rebalance) entry.rebalanceDue = false;
      if (spends) entry.attempts++;
      const id = this.nextDelivery++;
      entry.live.set(id, now + this.visibilityTimeoutMs);
      this.deliveries[cause]++;
      if (!rebalance && this.roll('rebalance')) entry.rebalanceDue = true;
      taken.push({ id, entry, message: messageOf(entry), crash: this.roll('crash') });
    }
    return taken;
  }

  /** @internal Keeps a delivery invisible for another visibility timeout; false once it is stale. */
  renew(delivery: Delivery): boolean {
    const { entry, id } = delivery;
    if (entry.done || !entry.live.has(id)) return false;
    entry.live.set(id, this.clock.now() + this.visibilityTimeoutMs);
    return true;
  }

  /**
   * @internal Applies what the consumer said of one delivery. A stale delivery (its consumer fell
   * silent past the visibility timeout and the message went to another) is ignored, as a broker refuses
   * an expired receipt handle.
   */
  settle(group: Group, delivery: Delivery, settlement: Settlement | undefined): void {
    const { entry, message } = delivery;
    if (!entry.live.delete(delivery.id) || entry.done) return;
    if (delivery.crash || settlement === undefined) {
      this.hideFor(entry, this.visibilityTimeoutMs, 'crash');
    } else if (settlement.action === 'ack') {
      if (this.roll('lostAck')) this.hideFor(entry, this.visibilityTimeoutMs, 'lostAck');
      else entry.done = true;
    } else if (settlement.action === 'retry') {
      this.hideFor(entry, settlement.delayMs, settlement.countsAsAttempt ? 'retry' : 'wait');
    } else {
      this.deadLetter(group, entry, message, settlement.reason);
    }
    this.wake();
  }

  /** Deliveries whose consumer stopped renewing them are over: the message is up for redelivery. */
  private expireDead(entry: Entry, now: number): void {
    for (const [id, until] of entry.live) {
      if (until > now) continue;
      entry.live.delete(id);
      if (entry.live.size === 0 && entry.visibleAt <= now) {
        entry.visibleAt = now;
        entry.cause = 'crash';
      }
    }
  }

  /** @internal Resolves on the next change, or after `ms`. */
  changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.clock.clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = this.clock.setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  /** @internal The soonest time a not-yet-visible message of the group becomes visible. */
  nextVisible(group: Group): number {
    let next = Number.POSITIVE_INFINITY;
    for (const e of group.entries) {
      if (e.done) continue;
      for (const until of e.live.values()) if (until < next) next = until;
      if (e.live.size === 0 && e.visibleAt < next) next = e.visibleAt;
    }
    return next;
  }

  private hideFor(entry: Entry, ms: number, cause: DeliveryCause): void {
    // A second delivery still in flight (a rebalance copy) keeps the message invisible meanwhile.
    entry.visibleAt = this.clock.now() + ms;
    entry.cause = cause;
  }

  private deadLetter(group: Group, entry: Entry, message: TransportMessage, reason: string): void {
    entry.done = true;
    this.dead.push({ consumerGroup: group.name, message, reason });
  }

  private roll(fault: keyof BrokerFaults): boolean {
    const p = this.faults[fault];
    return p > 0 && this.random() < p;
  }

  /** @internal Wakes every pump waiting for a change (a delivery, a settlement, a stop). */
  wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/** One delivery of a message to a consumer. */
interface Delivery {
  readonly id: number;
  readonly entry: Entry;
  readonly message: TransportMessage;
  /** The crash fault fired: its settlement will never reach the broker. */
  readonly crash: boolean;
}

/** One consumer's connection to an {@link InMemoryBroker}. */
export class InMemoryTransport implements MessageTransport {
  private readonly pumps: Promise<void>[] = [];
  private running = true;
  private killed = false;

  constructor(private readonly broker: InMemoryBroker) {}

  /** The broker's profile. */
  get profile(): TransportProfile {
    return this.broker.profile;
  }

  async subscribe(spec: SubscriptionSpec): Promise<void> {
    if (!this.running) throw new Error('this transport is stopped');
    this.pumps.push(this.pump(spec));
  }

  async stop(): Promise<void> {
    this.running = false;
    this.broker.wake(); // a pump waiting for its next delivery, however far off on its clock
    await Promise.all(this.pumps);
  }

  /**
   * The consumer dies on the spot, as a process killed with SIGKILL: it receives nothing more, renews
   * nothing, and no settlement of its handlers in flight reaches the broker (they are redelivered after
   * the visibility timeout). The handlers themselves are not stopped: in a killed process they would
   * simply vanish; here they run on, unheard.
   */
  kill(): void {
    this.killed = true;
    this.running = false;
    this.broker.wake();
  }

  /** Receives and handles until stopped; handlers in flight finish and settle before it returns. */
  private async pump(spec: SubscriptionSpec): Promise<void> {
    const broker = this.broker;
    const group = broker.group(spec.topic, spec.consumerGroup);
    const filter = spec.filter ?? '*';
    const inFlight = new Set<Promise<void>>();
    // Deliveries being handled: they count against the concurrency and are kept invisible.
    const held = new Set<Delivery>();
    // Keeps what is being handled invisible, however long the handler runs.
    const every = Math.max(1, Math.floor(broker.visibilityTimeoutMs / 3));
    let renewal: unknown;
    const renew = () => {
      if (!this.killed) for (const d of held) broker.renew(d);
      if (this.running) renewal = broker.clock.setTimeout(renew, every);
    };
    renewal = broker.clock.setTimeout(renew, every);
    while (this.running) {
      const room = Math.min(broker.batchSize, spec.concurrency - held.size);
      const batch = room > 0 ? broker.take(group, filter, room) : [];
      if (batch.length === 0) {
        const wait = Math.max(1, Math.min(50, broker.nextVisible(group) - broker.clock.now()));
        await broker.changed(wait);
        continue;
      }
      for (const d of batch) held.add(d);
      const work = spec
        .handle(batch.map((b) => b.message))
        .catch(() => [] as Settlement[])
        .then((settlements) => {
          for (const [i, d] of batch.entries()) {
            held.delete(d);
            if (!this.killed) broker.settle(group, d, settlements[i]);
          }
        });
      const tracked = work.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    }
    if (!this.killed) await Promise.all(inFlight);
    broker.clock.clearTimeout(renewal);
  }
}

function entryOf(stored: Stored): Entry {
  return {
    stored,
    attempts: 0,
    visibleAt: 0,
    live: new Map(),
    done: false,
    cause: stored.resent ? 'resend' : 'first',
    rebalanceDue: false,
  };
}

function messageOf(entry: Entry): TransportMessage {
  const s = entry.stored;
  return {
    messageId: s.messageId,
    topic: s.topic,
    keys: s.keys,
    tag: s.tag,
    body: s.body,
    properties: s.properties,
    deliveryAttempt: Math.max(1, entry.attempts),
    bornAt: s.bornAt,
  };
}

/** RocketMQ tag expressions: `*`, or tags joined by `||`. */
function matches(filter: string, tag: string | undefined): boolean {
  if (filter.trim() === '*') return true;
  return tag !== undefined && filter.split('||').some((t) => t.trim() === tag);
}

/**
 * Moves a `FakeClock` the broker (and the engine) run on until every message is settled: `stepMs` at a
 * time, at most `maxMs` of fake time. Rejects, naming what is left, past it.
 */
export async function advanceUntilIdle(
  broker: InMemoryBroker,
  clock: { advance(ms: number): Promise<void>; now(): number },
  { stepMs = 10, maxMs = 3_600_000 }: { readonly stepMs?: number; readonly maxMs?: number } = {},
): Promise<void> {
  const deadline = clock.now() + maxMs;
  while (broker.pending() > 0) {
    if (clock.now() >= deadline) throw new Error(`the broker still has ${broker.pending()} pending messages`);
    await clock.advance(stepMs);
  }
}
