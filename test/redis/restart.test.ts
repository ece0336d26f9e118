/**
 * The fault test: a redis-server of our own is killed (SIGKILL) and restarted in the middle of a run of
 * 1 000 deliveries with duplicates through `@Idempotent` consumers, which a broker-like loop redelivers
 * until each copy is settled → 0 lost, 0 processed twice.
 * - Redis as the cache, the memory or the SQL (PostgreSQL) store behind it: the cache may forget
 *   anything; the store decides.
 * - Redis as the store: without AOF a restart forgets every record (a redelivery runs again: asserted);
 *   with `appendonly yes, appendfsync always` every acknowledged claim and completion survives.
 */
import {
  IDEMPOTENCY_CLOCK,
  type IdempotencyContext,
  type IdempotencyStore,
  Idempotent,
  MemoryIdempotencyStore,
  SystemClock,
} from '@idempotent-mq/core';
import { createIdempotencyTable, dropIdempotencyTable, KnexIdempotencyStore } from '@idempotent-mq/knex';
import { RedisIdempotencyCache, RedisIdempotencyStore } from '@idempotent-mq/redis';
import { injectable } from 'inversify';
import { Redis } from 'ioredis';
import knexFactory from 'knex';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer, sleep } from '../../packages/redis/test/support/redis-server.js';
import { type Harness, harness, type Message, msg } from '../support/engine-harness.js';

/** The SQL store behind the cache: PostgreSQL, in a table of this run's own. */
const pg = knexFactory({
  client: 'pg',
  connection: process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  pool: { min: 0, max: 16 },
});
const TABLE = `redis_restart_${process.pid}`;
beforeAll(() => createIdempotencyTable(pg, { tableName: TABLE }));
afterAll(async () => {
  await dropIdempotencyTable(pg, { tableName: TABLE });
  await pg.destroy();
});

/** Stores that can sit behind the Redis cache. */
const STORES_BEHIND_THE_CACHE: Record<string, () => IdempotencyStore> = {
  memory: () => new MemoryIdempotencyStore({ clock: new SystemClock() }),
  'PostgreSQL (knex)': () => new KnexIdempotencyStore(pg, { tableName: TABLE }),
};

const UNIQUE = 600;
const DELIVERIES = 1_000;
const CONCURRENCY = 16;

function ledgerConsumer() {
  const effects = new Map<string, number>();
  @injectable()
  class Ledger {
    @Idempotent({ key: (m: Message) => m.keys, mode: 'lease', leaseMs: 5_000, ttlMs: 600_000 })
    async onMessage(m: Message, _ctx: IdempotencyContext) {
      await sleep(Math.random() < 0.2 ? 2 : 0);
      const key = m.keys[0] as string;
      effects.set(key, (effects.get(key) ?? 0) + 1);
    }
  }
  return { Ledger, effects };
}

/** Every unique key once, then duplicates, shuffled with a fixed seed. */
function deliveries(unique = UNIQUE, total = DELIVERIES): string[] {
  let seed = 20_261_126;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const keys = Array.from({ length: unique }, (_, i) => `ORDER-${i}`);
  const all = [...keys, ...Array.from({ length: total - unique }, () => keys[Math.floor(random() * unique)])];
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [all[i], all[j]] = [all[j] as string, all[i] as string];
  }
  return all as string[];
}

/**
 * Delivers every message like a broker: a copy that fails or is in flight elsewhere is redelivered after a
 * pause until it settles. `during(settled)` runs after each settled copy (to trigger the outage).
 */
async function deliverAll(
  consumer: { onMessage(m: Message): Promise<unknown> },
  messages: readonly string[],
  during: (settled: number) => void = () => {},
): Promise<{ settled: number; redeliveries: number }> {
  let next = 0;
  let settled = 0;
  let redeliveries = 0;
  const worker = async () => {
    while (next < messages.length) {
      const key = messages[next++] as string;
      for (let attempt = 1; ; attempt++) {
        try {
          await consumer.onMessage(msg(key, { amount: 1 }, attempt));
          break;
        } catch (error) {
          if (attempt >= 1_000) throw new Error(`${key} was never settled`, { cause: error });
          redeliveries++;
          await sleep(10);
        }
      }
      during(++settled);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { settled, redeliveries };
}

function realTime<S extends IdempotencyStore, C extends RedisIdempotencyCache>(h: Harness<S, C>) {
  h.container.rebind(IDEMPOTENCY_CLOCK).toConstantValue(new SystemClock());
  return h;
}

async function connectTo(server: RedisServer): Promise<Redis> {
  const client = new Redis({ host: '127.0.0.1', port: server.port, retryStrategy: () => 50 });
  client.on('error', () => {}); // the outage is the point; ioredis reconnects by itself
  await new Promise((resolve) => client.once('ready', resolve));
  return client;
}

async function untilReady(client: Redis): Promise<void> {
  const started = Date.now();
  while (client.status !== 'ready') {
    if (Date.now() - started > 10_000) throw new Error('the client did not reconnect');
    await sleep(20);
  }
}

/** Kills the server when `at` copies have settled, restarts it `downMs` later. */
function outageAt(server: RedisServer, at: number, downMs = 200) {
  let outage: Promise<void> | undefined;
  return {
    during: (settled: number) => {
      if (settled === at && !outage) {
        outage = (async () => {
          await server.kill();
          await sleep(downMs);
          await server.restart();
        })();
      }
    },
    done: async () => {
      expect(outage).toBeDefined();
      await outage;
    },
  };
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function startServer(aof: boolean): Promise<{ server: RedisServer; client: Redis }> {
  const server = await RedisServer.start({ aof });
  cleanup.push(() => server.stop());
  const client = await connectTo(server);
  cleanup.push(async () => client.disconnect());
  return { server, client };
}

describe.each(Object.entries(STORES_BEHIND_THE_CACHE))(
  'the Redis cache in front of the %s store',
  (_name, makeStore) => {
    it('Redis killed and restarted mid-run: 1 000 deliveries with duplicates → 0 lost, 0 processed twice', async () => {
      const { server, client } = await startServer(false);
      const cache = new RedisIdempotencyCache(client, { timeoutMs: 200 });
      const h = realTime(harness({ store: makeStore, cache: () => cache }));
      const { Ledger, effects } = ledgerConsumer();
      const outage = outageAt(server, 300);

      const run = await deliverAll(h.get(Ledger), deliveries(), outage.during);
      await outage.done();

      expect(run.settled).toBe(DELIVERIES);
      expect(effects.size).toBe(UNIQUE); // 0 lost
      expect([...effects.values()].every((n) => n === 1)).toBe(true); // 0 twice
      expect(h.outcomes.some((o) => o.cacheBypassed)).toBe(true);
      // And the cache came back by itself: a redelivery of a fresh message is answered by it again.
      await untilReady(client);
      const after = h.outcomes.length;
      await deliverAll(h.get(Ledger), ['FRESH-1', 'FRESH-2']);
      await deliverAll(h.get(Ledger), ['FRESH-1', 'FRESH-2']);
      expect(h.outcomes.slice(after).map((o) => [o.kind, o.tier, o.cacheBypassed])).toEqual([
        ['processed', undefined, false],
        ['processed', undefined, false],
        ['duplicate', 'cache', false],
        ['duplicate', 'cache', false],
      ]);
      expect([...effects.values()].every((n) => n === 1)).toBe(true);
    });
  },
);

describe('the Redis store across a Redis restart', () => {
  it('without AOF a restart forgets every record: each redelivery runs again (what "no AOF" costs)', async () => {
    const { server, client } = await startServer(false);
    const store = new RedisIdempotencyStore(client);
    const h = realTime(harness({ store: () => store, cache: () => new RedisIdempotencyCache(client) }));
    const { Ledger, effects } = ledgerConsumer();
    const keys = deliveries(200, 200);
    await deliverAll(h.get(Ledger), keys);
    expect(
      (await store.getMany(keys.map((key) => ({ scope: h.outcomes[0]?.scope as string, key })))).every(
        Boolean,
      ),
    ).toBe(true);

    await server.restart();
    await untilReady(client);
    expect(await client.dbsize()).toBe(0);
    await deliverAll(h.get(Ledger), keys);
    expect([...effects.values()].every((n) => n === 2)).toBe(true);
  });

  it('with appendonly yes + appendfsync always: killed and restarted mid-run → 0 lost, 0 processed twice, and every record survives', async () => {
    const { server, client } = await startServer(true);
    // Claims fail at once while Redis is away, so the run really meets the outage (redeliveries).
    const store = new RedisIdempotencyStore(client, { readyTimeoutMs: 0 });
    const h = realTime(harness({ store: () => store, cache: () => new RedisIdempotencyCache(client) }));
    const { Ledger, effects } = ledgerConsumer();
    const outage = outageAt(server, 300);

    const run = await deliverAll(h.get(Ledger), deliveries(), outage.during);
    await outage.done();
    expect(run.settled).toBe(DELIVERIES);
    expect(run.redeliveries).toBeGreaterThan(0); // the outage did hit the run: claims failed fast meanwhile
    expect(effects.size).toBe(UNIQUE);
    expect([...effects.values()].every((n) => n === 1)).toBe(true);

    // A second crash after the run: every completed record is replayed from the AOF.
    await server.restart();
    await untilReady(client);
    const scope = h.outcomes[0]?.scope as string;
    const keys = deliveries(UNIQUE, UNIQUE);
    const records = await store.getMany(keys.map((key) => ({ scope, key })));
    expect(records.every((r) => r?.status === 'completed')).toBe(true);
    const after = h.outcomes.length;
    await deliverAll(h.get(Ledger), keys);
    expect(h.outcomes.slice(after).every((o) => o.kind === 'duplicate')).toBe(true);
    expect([...effects.values()].every((n) => n === 1)).toBe(true);
  });
});
