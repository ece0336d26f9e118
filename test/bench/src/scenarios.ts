/**
 * What is measured. Each scenario pairs our path with the baseline it must be compared to, on the
 * same connections: raw ioredis and SQL round trips doing the same work by hand, the bare handler, or
 * the peer library on the same Redis.
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import { CachePersistenceLayer } from '@aws-lambda-powertools/idempotency/cache';
import {
  ConsoleLogger,
  type DeliveryInfo,
  type Execution,
  getHandlerMethod,
  type HandlerMethod,
  IDEMPOTENCY_CACHE,
  IDEMPOTENCY_ENGINE,
  IDEMPOTENCY_INSTRUMENTATION,
  IDEMPOTENCY_LOGGER,
  IDEMPOTENCY_STORE,
  type IdempotencyCache,
  type IdempotencyContext,
  type IdempotencyEngine,
  type IdempotencyInstrumentation,
  IdempotencyModule,
  type IdempotencyStore,
  Idempotent,
  MemoryIdempotencyCache,
  MemoryIdempotencyStore,
  NearIdempotencyCache,
  NoIdempotencyCache,
} from '@idempotent-mq/core/adapter';
import { createIdempotencyTable, dropIdempotencyTable, KnexIdempotencyStore } from '@idempotent-mq/knex';
import { RedisIdempotencyCache, RedisIdempotencyStore } from '@idempotent-mq/redis';
import { createClient } from '@redis/client';
import { Container, injectable } from 'inversify';
import { Redis } from 'ioredis';
import knexFactory, { type Knex } from 'knex';
import { brokerScenarios, closeBrokers } from './brokers.js';
import { telemetryScenarios } from './telemetry.js';

export const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface Scenario {
  readonly name: string;
  readonly concurrency: number;
  /** The least acceptable ours / baseline ratio, or undefined where the issue sets none. */
  readonly target?: number;
  /** What the baseline is, for the table. */
  readonly baselineLabel: string;
  /** Operations one call of `ours`/`baseline` stands for (a batch of 32 counts 32). */
  readonly opsPerCall?: number;
  readonly series?: 'raw baseline' | 'Powertools (peer)';
  ours(i: number): Promise<void>;
  baseline(i: number): Promise<void>;
  /** Called before each side's rounds, and with `'done'` after the last: to switch process-wide state. */
  enter?(side: 'ours' | 'baseline' | 'done'): void;
}

/** The message our consumers and the peer both get. */
interface Payment {
  readonly keys: readonly string[];
  readonly body: { readonly amount: number };
}

const payment = (key: string): Payment => ({ keys: [key], body: { amount: 100 } });

/** A consumer whose business effect is one insert in the handler's transaction (or nothing, in memory). */
@injectable()
class Consumer {
  @Idempotent({ key: (m: Payment) => m.keys })
  async onMessage(m: Payment, ctx: IdempotencyContext<Knex.Transaction | undefined>) {
    const trx = ctx.trx;
    if (trx && typeof trx === 'function')
      await trx(LEDGER).insert({ serial: m.keys[0], amount: m.body.amount });
  }
}

@injectable()
class LeaseConsumer {
  @Idempotent({ key: (m: Payment) => m.keys, mode: 'lease' })
  async onMessage(_m: Payment) {}
}

const LEDGER = `bench_ledger_${process.pid}`;
const TOKENS = `bench_tokens_${process.pid}`;

/**
 * The engine on the given store and cache, and a call that runs one message (or a batch) through it;
 * with an instrumentation bound, and the delivery a listener registry would pass, when given.
 */
function engineOn(
  store: IdempotencyStore,
  cache: IdempotencyCache,
  ctor: typeof Consumer | typeof LeaseConsumer = Consumer,
  {
    instrumentation,
    delivery,
  }: { instrumentation?: IdempotencyInstrumentation; delivery?: DeliveryInfo } = {},
) {
  const container = new Container();
  container.load(new IdempotencyModule());
  container.rebind(IDEMPOTENCY_STORE).toConstantValue(store);
  container.rebind(IDEMPOTENCY_CACHE).toConstantValue(cache);
  container.rebind(IDEMPOTENCY_LOGGER).toConstantValue(new ConsoleLogger('error'));
  if (instrumentation) container.bind(IDEMPOTENCY_INSTRUMENTATION).toConstantValue(instrumentation);
  container.bind(ctor).toSelf().inSingletonScope();
  const instance = container.get(ctor);
  const engine: IdempotencyEngine = container.get(IDEMPOTENCY_ENGINE);
  const target = getHandlerMethod(ctor, 'onMessage') as HandlerMethod;
  const check = (o: Execution) => {
    if (o.kind === 'failed' || o.kind === 'conflict') throw o.error;
  };
  return {
    one: async (m: Payment) => check(await engine.execute(target, instance, m, delivery)),
    batch: async (ms: Payment[]) => (await engine.executeBatch(target, instance, ms)).forEach(check),
  };
}

export interface Connections {
  readonly redis: Redis;
  readonly pg: Knex;
  readonly mysql: Knex;
  readonly sqlite: Knex;
  readonly peerRedis: { connect(): Promise<unknown>; quit(): Promise<unknown> };
  close(): Promise<void>;
}

export async function connect(sqliteFile: string): Promise<Connections> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true });
  await redis.connect(); // the cache adapter fails fast until the client is ready
  const pg = knexFactory({ client: 'pg', connection: PG_URL, pool: { min: 0, max: 64 } });
  const mysql = knexFactory({ client: 'mysql2', connection: MYSQL_URL, pool: { min: 0, max: 64 } });
  const sqlite = knexFactory({
    client: 'better-sqlite3',
    connection: { filename: sqliteFile },
    useNullAsDefault: true,
  });
  await sqlite.raw('PRAGMA journal_mode = WAL');
  await sqlite.raw('PRAGMA synchronous = FULL');
  const peerRedis = createClient({ url: REDIS_URL }) as unknown as Connections['peerRedis'];
  await peerRedis.connect();
  for (const db of [pg, mysql, sqlite]) {
    await db.schema.dropTableIfExists(LEDGER);
    await db.schema.createTable(LEDGER, (t) => {
      t.increments('id');
      t.string('serial', 191).notNullable();
      t.integer('amount').notNullable();
    });
    await dropIdempotencyTable(db, { tableName: TOKENS });
    await createIdempotencyTable(db, { tableName: TOKENS });
    await db.schema.dropTableIfExists(`${TOKENS}_raw`);
    await db.schema.createTable(`${TOKENS}_raw`, (t) => {
      t.string('token', 191).primary();
    });
  }
  return {
    redis,
    pg,
    mysql,
    sqlite,
    peerRedis,
    async close() {
      for (const db of [pg, mysql, sqlite]) {
        await db.schema.dropTableIfExists(LEDGER);
        await db.schema.dropTableIfExists(`${TOKENS}_raw`);
        await dropIdempotencyTable(db, { tableName: TOKENS });
        await db.destroy();
      }
      // Everything this run wrote to the shared Redis is under bench:<run>:.
      for await (const keys of redis.scanStream({ match: `bench:${RUN}:*`, count: 1000 })) {
        if ((keys as string[]).length > 0) await redis.unlink(...(keys as string[]));
      }
      redis.disconnect();
      await peerRedis.quit();
      await closeBrokers();
    },
  };
}

/** The raw SQL transaction the first-time path must do: claim the token if absent, insert the business row, commit. */
async function rawTransaction(db: Knex, token: string): Promise<void> {
  await db.transaction(async (trx) => {
    const claim = trx(`${TOKENS}_raw`).insert({ token });
    const client = db.client.config.client as string;
    if (client === 'mysql2') await trx.raw(claim.toQuery().replace(/^insert/i, 'insert ignore'));
    else await claim.onConflict('token').ignore();
    await trx(LEDGER).insert({ serial: token, amount: 100 });
  });
}

/** Runs `op(0 … n-1)`, 32 at a time: the pools every scenario starts from fill in a moment. */
async function inParallel(n: number, op: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await op(next++);
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

/** This run's mark in every Redis key it writes, so that cleaning up removes only its own keys. */
const RUN = randomUUID().slice(0, 8);

/** Builds every scenario at concurrency `c` on the open connections. */
export async function scenarios(conn: Connections, c: number): Promise<Scenario[]> {
  const run = RUN;
  const key = (what: string, i: number) => `${what}-${run}-${c}-${i}`;
  const prefix = `bench:${run}:${c}:`;
  const list: Scenario[] = [];

  // Duplicate path: the token completed long ago, the cache answers.
  const POOL = 1000;
  const redisCache = new RedisIdempotencyCache(conn.redis, { keyPrefix: prefix });
  const dup = engineOn(new MemoryIdempotencyStore(), redisCache);
  await inParallel(POOL, (i) => dup.one(payment(key('dup', i))));
  await inParallel(POOL, (i) => conn.redis.set(`${prefix}raw:${i}`, '1').then(() => undefined));
  list.push({
    name: 'duplicate path (Redis cache hit)',
    concurrency: c,
    target: 0.9,
    baselineLabel: 'raw ioredis GET',
    ours: (i) => dup.one(payment(key('dup', i % POOL))),
    baseline: async (i) => {
      await conn.redis.get(`${prefix}raw:${i % POOL}`);
    },
  });

  // The near cache in front of the same Redis: a duplicate this process saw lately costs no round trip.
  const near = engineOn(
    new MemoryIdempotencyStore(),
    new NearIdempotencyCache(redisCache, { maxEntries: POOL * 2 }),
  );
  await inParallel(POOL, (i) => near.one(payment(key('dup', i))));
  list.push({
    name: 'duplicate path (near cache over Redis)',
    concurrency: c,
    ...(c === 1 ? { target: 3 } : {}),
    baselineLabel: 'raw ioredis GET',
    ours: (i) => near.one(payment(key('dup', i % POOL))),
    baseline: async (i) => {
      await conn.redis.get(`${prefix}raw:${i % POOL}`);
    },
  });

  // First-time transactional path: Redis cache, token and business row in one SQL transaction, cache after commit.
  for (const [label, db] of [
    ['PostgreSQL', conn.pg],
    ['MariaDB', conn.mysql],
  ] as const) {
    const engine = engineOn(new KnexIdempotencyStore(db, { tableName: TOKENS }), redisCache);
    list.push(
      {
        name: `first-time, Redis + ${label} (transactional)`,
        concurrency: c,
        target: 0.9,
        baselineLabel: 'raw SQL txn (claim + insert + commit) + SET',
        ours: (i) => engine.one(payment(key(`ft-${label}`, i))),
        baseline: async (i) => {
          await rawTransaction(db, key(`raw-${label}`, i));
          await conn.redis.set(`${prefix}raw-ft:${i}`, '1', 'PX', 60_000);
        },
      },
      {
        // The same against the whole recipe by hand: it reads the cache first too (a miss), as ours does.
        name: `first-time, Redis + ${label} (transactional), vs the recipe by hand`,
        concurrency: c,
        baselineLabel: 'raw GET (miss) + SQL txn + SET',
        ours: (i) => engine.one(payment(key(`ftr-${label}`, i))),
        baseline: async (i) => {
          await conn.redis.get(`${prefix}raw-ftr:${i}`);
          await rawTransaction(db, key(`rawr-${label}`, i));
          await conn.redis.set(`${prefix}raw-ftr:${i}`, '1', 'PX', 60_000);
        },
      },
    );
  }
  if (c === 1) {
    // SQLite has one connection per process: concurrency would only queue on it.
    const engine = engineOn(
      new KnexIdempotencyStore(conn.sqlite, { tableName: TOKENS }),
      new MemoryIdempotencyCache(),
    );
    list.push({
      name: 'first-time, SQLite (transactional)',
      concurrency: c,
      target: 0.9,
      baselineLabel: 'raw SQL txn (claim + insert + commit)',
      ours: (i) => engine.one(payment(key('ft-sqlite', i))),
      baseline: (i) => rawTransaction(conn.sqlite, key('raw-sqlite', i)),
    });
  }

  // Lease mode on the Redis store: claim + complete, two round trips.
  const redisStore = new RedisIdempotencyStore(conn.redis, { keyPrefix: `${prefix}store:` });
  const lease = engineOn(redisStore, new NoIdempotencyCache(), LeaseConsumer);
  list.push({
    name: 'first-time, Redis store (lease mode)',
    concurrency: c,
    target: 0.8,
    baselineLabel: 'raw SET NX PX + SET',
    ours: (i) => lease.one(payment(key('lease', i))),
    baseline: async (i) => {
      const k = `${prefix}raw-lease:${i}`;
      await conn.redis.set(k, 'claim', 'PX', 60_000, 'NX');
      await conn.redis.set(k, 'done', 'PX', 60_000);
    },
  });

  // The memory adapters against the bare handler.
  const memory = engineOn(new MemoryIdempotencyStore({ maxRecords: 100_000 }), new MemoryIdempotencyCache());
  list.push({
    name: 'first-time, memory adapters',
    concurrency: c,
    baselineLabel: 'the handler without idempotency',
    ours: (i) => memory.one(payment(key('mem', i))),
    baseline: async (i) => {
      await Promise.resolve(payment(key('bare', i)));
    },
  });

  // Batches of 32 (one receive) against the same messages one by one.
  const BATCH = 32;
  const batchOf = (what: string, i: number, pool?: number) =>
    Array.from({ length: BATCH }, (_, j) =>
      payment(key(what, pool ? (i * BATCH + j) % pool : i * BATCH + j)),
    );
  list.push({
    name: 'batch of 32, duplicates (Redis cache)',
    concurrency: c,
    ...(c === 64 ? { target: 3 } : {}),
    opsPerCall: BATCH,
    baselineLabel: 'the same messages one by one',
    ours: (i) => dup.batch(batchOf('dup', i, POOL)),
    baseline: async (i) => {
      for (const m of batchOf('dup', i, POOL)) await dup.one(m);
    },
  });
  const pgEngine = engineOn(new KnexIdempotencyStore(conn.pg, { tableName: TOKENS }), redisCache);
  list.push({
    name: 'batch of 32, first-time (Redis + PostgreSQL)',
    concurrency: c,
    opsPerCall: BATCH,
    baselineLabel: 'the same messages one by one',
    ours: (i) => pgEngine.batch(batchOf('bft', i)),
    baseline: async (i) => {
      for (const m of batchOf('bft1', i)) await pgEngine.one(m);
    },
  });

  // The peer on the same Redis: AWS Powertools' makeIdempotent with its Redis persistence layer.
  const config = new IdempotencyConfig({ eventKeyJmesPath: 'keys[0]', expiresAfterSeconds: 600 });
  // Its in-progress expiry comes from the Lambda context; give it one, as our lease.
  config.registerLambdaContext({ getRemainingTimeInMillis: () => 60_000 } as never);
  const peer = makeIdempotent(async (_m: Payment) => undefined, {
    persistenceStore: new CachePersistenceLayer({ client: conn.peerRedis as never }),
    config,
    keyPrefix: `${prefix}powertools`,
  });
  const ourRedisOnly = engineOn(
    new RedisIdempotencyStore(conn.redis, { keyPrefix: `${prefix}peer:` }),
    new NoIdempotencyCache(),
    LeaseConsumer,
  );
  await inParallel(POOL, async (i) => {
    await ourRedisOnly.one(payment(key('pdup', i)));
    await peer(payment(key('pdup', i)));
  });
  list.push({
    name: 'duplicate path, Redis store vs Powertools',
    concurrency: c,
    target: 2,
    series: 'Powertools (peer)',
    baselineLabel: 'Powertools makeIdempotent, same Redis',
    ours: (i) => ourRedisOnly.one(payment(key('pdup', i % POOL))),
    baseline: async (i) => {
      await peer(payment(key('pdup', i % POOL)));
    },
  });
  list.push({
    name: 'first-time, Redis store vs Powertools',
    concurrency: c,
    target: 2,
    series: 'Powertools (peer)',
    baselineLabel: 'Powertools makeIdempotent, same Redis',
    ours: (i) => ourRedisOnly.one(payment(key('pft', i))),
    baseline: async (i) => {
      await peer(payment(key('pft-peer', i)));
    },
  });
  list.push(
    ...(await telemetryScenarios({
      concurrency: c,
      engine: (store, cache, options) => engineOn(store, cache, Consumer, options),
      redisCache,
      pgStore: () => new KnexIdempotencyStore(conn.pg, { tableName: TOKENS }),
      key,
      inParallel,
    })),
  );
  list.push(...(await brokerScenarios(c)));
  return list;
}
