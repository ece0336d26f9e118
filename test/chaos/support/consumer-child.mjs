/**
 * One consumer process of the chaos test, run from the build: a ListenerRegistry over a RocketMQTransport
 * with one `@Idempotent` payment consumer that appends each payment to a PostgreSQL ledger. The test
 * kills and freezes it at random. Its configuration is the JSON in argv[2] (see `ConsumerConfig` in
 * `children.ts`). It reports on stdout, one line per event:
 *
 *   ready                      subscribed, receiving
 *   run <serial>               the handler started
 *   charged <serial>           its ledger insert came back (lease mode: committed)
 *   already <serial>           a replay found the payment already charged (lease mode) and skipped it
 *   outcome <kind> <serial>    the engine's outcome (`processed` and `takeover` only after the claim completed)
 *   dead <serial> <reason>     the transport dead-lettered the message
 *
 * Writes to a pipe are synchronous on Linux, so a line written before a SIGKILL reaches the test.
 */
import { Container, injectable } from 'inversify';
import { Redis } from 'ioredis';
import knexFactory from 'knex';
import {
  IDEMPOTENCY_OUTCOME_LISTENER,
  IDEMPOTENCY_STORE,
  IdempotencyModule,
  Idempotent,
  ListenerRegistry,
  MESSAGE_TRANSPORT,
} from '../../../packages/core/dist/index.js';
import { KnexIdempotencyStore } from '../../../packages/knex/dist/index.js';
import { RedisIdempotencyStore } from '../../../packages/redis/dist/index.js';
import { RocketMQListener, RocketMQTransport } from '../../../packages/rocketmq/dist/index.js';

const config = JSON.parse(process.argv[2]);
const say = (line) => process.stdout.write(`${line}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

// The test may die without killing us (a crashed worker): an ended stdin means it is gone.
process.stdin.on('end', () => process.exit(0)).resume();

const knex = knexFactory({
  client: 'pg',
  connection: config.pgUrl,
  // Transactional mode holds a connection per message in the handler; lease mode's claims and charges
  // take one each, briefly.
  pool: { min: 0, max: config.concurrency + 2 },
});

class PaymentConsumer {
  async onMessage(message, ctx) {
    const serial = message.keys[0];
    say(`run ${serial}`);
    // A few ms to tens of ms of "work" before the charge, so that kills land mid-handler, after the
    // claim has committed (lease mode) or while the transaction is open (transactional mode).
    const [min, max] = config.handlerMs;
    await sleep(min + Math.random() * (max - min));
    const row = { serial, amount: message.body.amount, pid: process.pid };
    if (config.mode === 'transactional') {
      // The charge commits with the claim's completion, or not at all.
      await ctx.trx(config.ledgerTable).insert(row);
    } else if (ctx.replay) {
      // Lease mode charges outside the store. A copy that took over an expired claim (or comes back after
      // a failed attempt) may follow an owner that charged and died before its completion committed:
      // what the README asks of lease-mode handlers, it makes its effect conditional then. One statement
      // (no unique index to lean on); the lease makes this copy the only live owner.
      const inserted = await knex.raw(
        'insert into ?? (serial, amount, pid) select ?, ?, ? where not exists (select 1 from ?? where serial = ?)',
        [config.ledgerTable, serial, row.amount, row.pid, config.ledgerTable, serial],
      );
      if (inserted.rowCount === 0) {
        say(`already ${serial}`);
        return;
      }
    } else {
      await knex(config.ledgerTable).insert(row);
    }
    say(`charged ${serial}`);
  }
}
// What `@Idempotent(...)`, `@RocketMQListener(...)` and `@injectable()` compile to: Node runs no decorators.
Object.defineProperty(
  PaymentConsumer.prototype,
  'onMessage',
  Reflect.decorate(
    [Idempotent({ key: (m) => m.keys, mode: config.mode, leaseMs: config.leaseMs })],
    PaymentConsumer.prototype,
    'onMessage',
    Object.getOwnPropertyDescriptor(PaymentConsumer.prototype, 'onMessage'),
  ),
);
Reflect.decorate(
  [
    injectable(),
    RocketMQListener({
      topic: config.topic,
      consumerGroup: config.group,
      tag: 'PAY',
      concurrency: config.concurrency,
      maxAttempts: config.maxAttempts,
    }),
  ],
  PaymentConsumer,
);

const store =
  config.store === 'redis'
    ? new RedisIdempotencyStore(new Redis(config.redisUrl, { maxRetriesPerRequest: 2 }), {
        keyPrefix: config.keyPrefix,
      })
    : new KnexIdempotencyStore(knex, { tableName: config.tokenTable });

const container = new Container();
container.load(new IdempotencyModule());
container.rebind(IDEMPOTENCY_STORE).toConstantValue(store);
container
  .bind(IDEMPOTENCY_OUTCOME_LISTENER)
  .toConstantValue((outcome) => say(`outcome ${outcome.kind} ${outcome.token?.key}`));
container.bind(MESSAGE_TRANSPORT).toConstantValue(
  new RocketMQTransport({
    endpoints: config.endpoints,
    logger: quiet,
    requestTimeout: 1000,
    startupTimeoutMs: 10_000,
    // The shortest allowed: a dead consumer's messages come back to the others after a second.
    invisibleDurationMs: 1000,
    awaitDurationMs: 200,
    receiveBackoff: { initialMs: 100, maxMs: 500 },
    onSettled: (event) => {
      if (event.action === 'deadLetter') say(`dead ${event.keys[0]} ${event.reason}`);
    },
  }),
);
container.bind(PaymentConsumer).toSelf().inSingletonScope();

const registry = new ListenerRegistry(container, {
  listeners: [PaymentConsumer],
  retryBaseDelayMs: 200,
  retryMaxDelayMs: 1000,
  inFlightDelayMs: config.inFlightDelayMs,
});
await registry.start();
say('ready');
