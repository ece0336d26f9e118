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
} from '@idempotent-mq/core';
import { seededRandom } from '@idempotent-mq/testing';
import { Container } from 'inversify';
import type { BrokerSetup } from './brokers.js';
import { type Ledger, OPENING_BALANCE } from './ledger.js';
import {
  HANDLER_FAULTS,
  type HandlerFaults,
  LEDGER,
  PaymentConsumer,
  type PaymentRequest,
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
  readonly balancesExact: boolean;
  readonly doubleCharges: number;
  readonly lostPayments: number;
  readonly elapsedMs: number;
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
  };
  const outcomes: IdempotencyOutcome[] = [];
  let applied = 0;
  const listen = (o: IdempotencyOutcome) => {
    outcomes.push(o);
    if (o.kind === 'processed' || o.kind === 'takeover') options.onProgress?.(++applied, options.payments);
  };

  /** One consumer process: its own container and broker connection; the store, cache and ledger are the shared database. */
  const startConsumer = async (): Promise<ListenerRegistry> => {
    const container = new Container();
    container.load(new IdempotencyModule());
    container.rebind(IDEMPOTENCY_STORE).toConstantValue(options.storage.store);
    container.rebind(IDEMPOTENCY_CACHE).toConstantValue(options.storage.cache);
    container.bind(IDEMPOTENCY_OUTCOME_LISTENER).toConstantValue(listen);
    container.bind(MESSAGE_TRANSPORT).toConstantValue(broker.connect());
    container.bind(LEDGER).toConstantValue(options.storage.ledger);
    container.bind(HANDLER_FAULTS).toConstantValue(handlerFaults);
    container.bind(PaymentConsumer).toSelf().inSingletonScope();
    const registry = new ListenerRegistry(container, {
      listeners: [PaymentConsumer],
      retryBaseDelayMs: 10,
      retryMaxDelayMs: 200,
      inFlightDelayMs: 20,
    });
    await registry.start();
    return registry;
  };
  const registries = await Promise.all(Array.from({ length: options.consumers }, startConsumer));

  const sent = new Map<string, PaymentRequest>();
  const half = Math.ceil(options.payments / 2);
  try {
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
        await (registries[0] as ListenerRegistry).stop();
        registries[0] = await startConsumer();
      }
      // Let consumers work while producers send.
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await broker.idle(options.timeoutMs ?? 120_000, () => applied, options.payments);
  } finally {
    await Promise.all(registries.map((r) => r.stop()));
  }
  const stats = broker.stats();

  const appliedCounts = await options.storage.ledger.applied();
  const balances = await options.storage.ledger.balances();
  const expected = new Map<string, number>();
  for (const { account, amount } of sent.values()) {
    expected.set(account, (expected.get(account) ?? OPENING_BALANCE) - amount);
  }
  const count = (pred: (o: IdempotencyOutcome) => boolean) => outcomes.filter(pred).length;
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
    balancesExact: [...expected].every(([account, balance]) => balances.get(account) === balance),
    doubleCharges: [...appliedCounts.values()].reduce((sum, n) => sum + Math.max(0, n - 1), 0),
    lostPayments: [...sent.keys()].filter((serial) => !appliedCounts.has(serial)).length,
    elapsedMs: Date.now() - started,
  };
}
