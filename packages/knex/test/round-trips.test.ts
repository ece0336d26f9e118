/**
 * A claim made inside the transaction that completes it (the engine's transactional mode passes its
 * retention as `ttlMs`) is written completed at once, so completing it costs no statement unless there is
 * a result to store; the rows it leaves are the same.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdempotencyTable, dropIdempotencyTable, KnexIdempotencyStore } from '../src/index.js';
import { DIALECTS, openDatabase, type TestDatabase, uniqueTable } from './support/databases.js';

for (const dialect of DIALECTS) {
  describe(`${dialect}: a transactional claim that knows its retention`, () => {
    const tableName = uniqueTable();
    let db: TestDatabase;
    let store: KnexIdempotencyStore;
    beforeAll(async () => {
      db = openDatabase(dialect);
      await createIdempotencyTable(db.knex, { tableName });
      store = new KnexIdempotencyStore(db.knex, { tableName });
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

    it('claims in as few statements as the dialect allows (PostgreSQL: lock and insert together)', async () => {
      const token = { scope: 'rt', key: randomUUID() };
      const statements: string[] = [];
      const listen = (q: { sql: string }) => statements.push(q.sql);
      await store.transaction(async (tx) => {
        db.knex.on('query', listen);
        try {
          expect((await store.claim({ token, owner: 'o', leaseMs: 5_000, ttlMs: 60_000 }, tx)).status).toBe(
            'claimed',
          );
        } finally {
          db.knex.removeListener('query', listen);
        }
      });
      // PostgreSQL: one CTE; MySQL/MariaDB: GET_LOCK, INSERT IGNORE, read-back; SQLite: one INSERT … RETURNING.
      expect(statements).toHaveLength({ postgresql: 1, mysql: 3, sqlite: 1 }[dialect]);
    });

    it('stores a result with one UPDATE, fenced on the owner', async () => {
      const { statements, row } = await claimAndComplete(60_000, '{"receipt":"R-1"}');
      expect(statements.filter((s) => /^update/i.test(s.trim()))).toHaveLength(1);
      expect(row).toMatchObject({ status: 'completed', result: '{"receipt":"R-1"}' });
    });
  });
}
