/**
 * The payment scenario, reusable by the demo and the end-to-end tests: producers send payment requests
 * keyed by serial number through a faulty at-least-once broker to several consumers; afterwards the
 * ledger is audited for double charges and lost payments.
 */
import 'reflect-metadata';
import {
  IDEMPOTENCY_CACHE,
  IDEMPOTENCY_OUTCOME_LISTENER,
  IDEMPOTENCY_STORE,
  type IdempotencyCache,
  IdempotencyModule,
  type IdempotencyOutcome,
  type IdempotencyStore,
  ListenerRegistry,
  MESSAGE_TRANSPORT,
  type MessageTransport,
} from '@idempotent-mq/core';
import { seededRandom } from '@idempotent-mq/testing';
import { Container } from 'inversify';
import type { BrokerSetup, ConsumerFaults } from './brokers.js';
import { type Ledger, OPENING_BALANCE } from './ledger.js';
import {
  CONSUMER_PROCESS,
  type ConsumerProcess,
  HANDLER_FAULTS,
  type HandlerFaults,
  type KillKind,
  LEDGER,
  type PaymentRequest,
  paymentListener,
} from './payment-consumer.js';

/** Where tokens and the ledger live; shared by all consumers, as one database is. */
export interface Storage {
  readonly store: IdempotencyStore;
  readonly cache: IdempotencyCache;
  readonly ledger: Ledger;
  /** e.g. "SQLite (/tmp/x.db) + memory cache". */
  readonly label: string;
  close(): Promise<void>;
}

/** Every fault on: the demo's defaults, and what the end-to-end tests run. */
export const DEFAULT_FAULTS = Object.freeze({
  producerResend: 0.3,
  lostAck: 0.1,
  rebalance: 0.05,
  crash: 0.05,
  handlerCrash: 0.05,
});

export interface ScenarioOptions {
  readonly payments: number;
  readonly consumers: number;
  readonly accounts: number;
  readonly seed: number;
  /** Probability that a handler run crashes mid-handler, after its write and before commit. */
  readonly handlerCrash: number;
  readonly broker: BrokerSetup;
  readonly storage: Storage;
  /** Called as payments get applied. */
  readonly onProgress?: (applied: number, total: number) => void;
  /** Gives up waiting for the broker to drain after this long. @defaultValue 120 000 ms */
  readonly timeoutMs?: number;
}

export interface ScenarioReport {
  readonly paymentsSent: number;
  readonly messagesStored: number;
  readonly deliveries: Record<string, number>;
  readonly handlerRuns: number;
  readonly handlerCrashes: number;
  readonly paymentsApplied: number;
  readonly duplicatesSkipped: { readonly cache: number; readonly store: number };
  readonly inFlightRetried: number;
  readonly deadLetters: number;
  /** Faults carried out beyond the broker's deliveries: kills, rebalances, what the broker said of resends. */
  readonly faults: Record<string, number>;
  readonly balancesExact: boolean;
  readonly doubleCharges: number;
  readonly lostPayments: number;
  readonly elapsedMs: number;
}

/** A consumer process as its supervisor sees it. */
interface ProcessLife extends ConsumerProcess {
  /** `stopping`: leaving or restarting, it drains; `dead`: killed. Only a running process is killed. */
  state: 'running' | 'stopping' | 'dead';
  handlersKilled: boolean;
}

/** One consumer process: its container's registry, its broker connection, and its life. */
interface Consumer {
  readonly registry: ListenerRegistry;
  readonly transport: MessageTransport;
  readonly life: ProcessLife;
}

/**
 * The consumer processes of the group, as a supervisor keeps them: `size` of them, a restarted one
 * drained first, a killed one replaced by a new one; guests join for a while (a rebalance). Kills are
 * armed, and carried out by the next handler run of a running process, between its write and its
 * commit, so each one cuts work in progress.
 */
class ConsumerGroup {
  /** The supervised processes: one per slot. */
  private readonly slots: Consumer[] = [];
  /** Those that joined for a while, oldest first. */
  private readonly guests: Consumer[] = [];
  /** Every process ever started: each is stopped at the end, whatever became of it. */
  private readonly started: Consumer[] = [];
  /** Kills and leaves under way; a leave's failure is kept for the end. */
  private readonly pending: Promise<unknown>[] = [];
  private readonly armed: KillKind[] = [];
  private closing = false;
  readonly counts = { 'lost ack': 0, crash: 0, joined: 0 };

  constructor(
    private readonly connect: () => Promise<MessageTransport>,
    private readonly start: (transport: MessageTransport, life: ConsumerProcess) => Promise<ListenerRegistry>,
    private readonly faults: ConsumerFaults | undefined,
  ) {}

  async fill(size: number): Promise<void> {
    this.slots.push(...(await Promise.all(Array.from({ length: size }, () => this.spawn()))));
  }

  /** A graceful restart of the first process: it drains, then a new one takes its place. */
  async restartFirst(): Promise<void> {
    const first = this.slots[0] as Consumer;
    if (first.life.state === 'running') first.life.state = 'stopping';
    await first.registry.stop();
    const i = this.slots.indexOf(first);
    if (i >= 0) this.slots[i] = await this.spawn();
  }

  async join(): Promise<void> {
    this.counts.joined++;
    this.guests.push(await this.spawn());
  }

  /** The oldest guest leaves: it stops receiving and drains what it holds. */
  leave(): void {
    const guest = this.guests.shift();
    if (!guest) return;
    if (guest.life.state === 'running') guest.life.state = 'stopping';
    // Settled at once, so that a failure is no unhandled rejection; rethrown by close().
    this.pending.push(
      guest.registry.stop().then(
        () => undefined,
        (error: unknown) => error,
      ),
    );
  }

  /** The next handler run of a running process kills it this way. */
  arm(how: KillKind): void {
    this.armed.push(how);
  }

  /** Stops every process (after the kills under way), then rethrows a failed leave. */
  async close(): Promise<void> {
    this.closing = true;
    this.armed.length = 0;
    await Promise.all(this.pending);
    await Promise.all(this.started.map((c) => c.registry.stop()));
    const failed = (await Promise.all(this.pending)).find((error) => error !== undefined);
    if (failed) throw failed;
  }

  /** A new process, running: one killed while it was starting is replaced at once. */
  private async spawn(): Promise<Consumer> {
    for (;;) {
      const transport = await this.connect();
      let consumer: Promise<Consumer> | undefined;
      const life: ProcessLife = {
        state: 'running',
        handlersKilled: false,
        midHandler: () => this.strike(transport, life, consumer as Promise<Consumer>),
      };
      consumer = this.start(transport, life).then((registry) => ({ registry, transport, life }));
      const started = await consumer;
      this.started.push(started);
      if (life.state === 'running') return started;
    }
  }

  /**
   * From a handler run of the process: an armed kill strikes it now. Its connection dies at once
   * (nothing it sends afterwards reaches the broker); then a supervised process is replaced.
   */
  private strike(transport: MessageTransport, life: ProcessLife, consumer: Promise<Consumer>): void {
    const faults = this.faults;
    if (!faults || life.state !== 'running' || this.closing) return;
    const how = this.armed.shift();
    if (!how) return;
    this.counts[how]++;
    life.state = 'dead';
    if (how === 'crash') life.handlersKilled = true;
    const killed = faults.kill(transport); // its first, synchronous, step already cut the connection
    const work = (async () => {
      await killed;
      const victim = await consumer;
      const slot = this.slots.indexOf(victim);
      if (slot >= 0) this.slots[slot] = await this.spawn();
      const guest = this.guests.indexOf(victim);
      if (guest >= 0) this.guests.splice(guest, 1);
      // A dead process has nothing to stop cleanly: this releases what the demo still holds of it.
      await victim.registry.stop().catch(() => undefined);
    })();
    this.pending.push(work);
  }
}

type FaultStep = KillKind | 'join' | 'leave';

/**
 * When the consumer faults happen: each at a seeded payment of the run (between 5% and 95% of it); a
 * kill is armed there and carried out by the next handler run, a guest leaves a tenth of the run after
 * it joined.
 */
function faultSchedule(
  faults: ConsumerFaults,
  payments: number,
  random: () => number,
): Map<number, FaultStep[]> {
  const at = () => Math.max(1, Math.round(payments * (0.05 + 0.9 * random())));
  const schedule = new Map<number, FaultStep[]>();
  const add = (i: number, step: FaultStep) => schedule.set(i, [...(schedule.get(i) ?? []), step]);
  for (let n = 0; n < faults.lostAckKills; n++) add(at(), 'lost ack');
  for (let n = 0; n < faults.crashKills; n++) add(at(), 'crash');
  for (let n = 0; n < faults.rebalances; n++) {
    const join = at();
    add(join, 'join');
    add(Math.min(payments, join + Math.ceil(payments / 10)), 'leave');
  }
  return schedule;
}

export async function runPaymentScenario(options: ScenarioOptions): Promise<ScenarioReport> {
  const started = Date.now();
  const random = seededRandom(options.seed);
  const { broker } = options;
  const handlerFaults: HandlerFaults = {
    crashRate: options.handlerCrash,
    random: seededRandom(options.seed + 1),
    runs: 0,
    crashes: 0,
    killed: 0,
  };
  const outcomes: IdempotencyOutcome[] = [];
  let applied = 0;
  const listen = (o: IdempotencyOutcome) => {
    outcomes.push(o);
    if (o.kind !== 'processed' && o.kind !== 'takeover') return;
    applied++; // not inside the optional call below: without onProgress, its arguments are not evaluated
    options.onProgress?.(applied, options.payments);
  };
  const Listener = paymentListener(broker.listener);

  /** One consumer process: its own container and broker connection; the store, cache and ledger are the shared database. */
  const startConsumer = async (transport: MessageTransport, life: ConsumerProcess) => {
    const container = new Container();
    container.load(new IdempotencyModule());
    container.rebind(IDEMPOTENCY_STORE).toConstantValue(options.storage.store);
    container.rebind(IDEMPOTENCY_CACHE).toConstantValue(options.storage.cache);
    container.bind(IDEMPOTENCY_OUTCOME_LISTENER).toConstantValue(listen);
    container.bind(MESSAGE_TRANSPORT).toConstantValue(transport);
    container.bind(LEDGER).toConstantValue(options.storage.ledger);
    container.bind(HANDLER_FAULTS).toConstantValue(handlerFaults);
    container.bind(CONSUMER_PROCESS).toConstantValue(life);
    container.bind(Listener).toSelf().inSingletonScope();
    const registry = new ListenerRegistry(container, {
      listeners: [Listener],
      retryBaseDelayMs: 10,
      retryMaxDelayMs: 200,
      inFlightDelayMs: 20,
    });
    await registry.start();
    return registry;
  };
  const group = new ConsumerGroup(() => broker.connect(), startConsumer, broker.consumerFaults);
  const schedule = broker.consumerFaults
    ? faultSchedule(broker.consumerFaults, options.payments, seededRandom(options.seed + 3))
    : new Map<number, FaultStep[]>();

  const sent = new Map<string, PaymentRequest>();
  const half = Math.ceil(options.payments / 2);
  try {
    await group.fill(options.consumers);
    for (let i = 1; i <= options.payments; i++) {
      const serial = `PAY-${String(i).padStart(7, '0')}`;
      const body: PaymentRequest = {
        account: `ACC-${Math.floor(random() * options.accounts)}`,
        amount: 1 + Math.floor(random() * 100),
      };
      sent.set(serial, body);
      await broker.publish(serial, body);
      if (i === half) {
        // Mid-run: the broker restarts (where it can), and a consumer restarts: it drains, a new one takes its place.
        await broker.disrupt();
        await group.restartFirst();
      }
      for (const step of schedule.get(i) ?? []) {
        if (step === 'join') await group.join();
        else if (step === 'leave') group.leave();
        else group.arm(step);
      }
      // Let consumers work while producers send.
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await broker.idle(options.timeoutMs ?? 120_000, () => applied, options.payments);
  } finally {
    await group.close();
  }
  const stats = await broker.stats();

  const appliedCounts = await options.storage.ledger.applied();
  const balances = await options.storage.ledger.balances();
  const expected = new Map<string, number>();
  for (const { account, amount } of sent.values()) {
    expected.set(account, (expected.get(account) ?? OPENING_BALANCE) - amount);
  }
  const count = (pred: (o: IdempotencyOutcome) => boolean) => outcomes.filter(pred).length;
  const consumerFaults: Record<string, number> = broker.consumerFaults
    ? {
        'consumers killed, acks lost': group.counts['lost ack'],
        'consumers killed mid-handler': group.counts.crash,
        'handler runs cut by a kill': handlerFaults.killed,
        'consumers joined and left': group.counts.joined,
      }
    : {};
  return {
    paymentsSent: sent.size,
    messagesStored: stats.stored,
    deliveries: stats.deliveries,
    handlerRuns: handlerFaults.runs,
    handlerCrashes: handlerFaults.crashes,
    paymentsApplied: appliedCounts.size,
    duplicatesSkipped: {
      cache: count((o) => o.kind === 'duplicate' && o.tier === 'cache'),
      store: count((o) => o.kind === 'duplicate' && o.tier === 'store'),
    },
    inFlightRetried: count((o) => o.kind === 'inFlight'),
    deadLetters: stats.deadLetters,
    faults: { ...stats.faults, ...consumerFaults },
    balancesExact: [...expected].every(([account, balance]) => balances.get(account) === balance),
    doubleCharges: [...appliedCounts.values()].reduce((sum, n) => sum + Math.max(0, n - 1), 0),
    lostPayments: [...sent.keys()].filter((serial) => !appliedCounts.has(serial)).length,
    elapsedMs: Date.now() - started,
  };
}
