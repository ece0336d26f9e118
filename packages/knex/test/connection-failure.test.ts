/**
 * Only a database that cannot be reached is "unavailable": real driver errors from each database are
 * classified, and a store on a closed port fails closed with StoreUnavailableError.
 */
import { StoreUnavailableError } from '@idempotent-mq/core';
import knexModule, { type Knex } from 'knex';
import { afterAll, describe, expect, it } from 'vitest';
import { isConnectionFailure } from '../src/connection-failure.js';
import { KnexIdempotencyStore } from '../src/index.js';
import { DIALECTS, openDatabase, uniqueTable } from './support/databases.js';

const failure = async (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => {
      throw new Error('expected a failure');
    },
    (error: unknown) => error,
  );

for (const dialect of DIALECTS) {
  describe(`driver errors on ${dialect}`, () => {
    const db = openDatabase(dialect);
    const table = uniqueTable('dup');
    afterAll(async () => {
      await db.knex.schema.dropTableIfExists(table);
      await db.close();
    });

    it('a duplicate-key error, a syntax error and a missing table are not "unavailable"', async () => {
      await db.knex.schema.createTable(table, (t) => {
        t.string('k', 16).primary();
      });
      await db.knex(table).insert({ k: 'a' });
      const duplicate = await failure(db.knex(table).insert({ k: 'a' }));
      expect((duplicate as { code?: string }).code).toBe(
        { postgresql: '23505', mysql: 'ER_DUP_ENTRY', sqlite: 'SQLITE_CONSTRAINT_PRIMARYKEY' }[dialect],
      );
      expect(isConnectionFailure(duplicate)).toBe(false);
      expect(isConnectionFailure(await failure(db.knex.raw('select from where')))).toBe(false);
      expect(isConnectionFailure(await failure(db.knex(uniqueTable('nope')).select('*')))).toBe(false);
    });
  });
}

describe('a database that cannot be reached', () => {
  const down: Record<'postgresql' | 'mysql', () => Knex> = {
    postgresql: () =>
      knexModule({
        client: 'pg',
        connection: 'postgres://postgres@127.0.0.1:1/test',
        acquireConnectionTimeout: 3_000,
      }),
    mysql: () =>
      knexModule({
        client: 'mysql2',
        connection: 'mysql://root@127.0.0.1:1/test',
        acquireConnectionTimeout: 3_000,
      }),
  };
  for (const [dialect, make] of Object.entries(down)) {
    it(`${dialect}: every store call fails with StoreUnavailableError naming its step`, async () => {
      const knex = make();
      try {
        const store = new KnexIdempotencyStore(knex, { tableName: 'idem_never' });
        const token = { scope: 's', key: 'k' };
        const claim = await failure(store.claim({ token, owner: 'o', leaseMs: 1_000 }));
        expect(claim).toBeInstanceOf(StoreUnavailableError);
        expect(claim).toMatchObject({ code: 'STORE_UNAVAILABLE', step: 'claim', token });
        expect(isConnectionFailure((claim as Error).cause)).toBe(true);
        expect(await failure(store.complete({ token, owner: 'o', ttlMs: 1_000 }))).toMatchObject({
          step: 'complete',
          code: 'STORE_UNAVAILABLE',
        });
        const work = async () => 'never';
        expect(await failure(store.transaction(work))).toMatchObject({
          step: 'transaction',
          code: 'STORE_UNAVAILABLE',
        });
      } finally {
        await knex.destroy();
      }
    });
  }

  it('a pool that cannot hand out a connection in time (KnexTimeoutError) is unavailable', async () => {
    const knex = knexModule({
      client: 'pg',
      connection: process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
      pool: { min: 0, max: 1 },
      acquireConnectionTimeout: 300,
    });
    try {
      const trx = await knex.transaction();
      const store = new KnexIdempotencyStore(knex, { tableName: 'idem_never' });
      const error = await failure(store.get({ scope: 's', key: 'k' }));
      await trx.rollback();
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect(((error as Error).cause as Error).name).toBe('KnexTimeoutError');
    } finally {
      await knex.destroy();
    }
  });
});
