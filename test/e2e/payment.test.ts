/**
 * The payment scenario end to end with every fault on, on each store (memory, SQLite, PostgreSQL,
 * MariaDB), with the Redis cache on and off, over the in-memory broker; over RocketMQ (the real
 * client against the gRPC test broker) with Redis and PostgreSQL, with a broker restart and a consumer
 * restart mid-run; and over the real RabbitMQ and NATS JetStream servers of this machine, with
 * resends, kills and rebalances carried out by the demo's own producer and consumers. Each must end
 * with 0 double charges, 0 lost payments and exact balances.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type BrokerSetup,
  memoryBroker,
  natsBroker,
  rabbitmqBroker,
  rocketmqBroker,
} from '../../examples/payment/src/brokers.js';
import {
  DEFAULT_FAULTS,
  runPaymentScenario,
  type ScenarioReport,
} from '../../examples/payment/src/scenario.js';
import { openStorage, type StorageOptions } from '../../examples/payment/src/storage.js';
// The packages' own test support: each resolves its broker client from its package.
import { admin as natsAdmin } from '../../packages/nats/test/support.js';
import { Inspector } from '../../packages/rabbitmq/test/support.js';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const { handlerCrash, ...brokerFaults } = DEFAULT_FAULTS;

const stores: [string, StorageOptions][] = [
  ['memory', { store: 'memory' }],
  ['SQLite', { store: 'sqlite' }],
  ['PostgreSQL', { store: 'url', databaseUrl: PG_URL }],
  ['MariaDB', { store: 'url', databaseUrl: MYSQL_URL }],
];

function expectExactlyOnce(report: ScenarioReport, payments: number): void {
  expect(report).toMatchObject({
    doubleCharges: 0,
    lostPayments: 0,
    deadLetters: 0,
    balancesExact: true,
    paymentsApplied: payments,
  });
  expect(report.handlerCrashes).toBeGreaterThan(0);
  expect(report.duplicatesSkipped.cache + report.duplicatesSkipped.store).toBeGreaterThan(0);
}

describe('payments end to end on the in-memory broker, every fault on', () => {
  for (const [name, options] of stores) {
    for (const redis of [false, true]) {
      it(`${name} store, ${redis ? 'Redis' : 'memory'} cache: 0 double charges, 0 lost`, {
        timeout: 120_000,
      }, async () => {
        const storage = await openStorage({ ...options, redisUrl: redis ? REDIS_URL : undefined });
        try {
          const report = await runPaymentScenario({
            payments: 1000,
            consumers: 4,
            accounts: 20,
            seed: 7,
            handlerCrash,
            broker: memoryBroker(7, brokerFaults),
            storage,
          });
          expectExactlyOnce(report, 1000);
          for (const cause of ['resend', 'lost ack', 'rebalance', 'consumer crash'] as const) {
            expect(report.deliveries[cause], cause).toBeGreaterThan(0);
          }
        } finally {
          await storage.close();
        }
      });
    }
  }
});

describe('payments end to end over RocketMQ (real client, gRPC test broker)', () => {
  const previousHome = process.env.HOME;
  const home = mkdtempSync(join(tmpdir(), 'imq-e2e-rocketmq-'));
  process.env.HOME = home; // the client writes its log files under $HOME
  afterAll(() => {
    process.env.HOME = previousHome;
    rmSync(home, { recursive: true, force: true });
  });

  it('Redis cache + PostgreSQL, faults on, broker and consumer restarts: 0 double charges, 0 lost', {
    timeout: 120_000,
  }, async () => {
    const storage = await openStorage({ store: 'url', databaseUrl: PG_URL, redisUrl: REDIS_URL });
    const broker = await rocketmqBroker(300, brokerFaults, '');
    try {
      const report = await runPaymentScenario({
        payments: 300,
        consumers: 3,
        accounts: 10,
        seed: 11,
        handlerCrash,
        broker,
        storage,
        timeoutMs: 90_000,
      });
      expectExactlyOnce(report, 300);
      expect(report.messagesStored).toBeGreaterThan(300); // duplicate sends happened
      expect(report.deliveries.redelivered).toBeGreaterThan(0);
    } finally {
      await broker.close();
      await storage.close();
    }
  });
});

describe('payments end to end over the real RabbitMQ and NATS JetStream servers, every fault on', () => {
  /** What the run declared on the broker is gone once it closed. */
  const leftovers: Record<string, (broker: BrokerSetup) => Promise<string[]>> = {
    RabbitMQ: async (broker) => {
      const inspector = await Inspector.open(process.env.AMQP_URL || undefined);
      try {
        const queue = `${broker.listener.topic}.${broker.listener.consumerGroup}`;
        const counts = await Promise.all([queue, `${queue}.dlq`].map((q) => inspector.count(q)));
        return [queue, `${queue}.dlq`].filter((_, i) => counts[i] !== undefined);
      } finally {
        await inspector.close();
      }
    },
    'NATS JetStream': async (broker) => {
      const { nc, jsm } = await natsAdmin(process.env.NATS_URL || undefined);
      try {
        const found = await jsm.streams.find(broker.listener.topic).catch(() => undefined);
        return found ? [found] : [];
      } finally {
        await nc.close();
      }
    },
  };
  const brokers: [string, (payments: number, seed: number) => Promise<BrokerSetup>][] = [
    ['RabbitMQ', (payments, seed) => rabbitmqBroker(payments, brokerFaults, seed)],
    ['NATS JetStream', (payments, seed) => natsBroker(payments, brokerFaults, seed)],
  ];

  for (const [name, open] of brokers) {
    for (const [storeName, storeOptions] of stores.slice(0, 2)) {
      it(`${name}, ${storeName} store: resends, kills and rebalances; 0 double charges, 0 lost`, {
        timeout: 60_000,
      }, async () => {
        const storage = await openStorage(storeOptions);
        const broker = await open(200, 13);
        try {
          const report = await runPaymentScenario({
            payments: 200,
            consumers: 3,
            accounts: 10,
            seed: 13,
            handlerCrash,
            broker,
            storage,
            timeoutMs: 20_000,
          });
          expectExactlyOnce(report, 200);
          const resends = report.messagesStored - 200;
          expect(resends).toBeGreaterThan(0);
          for (const fault of [
            'consumers killed, acks lost',
            'consumers killed mid-handler',
            'handler runs cut by a kill',
            'consumers joined and left',
          ]) {
            expect(report.faults[fault], fault).toBeGreaterThan(0);
          }
          if (name === 'RabbitMQ') {
            expect(report.deliveries['redelivered after a kill']).toBeGreaterThan(0);
          } else {
            expect(report.deliveries.redelivered).toBeGreaterThan(0);
            // Each resend was sent twice: as it was (dropped by JetStream), and under a new Nats-Msg-Id.
            expect(report.faults['exact resends dropped by JetStream']).toBe(resends);
            expect(report.faults['resends under a new Nats-Msg-Id']).toBe(resends);
          }
        } finally {
          await broker.close();
          await storage.close();
        }
        expect(await leftovers[name]?.(broker)).toEqual([]);
      });
    }
  }
});
