/**
 * Only a database that cannot be reached is "unavailable": real driver errors from each database are
 * classified, a store on a closed port fails closed with StoreUnavailableError, a session the server
 * ends mid-transaction is unavailable at whatever step meets it, and the two ends of a transaction are
 * named: BEGIN (unavailable when the database cannot be reached) and COMMIT (never unavailable).
 */
import { randomUUID } from 'node:crypto';
import { IdempotencyStoreError, StoreUnavailableError } from '@idempotent-mq/core';
import knexModule, { type Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isConnectionFailure } from '../src/connection-failure.js';
import { createIdempotencyTable, dropIdempotencyTable, KnexIdempotencyStore } from '../src/index.js';
import {
  DIALECTS,
  killSession,
  openDatabase,
  sessionId,
  type TestDatabase,
  uniqueTable,
} from './support/databases.js';

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

    it('a coded error is judged by its code: an error quoting text that reads like a dropped connection is not one', async () => {
      const wide = uniqueTable('wide');
      await db.knex.schema.createTable(wide, (t) => {
        t.string('k', 100).primary();
      });
      try {
        for (const k of [
          'x - Connection terminated',
          'x - Connection lost: The server closed the connection',
        ]) {
          // PostgreSQL quotes a value it cannot cast (22P02); knex puts MySQL's and SQLite's statements,
          // bindings included, before a duplicate-key message.
          const quoting =
            dialect === 'postgresql'
              ? await failure(db.knex.raw('select ?::int', [k]))
              : await db
                  .knex(wide)
                  .insert({ k })
                  .then(() => failure(db.knex(wide).insert({ k })));
          expect((quoting as Error).message).toContain(k);
          expect(isConnectionFailure(quoting), k).toBe(false);
        }
      } finally {
        await db.knex.schema.dropTableIfExists(wide);
      }
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
        const begin = await failure(store.transaction(work));
        expect(begin).toBeInstanceOf(StoreUnavailableError);
        expect(begin).toMatchObject({ step: 'begin', code: 'STORE_UNAVAILABLE' });
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
      let ran = false;
      const begin = await failure(
        store.transaction(async () => {
          ran = true;
        }),
      );
      await trx.rollback();
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect(((error as Error).cause as Error).name).toBe('KnexTimeoutError');
      // No connection for BEGIN: nothing ran, so this is an outage the fail-open policy may act on.
      expect(ran).toBe(false);
      expect(begin).toBeInstanceOf(StoreUnavailableError);
      expect(begin).toMatchObject({ step: 'begin' });
      expect(((begin as Error).cause as Error).name).toBe('KnexTimeoutError');
    } finally {
      await knex.destroy();
    }
  });
});

for (const dialect of ['postgresql', 'mysql'] as const) {
  describe(`${dialect}: a session the server ends mid-transaction`, () => {
    const tableName = uniqueTable();
    let db: TestDatabase;
    let killer: TestDatabase;
    let store: KnexIdempotencyStore;
    beforeAll(async () => {
      db = openDatabase(dialect);
      killer = openDatabase(dialect);
      await createIdempotencyTable(db.knex, { tableName });
      store = new KnexIdempotencyStore(db.knex, { tableName });
    });
    afterAll(async () => {
      await dropIdempotencyTable(db.knex, { tableName });
      await db.close();
      await killer.close();
    });
    /** A transactional claim, as the engine makes it (written completed at once). */
    const claim = (trx: Knex.Transaction, key = randomUUID()) =>
      store.claim({ token: { scope: 'killed', key }, owner: 'o', leaseMs: 5_000, ttlMs: 60_000 }, trx);

    it('killed before a claim: the claim is StoreUnavailableError', async () => {
      const error = await failure(
        store.transaction(async (trx) => {
          await killSession(dialect, killer.knex, await sessionId(dialect, trx));
          await claim(trx);
        }),
      );
      // The driver has no code here, only its message after knex's SQL ("select … - Client has
      // encountered a connection error", "Can't add new command when connection is in closed state").
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect(error).toMatchObject({ step: 'claim', code: 'STORE_UNAVAILABLE' });
      expect(store.isTransient(error)).toBe(false);
    });

    it('killed while its claim waits for a lock: the claim is StoreUnavailableError', async () => {
      // Another session holds the table, so the claim's statement is running when its session ends.
      const locker = await killer.knex.client.acquireConnection();
      const lockSql =
        dialect === 'postgresql'
          ? [`begin`, `lock table "${tableName}" in access exclusive mode`]
          : [`lock tables \`${tableName}\` write`];
      const unlockSql = dialect === 'postgresql' ? ['rollback'] : ['unlock tables'];
      const run = (sql: string) => killer.knex.raw(sql).connection(locker);
      try {
        for (const sql of lockSql) await run(sql);
        const error = await failure(
          store.transaction(async (trx) => {
            const id = await sessionId(dialect, trx);
            const claiming = claim(trx);
            // It fails while the kill below is awaited: handled here, still awaited (and thrown) after.
            claiming.catch(() => {});
            await waitUntilWaiting(dialect, killer.knex, id);
            await killSession(dialect, killer.knex, id);
            await claiming;
          }),
        );
        expect(error).toBeInstanceOf(StoreUnavailableError);
        expect(error).toMatchObject({ step: 'claim' });
      } finally {
        for (const sql of unlockSql) await run(sql);
        await killer.knex.client.releaseConnection(locker);
      }
    });

    it('killed while the handler runs: its keep-alive and its completion are StoreUnavailableError', async () => {
      const key = randomUUID();
      const token = { scope: 'killed', key };
      let renewal: unknown;
      const error = await failure(
        store.transaction(async (trx) => {
          await claim(trx, key);
          await killSession(dialect, killer.knex, await sessionId(dialect, trx));
          renewal = await failure(store.renew(token, 'o', 5_000, trx));
          await store.complete({ token, owner: 'o', ttlMs: 60_000, result: '{"done":true}' }, trx);
        }),
      );
      expect(renewal).toBeInstanceOf(StoreUnavailableError);
      expect(renewal).toMatchObject({ step: 'renew' });
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect(error).toMatchObject({ step: 'complete', token });
      expect(await db.knex(tableName).where({ owner: 'o' }).select('id')).toHaveLength(0);
    });

    it('killed after the work ran: the COMMIT is named, and never unavailable (it may have committed)', async () => {
      const error = await failure(
        store.transaction(async (trx) => {
          await claim(trx);
          await killSession(dialect, killer.knex, await sessionId(dialect, trx));
        }),
      );
      expect(error).toBeInstanceOf(IdempotencyStoreError);
      expect(error).not.toBeInstanceOf(StoreUnavailableError);
      expect(error).toMatchObject({ step: 'commit', code: 'STORE_FAILED' });
      // The cause is a dropped connection all the same: only its place makes it "failed".
      expect(isConnectionFailure((error as Error).cause)).toBe(true);
      expect((error as Error).message).toMatch(/COMMIT/);
    });

    it('a BEGIN the server refuses is named, and not unavailable', async () => {
      // knex accepts 'snapshot' (SQL Server's level); this server does not.
      const odd = new KnexIdempotencyStore(db.knex, { tableName, isolationLevel: 'snapshot' });
      let ran = false;
      const error = await failure(
        odd.transaction(async () => {
          ran = true;
        }),
      );
      expect(ran).toBe(false);
      expect(error).toBeInstanceOf(IdempotencyStoreError);
      expect(error).not.toBeInstanceOf(StoreUnavailableError);
      expect(error).toMatchObject({ step: 'begin', code: 'STORE_FAILED' });
      expect((error as Error).message).toMatch(/ISOLATION LEVEL snapshot.*syntax/i);
    });
  });
}

/** Waits until the session's statement is blocked on a lock. */
async function waitUntilWaiting(dialect: 'postgresql' | 'mysql', db: Knex, id: number): Promise<void> {
  const until = Date.now() + 5_000;
  for (;;) {
    const waiting =
      dialect === 'postgresql'
        ? (
            await db.raw(
              "select count(*)::int as n from pg_stat_activity where pid = ? and wait_event_type = 'Lock'",
              [id],
            )
          ).rows[0].n > 0
        : Number(
            (
              await db.raw(
                "select count(*) as n from information_schema.processlist where id = ? and state like 'Waiting for%'",
                [id],
              )
            )[0][0].n,
          ) > 0;
    if (waiting) return;
    if (Date.now() > until) throw new Error(`session ${id} never waited for the lock`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
