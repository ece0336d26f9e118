import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  IDEMPOTENCY_CACHE,
  IDEMPOTENCY_LOGGER,
  IDEMPOTENCY_STORE,
  IdempotencyModule,
  Idempotent,
  ListenerRegistry,
  MESSAGE_TRANSPORT,
  MemoryIdempotencyCache,
  MessageListener,
  type MessageTransport,
  ReadinessError,
  type TransportMessage,
} from '@idempotent-mq/core';
import { createIdempotencyTable, KnexIdempotencyStore } from '@idempotent-mq/knex';
import { FaultyCache, InMemoryBroker } from '@idempotent-mq/testing';
import { Container, injectable } from 'inversify';
import knexFactory, { type Knex } from 'knex';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RecordingLogger } from '../support/engine-harness.js';

type Msg = TransportMessage<{ amount: number }>;

@injectable()
@MessageListener({ topic: 'ready', consumerGroup: 'r' })
class Payments {
  charged: string[] = [];
  @Idempotent({ key: (m: Msg) => m.keys })
  async onMessage(m: Msg) {
    this.charged.push(m.keys[0] as string);
  }
}

/** The in-memory broker, counting what was subscribed. */
function counting(broker: InMemoryBroker): MessageTransport & { subscribed: number } {
  const inner = broker.connect();
  const transport = {
    subscribed: 0,
    profile: inner.profile,
    subscribe: async (spec: Parameters<MessageTransport['subscribe']>[0]) => {
      transport.subscribed++;
      await inner.subscribe(spec);
    },
    stop: () => inner.stop(),
  };
  return transport;
}

describe('the registry checks the store and the cache before it consumes anything', () => {
  let dir: string;
  let knex: Knex;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'imq-ready-'));
    knex = knexFactory({
      client: 'better-sqlite3',
      connection: { filename: join(dir, 'db.sqlite') },
      useNullAsDefault: true,
    });
  });
  afterEach(async () => {
    await knex.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  function wired(store: KnexIdempotencyStore, cache = new MemoryIdempotencyCache()) {
    const c = new Container();
    c.load(new IdempotencyModule());
    c.rebind(IDEMPOTENCY_STORE).toConstantValue(store);
    c.rebind(IDEMPOTENCY_CACHE).toConstantValue(cache);
    const logger = new RecordingLogger();
    c.rebind(IDEMPOTENCY_LOGGER).toConstantValue(logger);
    const broker = new InMemoryBroker();
    const transport = counting(broker);
    c.bind(MESSAGE_TRANSPORT).toConstantValue(transport);
    c.bind(Payments).toSelf().inSingletonScope();
    return { c, logger, broker, transport };
  }

  it('a table never migrated stops the start, naming the migration, and nothing is subscribed', async () => {
    const { c, transport, broker } = wired(new KnexIdempotencyStore(knex, { tableName: 'never_migrated' }));
    const registry = new ListenerRegistry(c);
    const error = await registry.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ReadinessError);
    expect((error as Error).message).toContain('never_migrated');
    expect((error as Error).message).toContain('idempotencyMigration');
    expect(transport.subscribed).toBe(0);
    broker.publish('ready', { keys: ['PAY-1'], body: { amount: 1 } });
    expect(broker.deadLetters()).toEqual([]);
    expect(registry.health()).toMatchObject({ state: 'idle', ready: false });
  });

  it('a migrated table passes; health() reports ready with every check; messages flow', async () => {
    await createIdempotencyTable(knex, { tableName: 'tokens' });
    const { c, broker, transport } = wired(new KnexIdempotencyStore(knex, { tableName: 'tokens' }));
    const registry = new ListenerRegistry(c);
    await registry.start();
    const health = registry.health();
    expect(health.ready).toBe(true);
    expect(health.checks.length).toBeGreaterThan(1);
    expect(health.checks.every((check) => check.status !== 'failed')).toBe(true);
    expect(transport.subscribed).toBe(1);
    broker.publish('ready', { keys: ['PAY-2'], body: { amount: 1 } });
    await broker.idle(5_000);
    await registry.stop();
    expect(c.get(Payments).charged).toEqual(['PAY-2']);
  });

  it('a cache that is down degrades the start (logged once), and its failure and recovery are each said once', async () => {
    await createIdempotencyTable(knex, { tableName: 'tokens' });
    const cache = new FaultyCache(new MemoryIdempotencyCache());
    const down = new Error('ECONNREFUSED 127.0.0.1:1');
    cache.faults.inject('getMany', { fail: down });
    cache.faults.inject('set', { fail: down });
    const degraded = Object.assign(cache, {
      check: async () => [
        {
          name: 'reachable',
          status: 'degraded' as const,
          detail: 'connect ECONNREFUSED',
          fix: 'start Redis',
        },
      ],
    });
    const { c, broker, logger } = wired(
      new KnexIdempotencyStore(knex, { tableName: 'tokens' }),
      degraded as never,
    );
    const registry = new ListenerRegistry(c, { retryBaseDelayMs: 5 });
    await registry.start();
    expect(registry.health().ready).toBe(true);
    expect(
      logger.at('warn').filter((w) => w.includes('start-up check: cache: reachable (degraded)')),
    ).toHaveLength(1);
    for (const key of ['A', 'B', 'C']) broker.publish('ready', { keys: [key], body: { amount: 1 } });
    await broker.idle(5_000);
    expect(logger.at('warn').filter((w) => w.includes('the cache is out of reach'))).toHaveLength(1);
    cache.faults.clear();
    broker.publish('ready', { keys: ['D'], body: { amount: 1 } });
    await broker.idle(5_000);
    await registry.stop();
    expect(logger.at('warn').filter((w) => w.includes('the cache answers again'))).toHaveLength(1);
    expect(c.get(Payments).charged.sort()).toEqual(['A', 'B', 'C', 'D']);
  });

  it('a misspelt registry option is refused with the nearest one', () => {
    expect(() => new ListenerRegistry(new Container(), { inFlightDelayMS: 5 } as never)).toThrow(
      'did you mean "inFlightDelayMs"?',
    );
  });
});
