/**
 * A claim made inside the transaction that completes it (the engine's transactional mode passes its
 * retention as `ttlMs`) is written completed at once, so completing it costs no statement unless there is
 * a result to store; the rows it leaves are the same.
 */
import { createHash, randomUUID } from 'node:crypto';
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
      // PostgreSQL: one CTE; MariaDB ≥ 10.5: one INSERT IGNORE … SELECT GET_LOCK … RETURNING; MySQL:
      // GET_LOCK, INSERT IGNORE, read-back; SQLite: one INSERT … RETURNING.
      let mysql = 3;
      if (dialect === 'mysql') {
        const [[{ v }]] = (await db.knex.raw('select version() as v')) as [[{ v: string }]];
        const [major = 0, minor = 0] = v.split('.').map(Number);
        if (/mariadb/i.test(v) && (major > 10 || (major === 10 && minor >= 5))) mysql = 1;
      }
      expect(statements).toHaveLength({ postgresql: 1, mysql, sqlite: 1 }[dialect]);
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
        if (dialect === 'mysql') {
          // The store's GET_LOCK name for this token; a lock counted twice would still be held here.
          const digest = createHash('sha256')
            .update(`${tableName}\u0000${token.scope}\u0000${token.key}`)
            .digest();
          const [[free]] = (await db.knex.raw('select is_free_lock(?) as free', [
            `idempotent-mq:${digest.toString('base64url')}`,
          ])) as [[{ free: number }]];
          expect(free.free, outcome).toBe(1);
        }
        // Another transaction claims the token at once (a completed record, or a fresh claim after rollback).
        const again = await store.transaction((tx) =>
          store.claim({ token, owner: 'p', leaseMs: 5_000, ttlMs: 60_000 }, tx),
        );
        expect(again.record.owner, outcome).toBe(outcome === 'commit' ? 'o' : 'p');
      }
    });

    it('stores a result with one UPDATE, fenced on the owner', async () => {
      const { statements, row } = await claimAndComplete(60_000, '{"receipt":"R-1"}');
      expect(statements.filter((s) => /^update/i.test(s.trim()))).toHaveLength(1);
      expect(row).toMatchObject({ status: 'completed', result: '{"receipt":"R-1"}' });
    });
  });
}
