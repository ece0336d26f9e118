/**
 * `isTransient` on real failures of each database: deadlocks, a serialization failure, a lock wait that
 * ran out and a busy SQLite file are transient, whether the handler's own write or the store's statement
 * met them; a unique violation, a syntax error, a missing table, a dropped connection and a refused
 * token are not.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdempotencyStoreError, StoreUnavailableError, type TokenRef } from '@idempotent-mq/core';
import knexModule, { type Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

/** Resolves once `parties` have arrived: both sides of a deadlock hold their first lock. */
function barrier(parties: number): () => Promise<void> {
  let arrived = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return async () => {
    if (++arrived === parties) open();
    await opened;
  };
}

for (const dialect of ['postgresql', 'mysql'] as const) {
  describe(`${dialect}: deadlocks and lock waits are transient`, () => {
    const tableName = uniqueTable();
    const accounts = uniqueTable('acct');
    let db: TestDatabase;
    let store: KnexIdempotencyStore;
    beforeAll(async () => {
      db = openDatabase(dialect);
      await createIdempotencyTable(db.knex, { tableName });
      await db.knex.schema.createTable(accounts, (t) => {
        t.integer('id').primary();
        t.integer('balance').notNullable();
      });
      await db.knex(accounts).insert([
        { id: 1, balance: 0 },
        { id: 2, balance: 0 },
      ]);
      store = new KnexIdempotencyStore(db.knex, { tableName });
    });
    afterAll(async () => {
      await dropIdempotencyTable(db.knex, { tableName });
      await db.knex.schema.dropTableIfExists(accounts);
      await db.close();
    });
    const token = (key: string): TokenRef => ({ scope: `deadlock-${dialect}`, key });

    it("two handlers writing two rows in opposite order: the victim's own driver error is transient", async () => {
      const bothHoldOne = barrier(2);
      const transfer = (from: number, to: number) =>
        store.transaction(async (trx) => {
          const key = randomUUID();
          await store.claim({ token: token(key), owner: key, leaseMs: 5_000, ttlMs: 60_000 }, trx);
          await trx(accounts).where({ id: from }).increment('balance', -1);
          await bothHoldOne();
          await trx(accounts).where({ id: to }).increment('balance', 1);
        });
      const outcomes = await Promise.allSettled([transfer(1, 2), transfer(2, 1)]);
      const rejected = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      expect(rejected).toHaveLength(1);
      const victim = rejected[0]?.reason as { code?: unknown; errno?: unknown };
      // The handler's own write failed: the store passes its error through untouched.
      expect(victim).not.toBeInstanceOf(IdempotencyStoreError);
      expect(dialect === 'postgresql' ? victim.code : victim.errno).toBe(
        dialect === 'postgresql' ? '40P01' : 1213,
      );
      expect(store.isTransient(victim)).toBe(true);
    });

    it("a deadlock met by the store's own statement is transient through the store's error", async () => {
      const [a, b] = [token(randomUUID()), token(randomUUID())];
      for (const t of [a, b]) await store.claim({ token: t, owner: t.key, leaseMs: 60_000 });
      const bothHoldOne = barrier(2);
      // Completing locks the token's row: each transaction completes one, then the other's.
      const completeBoth = (first: TokenRef, second: TokenRef) =>
        store.transaction(async (trx) => {
          await store.complete({ token: first, owner: first.key, ttlMs: 60_000 }, trx);
          await bothHoldOne();
          await store.complete({ token: second, owner: second.key, ttlMs: 60_000 }, trx);
        });
      const outcomes = await Promise.allSettled([completeBoth(a, b), completeBoth(b, a)]);
      const rejected = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      expect(rejected).toHaveLength(1);
      const error = rejected[0]?.reason;
      expect(error).toBeInstanceOf(IdempotencyStoreError);
      expect(error).not.toBeInstanceOf(StoreUnavailableError);
      expect(error).toMatchObject({ step: 'complete', code: 'STORE_FAILED' });
      expect(store.isTransient(error)).toBe(true);
    });

    if (dialect === 'postgresql') {
      it('a serialization failure under REPEATABLE READ is transient', async () => {
        const repeatable = new KnexIdempotencyStore(db.knex, {
          tableName,
          isolationLevel: 'repeatable read',
        });
        const error = await failure(
          repeatable.transaction(async (trx) => {
            await trx(accounts).where({ id: 1 }).select('balance');
            // Another transaction changes the row after this one's snapshot was taken.
            await db.knex(accounts).where({ id: 1 }).increment('balance', 1);
            await trx(accounts).where({ id: 1 }).increment('balance', 1);
          }),
        );
        expect((error as { code?: unknown }).code).toBe('40001');
        expect(repeatable.isTransient(error)).toBe(true);
      });
    } else {
      it('a lock wait that ran out (1205) is transient', async () => {
        const holder = await openTransactionHolding(db.knex, accounts, 1);
        try {
          const error = await failure(
            store.transaction((trx) =>
              trx.raw(
                `set statement innodb_lock_wait_timeout=1 for update \`${accounts}\` set balance = 0 where id = 1`,
              ),
            ),
          );
          expect((error as { errno?: unknown }).errno).toBe(1205);
          expect(store.isTransient(error)).toBe(true);
        } finally {
          await holder.end();
        }
      });
    }

    it('a dropped connection is not transient', async () => {
      const killer = openDatabase(dialect);
      try {
        const error = await failure(
          store.transaction(async (trx) => {
            await killSession(dialect, killer.knex, await sessionId(dialect, trx));
            await trx(accounts).where({ id: 1 }).select('balance');
          }),
        );
        expect(store.isTransient(error)).toBe(false);
        const storeError = await failure(
          store.transaction(async (trx) => {
            await killSession(dialect, killer.knex, await sessionId(dialect, trx));
            await store.claim({ token: token(randomUUID()), owner: 'o', leaseMs: 5_000 }, trx);
          }),
        );
        expect(storeError).toBeInstanceOf(StoreUnavailableError);
        expect(store.isTransient(storeError)).toBe(false);
      } finally {
        await killer.close();
      }
    });
  });
}

describe('sqlite: a busy database file is transient', () => {
  const dir = mkdtempSync(join(tmpdir(), 'idem-busy-'));
  const filename = join(dir, 'busy.db');
  const tableName = uniqueTable();
  // Two processes on one file; no busy wait, so that the second meets the first's write lock at once.
  const open = () =>
    knexModule({
      client: 'better-sqlite3',
      connection: { filename },
      useNullAsDefault: true,
      pool: {
        afterCreate: (
          conn: { pragma(sql: string): unknown },
          done: (err: Error | null, conn: unknown) => void,
        ) => {
          conn.pragma('journal_mode = WAL');
          conn.pragma('busy_timeout = 0');
          done(null, conn);
        },
      },
    });
  let first: Knex;
  let second: Knex;
  beforeAll(async () => {
    first = open();
    second = open();
    await createIdempotencyTable(first, { tableName });
  });
  afterAll(async () => {
    await first.destroy();
    await second.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a claim meeting another process's open write transaction fails SQLITE_BUSY, and is transient", async () => {
    const a = new KnexIdempotencyStore(first, { tableName });
    const b = new KnexIdempotencyStore(second, { tableName });
    const claim = (store: KnexIdempotencyStore, trx: Knex.Transaction) =>
      store.claim(
        { token: { scope: 'busy', key: randomUUID() }, owner: 'o', leaseMs: 5_000, ttlMs: 60_000 },
        trx,
      );
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let claimed!: () => void;
    const firstClaimed = new Promise<void>((resolve) => {
      claimed = resolve;
    });
    const holding = a.transaction(async (trx) => {
      await claim(a, trx);
      claimed();
      await held;
    });
    await firstClaimed;
    try {
      const error = await failure(b.transaction((trx) => claim(b, trx)));
      expect(error).toBeInstanceOf(IdempotencyStoreError);
      expect(error).toMatchObject({ step: 'claim' });
      expect(((error as Error).cause as { code?: unknown }).code).toMatch(/^SQLITE_BUSY/);
      expect(b.isTransient(error)).toBe(true);
      // The same from a handler's own write, as the driver threw it.
      const own = await failure(second.transaction((trx) => trx(tableName).delete()));
      expect((own as { code?: unknown }).code).toMatch(/^SQLITE_BUSY/);
      expect(b.isTransient(own)).toBe(true);
    } finally {
      release();
      await holding;
    }
    // Run again once the other transaction has ended, it passes.
    await expect(b.transaction((trx) => claim(b, trx))).resolves.toMatchObject({ status: 'claimed' });
  });
});

for (const dialect of DIALECTS) {
  describe(`${dialect}: what is not transient`, () => {
    const table = uniqueTable('keys');
    let db: TestDatabase;
    let store: KnexIdempotencyStore;
    beforeAll(async () => {
      db = openDatabase(dialect);
      await db.knex.schema.createTable(table, (t) => {
        t.string('k', 16).primary();
      });
      store = new KnexIdempotencyStore(db.knex, { tableName: uniqueTable('missing') });
    });
    afterAll(async () => {
      await db.knex.schema.dropTableIfExists(table);
      await db.close();
    });

    it('a unique violation, a syntax error, a missing table and a refused token are not transient', async () => {
      await db.knex(table).insert({ k: 'a' });
      expect(store.isTransient(await failure(db.knex(table).insert({ k: 'a' })))).toBe(false);
      expect(store.isTransient(await failure(db.knex.raw('select from where')))).toBe(false);
      const missing = await failure(
        store.claim({ token: { scope: 's', key: 'k' }, owner: 'o', leaseMs: 1_000 }),
      );
      expect((missing as Error).name).toBe('IdempotencyTableMissingError');
      expect(store.isTransient(missing)).toBe(false);
      const refused = await failure(
        store.claim({ token: { scope: 's', key: '\ud800' }, owner: 'o', leaseMs: 1_000 }),
      );
      expect((refused as { code?: unknown }).code).toBe('UNSTORABLE_TOKEN');
      expect(store.isTransient(refused)).toBe(false);
      for (const other of [new Error('handler failed'), 'a string', undefined, null, { code: 40001 }]) {
        expect(store.isTransient(other)).toBe(false);
      }
    });
  });
}

/** A transaction on its own connection that holds the row's lock until `end()`. */
async function openTransactionHolding(
  knex: Knex,
  table: string,
  id: number,
): Promise<{ end(): Promise<void> }> {
  const trx = await knex.transaction();
  await trx(table).where({ id }).update({ balance: 0 });
  return { end: () => trx.rollback().then(() => undefined) };
}
