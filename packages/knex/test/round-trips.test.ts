/**
 * A claim made inside the transaction that completes it (the engine's transactional mode passes its
 * retention as `ttlMs`) is written completed at once, so completing it costs no statement unless there is
 * a result to store; the rows it leaves are the same.
 */
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdempotencyTable, dropIdempotencyTable, KnexIdempotencyStore } from '../src/index.js';
import {
  DIALECTS,
  expectLockFree,
  openDatabase,
  type TestDatabase,
  uniqueTable,
} from './support/databases.js';

for (const dialect of DIALECTS) {
  describe(`${dialect}: a transactional claim that knows its retention`, () => {
    const tableName = uniqueTable();
    let db: TestDatabase;
    let store: KnexIdempotencyStore;
    beforeAll(async () => {
      db = openDatabase(dialect);
      await createIdempotencyTable(db.knex, { tableName });
      store = new KnexIdempotencyStore(db.knex, { tableName });
      // The MySQL dialect asks the server's version once, with the first claim: not counted below.
      const warmUp = { scope: 'rt', key: 'warm-up' };
      await store.transaction((tx) =>
        store.claim({ token: warmUp, owner: 'w', leaseMs: 5_000, ttlMs: 60_000 }, tx),
      );
    });
    afterAll(async () => {
      await dropIdempotencyTable(db.knex, { tableName });
      await db.close();
    });

    /** Runs claim + complete in one store transaction; the statements sent, and the row left. */
    async function claimAndComplete(ttlMs: number | undefined, result?: string) {
      const token = { scope: 'rt', key: randomUUID() };
      const statements: string[] = [];
      const listen = (q: { sql: string }) => statements.push(q.sql);
      db.knex.on('query', listen);
      try {
        await store.transaction(async (tx) => {
          const claim = await store.claim({ token, owner: 'o', leaseMs: 5_000, ttlMs }, tx);
          expect(claim.status).toBe('claimed');
          await expect(store.renew(token, 'o', 5_000, tx)).resolves.toBe(true);
          await expect(store.complete({ token, owner: 'o', ttlMs: 60_000, result }, tx)).resolves.toBe(true);
          db.knex.removeListener('query', listen);
          // Still fenced: another owner's completion is refused.
          await expect(
            store.complete({ token, owner: 'someone-else', ttlMs: 60_000, result }, tx),
          ).resolves.toBe(false);
        });
      } finally {
        db.knex.removeListener('query', listen);
      }
      const [row] = await db
        .knex(tableName)
        .where({ scope: 'rt' })
        .andWhere('owner', 'o')
        .orderBy('id', 'desc')
        .limit(1);
      return { statements: statements.filter((s) => /^(insert|update)/i.test(s.trim())), row };
    }

    it('completes without an UPDATE when there is no result, and leaves the same completed row', async () => {
      const precompleted = await claimAndComplete(60_000);
      const classic = await claimAndComplete(undefined);
      expect(precompleted.statements.filter((s) => /^update/i.test(s.trim()))).toHaveLength(0);
      expect(classic.statements.filter((s) => /^update/i.test(s.trim()))).toHaveLength(1);
      for (const { row } of [precompleted, classic]) {
        expect(row).toMatchObject({ status: 'completed', lease_expires_at: null, result: null });
        expect(Number(row.expires_at) - Number(row.completed_at)).toBe(60_000);
      }
    });

    /** The statements of one store transaction running `work`, BEGIN and COMMIT included. */
    async function statementsOf(work: (tx: Knex.Transaction) => Promise<unknown>): Promise<string[]> {
      const statements: string[] = [];
      const listen = (q: { sql: string }) => statements.push(q.sql);
      db.knex.on('query', listen);
      try {
        await store.transaction(work);
      } finally {
        db.knex.removeListener('query', listen);
      }
      return statements;
    }

    /** MariaDB 10.5+ claims without waiting and without GET_LOCK; MySQL takes the lock first. */
    async function isMariaDb105(): Promise<boolean> {
      if (dialect !== 'mysql') return false;
      const [[{ v }]] = (await db.knex.raw('select version() as v')) as [[{ v: string }]];
      const [major = 0, minor = 0] = v.split('.').map(Number);
      return /mariadb/i.test(v) && (major > 10 || (major === 10 && minor >= 5));
    }

    it('a first-time claim is one statement: the transaction is BEGIN, claim, COMMIT', async () => {
      const token = { scope: 'rt', key: randomUUID() };
      const statements = await statementsOf(async (tx) => {
        const claim = await store.claim({ token, owner: 'o', leaseMs: 5_000, ttlMs: 60_000 }, tx);
        expect(claim.status).toBe('claimed');
      });
      // PostgreSQL: INSERT … SELECT … WHERE pg_try_advisory_xact_lock; MariaDB ≥ 10.5: INSERT IGNORE …
      // RETURNING that waits for no lock, and no GET_LOCK to release; SQLite: INSERT … RETURNING. MySQL:
      // GET_LOCK, INSERT IGNORE, read-back, and RELEASE_LOCK before the commit.
      const mysql = (await isMariaDb105()) ? 1 : 4;
      expect(statements.slice(1, -1)).toHaveLength({ postgresql: 1, mysql, sqlite: 1 }[dialect]);
      expect(statements[0]).toMatch(/^begin/i);
      expect(statements.at(-1)).toMatch(/^commit/i);
      if (mysql === 1) expect(statements.join('\n')).not.toMatch(/get_lock|release_lock/i);
    });

    it('a duplicate is answered from the row it meets, in two statements on PostgreSQL and MariaDB', async () => {
      const token = { scope: 'rt', key: randomUUID() };
      await store.transaction((tx) => store.claim({ token, owner: 'o', leaseMs: 5_000, ttlMs: 60_000 }, tx));
      let answer: unknown;
      const statements = await statementsOf(async (tx) => {
        answer = await store.claim({ token, owner: 'p', leaseMs: 5_000, ttlMs: 60_000 }, tx);
      });
      expect(answer).toMatchObject({ status: 'exists', record: { status: 'completed', owner: 'o' } });
      // PostgreSQL: the insert, then the lock asked again with the row. MariaDB ≥ 10.5: the insert, then a
      // locking read that does not wait; no GET_LOCK. MySQL: GET_LOCK, INSERT IGNORE, the takeover UPDATE,
      // the read, RELEASE_LOCK. SQLite: insert, update, read.
      const mysql = (await isMariaDb105()) ? 2 : 5;
      expect(statements.slice(1, -1)).toHaveLength({ postgresql: 2, mysql, sqlite: 3 }[dialect]);
      await expectLockFree(db, tableName, token);
    });

    it('leaves no lock behind: the token is free once the transaction ends, committed or rolled back', async () => {
      for (const outcome of ['commit', 'rollback'] as const) {
        const token = { scope: 'rt', key: randomUUID() };
        await store
          .transaction(async (tx) => {
            await store.claim({ token, owner: 'o', leaseMs: 5_000, ttlMs: 60_000 }, tx);
            if (outcome === 'rollback') throw new Error('handler failed');
          })
          .catch(() => undefined);
        await expectLockFree(db, tableName, token);
        // Another transaction claims the token at once (a completed record, or a fresh claim after rollback).
        const again = await store.transaction((tx) =>
          store.claim({ token, owner: 'p', leaseMs: 5_000, ttlMs: 60_000 }, tx),
        );
        expect(again.record.owner, outcome).toBe(outcome === 'commit' ? 'o' : 'p');
      }
    });

    it('leaves no lock behind after a takeover inside the transaction (the named lock on MariaDB)', async () => {
      const token = { scope: 'rt', key: randomUUID() };
      await store.claim({ token, owner: 'dead', leaseMs: 50 });
      await new Promise((resolve) => setTimeout(resolve, 80));
      const taken = await store.transaction((tx) =>
        store.claim({ token, owner: 'heir', leaseMs: 5_000, ttlMs: 60_000 }, tx),
      );
      expect(taken).toMatchObject({ status: 'claimed', takeover: true, record: { owner: 'heir', fence: 2 } });
      await expectLockFree(db, tableName, token);
    });

    it('stores a result with one UPDATE, fenced on the owner', async () => {
      const { statements, row } = await claimAndComplete(60_000, '{"receipt":"R-1"}');
      expect(statements.filter((s) => /^update/i.test(s.trim()))).toHaveLength(1);
      expect(row).toMatchObject({ status: 'completed', result: '{"receipt":"R-1"}' });
    });
  });
}
