/**
 * A first consumer as a user writes it from the READMEs, compiled by the app's own TypeScript against the
 * app's own inversify: payments through the in-memory broker with duplicates on, a PostgreSQL store in
 * transactional mode, a Redis cache. Prints one JSON line: how often each serial was charged.
 */
import 'reflect-metadata';
import {
  IDEMPOTENCY_CACHE,
  IDEMPOTENCY_STORE,
  type IdempotencyContext,
  IdempotencyModule,
  Idempotent,
  ListenerRegistry,
  MESSAGE_TRANSPORT,
  MessageListener,
  type TransportMessage,
} from '@idempotent-mq/core';
import { createIdempotencyTable, KnexIdempotencyStore } from '@idempotent-mq/knex';
import { RedisIdempotencyCache } from '@idempotent-mq/redis';
import { InMemoryBroker } from '@idempotent-mq/testing';
import { Container, injectable } from 'inversify';
import { Redis } from 'ioredis';
import knexFactory, { type Knex } from 'knex';

const run = process.env.RUN_ID as string;
const payments = `payments_${run}`;
const tokens = `tokens_${run}`;

@injectable()
@MessageListener({ topic: 'payments', consumerGroup: 'billing' })
class PaymentConsumer {
  @Idempotent({ key: (m: TransportMessage<{ amount: number }>) => m.keys })
  async onMessage(m: TransportMessage<{ amount: number }>, ctx: IdempotencyContext<Knex.Transaction>) {
    await ctx.trx(payments).insert({ serial: ctx.token.key, amount: m.body.amount });
  }
}

const knex = knexFactory({ client: 'pg', connection: process.env.PG_URL });
const redis = new Redis(process.env.REDIS_URL as string);
try {
  await createIdempotencyTable(knex, { tableName: tokens });
  await knex.schema.createTable(payments, (t) => {
    t.string('serial').notNullable(); // no unique index: a double charge would show
    t.integer('amount').notNullable();
  });
  const broker = new InMemoryBroker({
    seed: 3,
    faults: { producerResend: 0.3, lostAck: 0.2 },
    visibilityTimeoutMs: 50,
  });
  const container = new Container();
  // Awaited: inversify 7 loads and rebinds asynchronously, inversify 8 synchronously; await serves both.
  await container.load(new IdempotencyModule());
  const store = new KnexIdempotencyStore(knex, { tableName: tokens });
  (await container.rebind(IDEMPOTENCY_STORE)).toConstantValue(store);
  const cache = new RedisIdempotencyCache(redis, { keyPrefix: `${run}:` });
  (await container.rebind(IDEMPOTENCY_CACHE)).toConstantValue(cache);
  container.bind(MESSAGE_TRANSPORT).toConstantValue(broker.connect());
  container.bind(PaymentConsumer).toSelf();
  const registry = new ListenerRegistry(container, { inFlightDelayMs: 20, retryBaseDelayMs: 20 });
  await registry.start();
  for (let i = 0; i < 50; i++) broker.publish('payments', { keys: [`PAY-${i}`], body: { amount: i } });
  await broker.idle(30_000);
  await registry.stop();
  const rows: { serial: string; n: string | number }[] = await knex(payments)
    .select('serial')
    .count('* as n')
    .groupBy('serial');
  console.log(
    JSON.stringify({
      charged: Object.fromEntries(rows.map((r) => [r.serial, Number(r.n)])),
      deadLetters: broker.deadLetters().length,
      deliveries: broker.deliveries,
    }),
  );
} finally {
  await knex.schema.dropTableIfExists(payments);
  await knex.schema.dropTableIfExists(tokens);
  await knex.destroy();
  redis.disconnect();
}
