/**
 * The payment demo: payments keyed by serial number go through an at-least-once broker with every
 * fault on, to several consumers that debit accounts; the report proves nothing was charged twice and
 * nothing was lost.
 *
 *   pnpm demo [--payments 1000] [--consumers 4] [--seed 42] [--store memory] ...   (--help)
 */
import { parseArgs } from 'node:util';
import { type BrokerSetup, memoryBroker, natsBroker, rabbitmqBroker, rocketmqBroker } from './brokers.js';
import { DEFAULT_FAULTS, runPaymentScenario, type ScenarioReport } from './scenario.js';
import { openStorage, type StoreKind } from './storage.js';

const HELP = `Usage: pnpm demo [options]

  --payments N        payment requests to send                 (default 1000)
  --consumers N       consumer processes in the group          (default 4)
  --accounts N        accounts the payments debit              (default 20)
  --seed N            seed of every random choice              (default 42)
  --resend P          producer resends (lost send ack)         (default 0.3)
  --lost-ack P        lost consume acks (redelivered after the work) (default 0.1)
  --rebalance P       rebalances (a message in flight handed to another consumer) (default 0.05)
  --crash P           consumer crashes before settling         (default 0.05)
  --handler-crash P   crashes mid-handler, before commit       (default 0.05)
  --transport KIND    memory | rocketmq | rabbitmq | nats      (default memory)
                        memory    the in-memory broker, every fault injected by the broker
                        rocketmq  the real client against the gRPC test broker (its faults on),
                                  or the proxy at ROCKETMQ_ENDPOINTS
                        rabbitmq  the RabbitMQ server at AMQP_URL
                        nats      the NATS JetStream server at NATS_URL
  --store KIND        sqlite | memory; DATABASE_URL (postgres:// or mysql://) overrides
                                                               (default sqlite, a temporary file)
  --help              this text

On rabbitmq and nats the demo declares an exchange and queues, or streams and a durable, named for
the run (deleted at the end), and carries out on its own producer and consumers what a real server
does not inject:
  --resend     rabbitmq: the payment is published a second time: a second message, same key
               (RabbitMQ keeps both). nats: sent again with the same Nats-Msg-Id, which JetStream
               drops inside its duplicate window (the report counts them), and once more under a
               new Nats-Msg-Id (a producer making an id per send), which it stores.
  --lost-ack   a consumer's connection is killed as on SIGKILL while its handlers run on and
               commit: their acks never arrive, and the broker redelivers work already done.
  --crash      a consumer process is killed: its connection, and its handlers before they commit.
  (A kill hits what a consumer holds, up to 8 deliveries: P x payments / 8 kills, each consumer
  replaced by a new one; RabbitMQ gives its messages back at once, JetStream after ack_wait, 2 s.)
  --rebalance  a consumer joins the group and leaves it a tenth of the run later (P x payments / 8
               times); neither broker moves messages in flight between consumers, as RocketMQ does.
  --handler-crash  as on every broker: the handler throws after its write, before commit.
Deliveries are JetStream's own count on nats (the durable's delivered sequence); on rabbitmq the
consumers count them as they settle them (AMQP tells no delivery counts).

Environment: AMQP_URL            with --transport rabbitmq (default amqp://guest:guest@127.0.0.1:5672)
             NATS_URL            with --transport nats (default 127.0.0.1:4222)
             ROCKETMQ_ENDPOINTS  with --transport rocketmq: a real RocketMQ 5 proxy (host:port)
             DATABASE_URL   use this PostgreSQL or MySQL/MariaDB database as the store and ledger
             REDIS_URL      use this Redis as the cache

The report ends with "double charges: N" and "lost payments: N"; the exit code is 1 unless both are 0.`;

/** The brokers `--transport` names. */
const TRANSPORTS = ['memory', 'rocketmq', 'rabbitmq', 'nats'] as const;
type TransportKind = (typeof TRANSPORTS)[number];

function number(
  value: string | undefined,
  name: string,
  fallback: number,
  { min = 0, max = Number.MAX_SAFE_INTEGER, integer = true } = {},
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new Error(
      `--${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got "${value}"`,
    );
  }
  return n;
}

const probability = (value: string | undefined, name: string, fallback: number) =>
  number(value, name, fallback, { min: 0, max: 1, integer: false });

function progress(applied: number, total: number): void {
  if (process.stderr.isTTY) {
    const width = 30;
    const filled = Math.round((applied / total) * width);
    process.stderr.write(
      `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${applied}/${total} payments applied`,
    );
    if (applied === total) process.stderr.write('\n');
  } else if (applied % Math.max(1, Math.floor(total / 10)) === 0 || applied === total) {
    process.stderr.write(`${applied}/${total} payments applied\n`);
  }
}

function print(report: ScenarioReport, label: string, broker: string, consumers: number): void {
  const list = (counts: Record<string, number>) =>
    Object.entries(counts)
      .map(([what, n]) => `${what} ${n}`)
      .join(', ');
  const deliveries = Object.values(report.deliveries).reduce((a, b) => a + b, 0);
  const lines = [
    '',
    `broker: ${broker}; storage: ${label}; ${consumers} consumers (one restarted mid-run)`,
    `messages sent: ${report.paymentsSent} payments, ${report.messagesStored} stored (${report.messagesStored - report.paymentsSent} producer resends)`,
    `deliveries: ${deliveries} (${list(report.deliveries)})`,
    ...(Object.keys(report.faults).length > 0 ? [`faults: ${list(report.faults)}`] : []),
    `handler runs: ${report.handlerRuns} (${report.handlerCrashes} crashed mid-handler and rolled back)`,
    `payments applied: ${report.paymentsApplied}`,
    `duplicates skipped: ${report.duplicatesSkipped.cache + report.duplicatesSkipped.store} (cache ${report.duplicatesSkipped.cache}, store ${report.duplicatesSkipped.store})`,
    `in flight, retried later: ${report.inFlightRetried}`,
    `dead letters: ${report.deadLetters}`,
    `balances: ${report.balancesExact ? 'exact' : 'WRONG'}`,
    `time taken: ${(report.elapsedMs / 1000).toFixed(2)} s`,
    `double charges: ${report.doubleCharges}`,
    `lost payments: ${report.lostPayments}`,
  ];
  console.log(lines.join('\n'));
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      payments: { type: 'string' },
      consumers: { type: 'string' },
      accounts: { type: 'string' },
      seed: { type: 'string' },
      resend: { type: 'string' },
      'lost-ack': { type: 'string' },
      rebalance: { type: 'string' },
      crash: { type: 'string' },
      'handler-crash': { type: 'string' },
      store: { type: 'string' },
      transport: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const databaseUrl = process.env.DATABASE_URL;
  const store: StoreKind = databaseUrl ? 'url' : ((values.store ?? 'sqlite') as StoreKind);
  if (!['sqlite', 'memory', 'url'].includes(store))
    throw new Error(`--store must be sqlite or memory, got "${store}"`);
  const transport = (values.transport ?? 'memory') as TransportKind;
  if (!TRANSPORTS.includes(transport))
    throw new Error(`--transport must be one of ${TRANSPORTS.join(', ')}; got "${transport}"`);
  const consumers = number(values.consumers, 'consumers', 4, { min: 1, max: 64 });
  const payments = number(values.payments, 'payments', 1000, { min: 1, max: 1_000_000 });
  const seed = number(values.seed, 'seed', 42);
  const faults = {
    producerResend: probability(values.resend, 'resend', DEFAULT_FAULTS.producerResend),
    lostAck: probability(values['lost-ack'], 'lost-ack', DEFAULT_FAULTS.lostAck),
    rebalance: probability(values.rebalance, 'rebalance', DEFAULT_FAULTS.rebalance),
    crash: probability(values.crash, 'crash', DEFAULT_FAULTS.crash),
  };
  const handlerCrash = probability(values['handler-crash'], 'handler-crash', DEFAULT_FAULTS.handlerCrash);
  const accounts = number(values.accounts, 'accounts', 20, { min: 1, max: 100_000 });

  const storage = await openStorage({ store, databaseUrl, redisUrl: process.env.REDIS_URL });
  let broker: BrokerSetup | undefined;
  try {
    broker =
      transport === 'rocketmq'
        ? await rocketmqBroker(payments, faults)
        : transport === 'rabbitmq'
          ? await rabbitmqBroker(payments, faults, seed)
          : transport === 'nats'
            ? await natsBroker(payments, faults, seed)
            : memoryBroker(seed, faults);
    const report = await runPaymentScenario({
      payments,
      consumers,
      accounts,
      seed,
      handlerCrash,
      broker,
      storage,
      onProgress: progress,
    });
    print(report, storage.label, broker.label, consumers);
    return report.doubleCharges === 0 && report.lostPayments === 0 && report.balancesExact ? 0 : 1;
  } finally {
    await broker?.close();
    await storage.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 2;
  },
);
