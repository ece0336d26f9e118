import { MessageListener } from '@idempotent-mq/core';
import { KnexIdempotencyStore } from '@idempotent-mq/knex';
import { RedisIdempotencyCache, RedisIdempotencyStore } from '@idempotent-mq/redis';
import { Redis } from 'ioredis';
import knexFactory from 'knex';
import { afterAll, describe, expect, it } from 'vitest';

// The misspellings a new user made, as the adoption review found them: each passed silently before.
describe('a misspelt option is refused at once, with the nearest valid name', () => {
  const knex = knexFactory({
    client: 'better-sqlite3',
    connection: { filename: ':memory:' },
    useNullAsDefault: true,
  });
  const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true });
  afterAll(async () => {
    await knex.destroy();
    redis.disconnect();
  });

  it('@MessageListener({ concurency })', () => {
    expect(() => {
      @MessageListener({ topic: 'payments', consumerGroup: 'billing', concurency: 4 } as never)
      class Listener {}
      return Listener;
    }).toThrow(
      '"@MessageListener(Listener).concurency": expected no such option; did you mean "concurrency"?',
    );
  });

  it('KnexIdempotencyStore({ tabelName })', () => {
    expect(() => new KnexIdempotencyStore(knex, { tabelName: 'tokens' } as never)).toThrow(
      '"KnexIdempotencyStore.tabelName": expected no such option; did you mean "tableName"?',
    );
  });

  it('RedisIdempotencyStore and RedisIdempotencyCache({ keyprefix })', () => {
    expect(() => new RedisIdempotencyStore(redis, { keyprefix: 'pay:' } as never)).toThrow(
      'did you mean "keyPrefix"?',
    );
    expect(() => new RedisIdempotencyCache(redis, { keyprefix: 'pay:' } as never)).toThrow(
      '"RedisIdempotencyCache.keyprefix": expected no such option; did you mean "keyPrefix"?',
    );
  });
});
