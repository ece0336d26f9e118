/**
 * The SQL store on each real database, beyond the contract: the table's own rows, two transactional
 * copies at once, exact keys and results, refused tokens, a missing table, and a process that dies
 * before its commit.
 */
import { randomUUID } from 'node:crypto';
import {
  type ClaimResult,
  UnstorableTokenError as CoreUnstorableTokenError,
  IdempotencyStoreError,
  StoreUnavailableError,
  type TokenRef,
} from '@idempotent-mq/core/adapter';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createIdempotencyTable,
  dropIdempotencyTable,
  IdempotencyTableMissingError,
  KnexIdempotencyStore,
  UnstorableTokenError,
} from '../src/index.js';
import {
  DIALECTS,
  expectLockFree,
  killSession,
  openDatabase,
  sessionId,
  sleep,
  type TestDatabase,
  uniqueTable,
} from './support/databases.js';

interface Row {
  scope: unknown;
  key: unknown;
  status: string;
  owner: string;
  fence: number | string;
  lease_expires_at: number | string | null;
  fingerprint: string | null;
  result: string | null;
  created_at: number | string;
  completed_at: number | string | null;
  expires_at: number | string | null;
}

const text = (value: unknown): string => (Buffer.isBuffer(value) ? value.toString('utf8') : String(value));

for (const dialect of DIALECTS) {
  describe(`KnexIdempotencyStore on ${dialect}`, () => {
    const tableName = uniqueTable();
    const businessTable = uniqueTable('biz');
    let db: TestDatabase;
    let knex: Knex;
    let store: KnexIdempotencyStore;
    let scope: string;

    /** The table's rows for a scope, read with plain SQL rather than through the store. */
    const rows = async (s = scope): Promise<Row[]> => {
      const all: Row[] = await knex(tableName).select('*').orderBy('id');
      return all.filter((r) => text(r.scope) === s);
    };
    const dbNow = async (): Promise<number> => {
      const now = await knex.raw(`select ${nowSql(dialect)} as now_ms`);
      const row = dialect === 'postgresql' ? now.rows[0] : dialect === 'mysql' ? now[0][0] : now[0];
      return Number(row.now_ms);
    };
    const token = (key: string): TokenRef => ({ scope, key });
    const claim = (key: string, owner: string = randomUUID(), tx?: Knex.Transaction, leaseMs = 5_000) =>
      store.claim({ token: token(key), owner, leaseMs }, tx);

    beforeAll(async () => {
      db = openDatabase(dialect);
      knex = db.knex;
      await createIdempotencyTable(knex, { tableName });
      await knex.schema.createTable(businessTable, (t) => {
        t.increments('id');
        t.string('ref', 64).notNullable();
      });
      store = new KnexIdempotencyStore(knex, { tableName });
    });
    afterAll(async () => {
      await dropIdempotencyTable(knex, { tableName });
      await knex.schema.dropTableIfExists(businessTable);
      await db.close();
    });
    const freshScope = () => {
      scope = `store-${randomUUID()}`;
    };

    /** Runs `work` in a store transaction that stays open, its answer known, until `end()`. */
    const openTransaction = async <T>(work: (trx: Knex.Transaction) => Promise<T>) => {
      let end!: () => void;
      const ended = new Promise<void>((resolve) => {
        end = resolve;
      });
      let answered!: (value: T) => void;
      const answer = new Promise<T>((resolve) => {
        answered = resolve;
      });
      const finished = store.transaction(async (trx) => {
        answered(await work(trx));
        await ended;
      });
      const early = finished.then(() => Promise.reject(new Error('the transaction ended early')));
      return {
        answer: await Promise.race([answer, early]),
        end: async () => {
          end();
          await finished;
        },
      };
    };
    const expectNoLockLeft = (t: TokenRef) => expectLockFree(db, tableName, t);

    it('a claim, its completion and a takeover are written to the table as the record says', async () => {
      freshScope();
      const before = await dbNow();
      await claim('ROW-1', 'owner-a', undefined, 400);
      let [row] = await rows();
      expect(row).toMatchObject({ status: 'inProgress', owner: 'owner-a', result: null });
      expect(Number(row?.fence)).toBe(1);
      expect(text(row?.key)).toBe('ROW-1');
      // Times are the database's epoch milliseconds; the lease is the claim's time plus leaseMs.
      expect(Number(row?.created_at)).toBeGreaterThanOrEqual(before);
      expect(Number(row?.created_at)).toBeLessThanOrEqual((await dbNow()) + 1);
      // PostgreSQL reads clock_timestamp() once per expression: the two may be a millisecond apart.
      expect(Number(row?.lease_expires_at) - Number(row?.created_at)).toBeGreaterThanOrEqual(399);
      expect(Number(row?.lease_expires_at) - Number(row?.created_at)).toBeLessThanOrEqual(402);

      await sleep(450);
      const taken = await claim('ROW-1', 'owner-b');
      expect(taken).toMatchObject({ status: 'claimed', takeover: true });
      [row] = await rows();
      expect(row).toMatchObject({ status: 'inProgress', owner: 'owner-b' });
      expect(Number(row?.fence)).toBe(2);

      await expect(
        store.complete({ token: token('ROW-1'), owner: 'owner-b', ttlMs: 86_400_000, result: '{"ok":true}' }),
      ).resolves.toBe(true);
      const all = await rows();
      expect(all).toHaveLength(1);
      [row] = all;
      expect(row).toMatchObject({
        status: 'completed',
        owner: 'owner-b',
        result: '{"ok":true}',
        lease_expires_at: null,
      });
      expect(Number(row?.expires_at) - Number(row?.completed_at)).toBeGreaterThanOrEqual(86_400_000);
      expect(Number(row?.expires_at) - Number(row?.completed_at)).toBeLessThanOrEqual(86_400_002);
    });

    it('keys are exact: case, accents, normalisation, trailing spaces and binary-looking text are all different keys', async () => {
      freshScope();
      const keys = [
        'order-1',
        'ORDER-1',
        'order-1 ',
        'order-1  ',
        'caf\u00e9',
        'cafe\u0301',
        'cafe',
        'stra\u00dfe',
        'strasse',
        '\u00ff\u00fe\u0001\u007f\u0080',
        '\\x00\\xff',
        '😀'.repeat(250),
      ];
      const results = await Promise.all(keys.map((k) => claim(k)));
      expect(results.map((r) => r.status)).toEqual(keys.map(() => 'claimed'));
      expect((await rows()).map((r) => text(r.key)).sort()).toEqual([...keys].sort());
      const found = await store.getMany(keys.map(token));
      expect(found.map((r) => r?.key)).toEqual(keys);
    });

    it('results survive the round trip exactly, astral plane included', async () => {
      freshScope();
      const result = JSON.stringify({
        note: '支付 😀 𝄞 \u0000 \u2028 "quoted" \\ done',
        big: 'x'.repeat(70_000),
      });
      await claim('RESULT', 'o');
      await store.complete({ token: token('RESULT'), owner: 'o', ttlMs: 60_000, result });
      const [row] = await rows();
      expect(row?.result).toBe(result);
      expect((await store.get(token('RESULT')))?.result).toBe(result);
    });

    it('a token the column cannot hold is refused before any SQL, and the transaction stays usable', async () => {
      freshScope();
      // U+0000 only on PostgreSQL: MySQL/MariaDB (VARBINARY) and SQLite store it (see below).
      const refused = [
        'k'.repeat(251),
        `lone-\ud800-surrogate`,
        ...(dialect === 'postgresql' ? ['nul-\u0000-byte'] : []),
      ];
      await store.transaction(async (trx) => {
        for (const key of refused) {
          const error = await claim(key, 'o', trx).catch((e: unknown) => e);
          expect(error).toBeInstanceOf(UnstorableTokenError);
          expect(error).toBeInstanceOf(CoreUnstorableTokenError);
          expect(error).not.toBeInstanceOf(StoreUnavailableError);
          // A redelivery cannot fix it: the registry dead-letters on this code at once.
          expect((error as UnstorableTokenError).code).toBe('UNSTORABLE_TOKEN');
        }
        // On PostgreSQL a failed statement would abort the transaction; nothing was sent, so it goes on.
        expect((await claim('after-refusal', 'o', trx)).status).toBe('claimed');
      });
      expect((await rows()).map((r) => text(r.key))).toEqual(['after-refusal']);
      // Reads of such a token answer "absent" rather than fail.
      await expect(store.get(token('k'.repeat(251)))).resolves.toBeUndefined();
      await expect(store.release(token(`lone-\ud800-surrogate`), 'o')).resolves.toBe(false);
    });

    it('a refusal names the database and the fix', async () => {
      freshScope();
      const surrogate = await claim('lone-\udc00', 'o').catch((e: unknown) => e);
      const label = { postgresql: 'PostgreSQL', mysql: 'MySQL/MariaDB', sqlite: 'SQLite' }[dialect];
      expect((surrogate as Error).message).toContain(
        `lone surrogate (not valid Unicode), which the ${label} driver`,
      );
      expect((surrogate as Error).message).toMatch(/key function of @Idempotent .*hex or base64/);
      const scoped = await store
        .claim({ token: { scope: 'scope-\ud800', key: 'k' }, owner: 'o', leaseMs: 1_000 })
        .catch((e: unknown) => e);
      expect((scoped as Error).message).toMatch(
        /the scope contains a lone surrogate.*scope option of @Idempotent/,
      );
      if (dialect === 'postgresql') {
        const nul = await claim('nul-\u0000', 'o').catch((e: unknown) => e);
        expect((nul as Error).message).toMatch(
          /the key contains U\+0000, which PostgreSQL text cannot hold\. Make the key function of @Idempotent/,
        );
      }
    });

    if (dialect !== 'postgresql') {
      it('a key with U+0000 is stored and found exactly: "a\\u0000b", "a\\u0000" and "a" are three tokens', async () => {
        freshScope();
        const keys = ['a\u0000b', 'a\u0000', 'a', '\u0000', '\u0000a'];
        // Lease mode, then a transactional claim (the dialect's own first statement).
        for (const key of keys.slice(0, 3)) {
          expect(await claim(key, `owner-${key}`)).toMatchObject({ status: 'claimed', record: { key } });
          await expect(
            store.complete({
              token: token(key),
              owner: `owner-${key}`,
              ttlMs: 60_000,
              result: JSON.stringify(key),
            }),
          ).resolves.toBe(true);
        }
        for (const key of keys.slice(3)) {
          await store.transaction(async (trx) => {
            const claimed = await store.claim(
              { token: token(key), owner: `owner-${key}`, leaseMs: 5_000, ttlMs: 60_000 },
              trx,
            );
            expect(claimed).toMatchObject({ status: 'claimed', record: { key } });
            await store.complete(
              { token: token(key), owner: `owner-${key}`, ttlMs: 60_000, result: JSON.stringify(key) },
              trx,
            );
          });
        }
        expect((await rows()).map((r) => text(r.key)).sort()).toEqual([...keys].sort());
        for (const key of keys) {
          expect(await store.get(token(key))).toMatchObject({
            key,
            owner: `owner-${key}`,
            result: JSON.stringify(key),
          });
          // A copy of each is a duplicate of its own record, not of a neighbour's.
          const again = await store.transaction((trx) =>
            store.claim({ token: token(key), owner: 'copy', leaseMs: 5_000, ttlMs: 60_000 }, trx),
          );
          expect(again).toMatchObject({ status: 'exists', record: { key, owner: `owner-${key}` } });
        }
        const found = await store.getMany([...keys, 'a\u0000c', 'b'].map(token));
        expect(found.map((r) => r?.owner)).toEqual([...keys.map((k) => `owner-${k}`), undefined, undefined]);
        await expect(store.release(token('a\u0000c'), 'o')).resolves.toBe(false);
      });

      it('getMany tells a U+0000 at the end of the scope from one at the start of the key', async () => {
        freshScope();
        const inScope = { scope: `${scope}\u0000`, key: 'k' };
        const inKey = { scope, key: '\u0000k' };
        await store.claim({ token: inScope, owner: 'in-scope', leaseMs: 5_000 });
        const found = await store.getMany([inScope, inKey]);
        expect(found.map((r) => r?.owner)).toEqual(['in-scope', undefined]);
      });
    }

    it('a rollback leaves neither the token nor the business row; the redelivery does the work once', async () => {
      freshScope();
      const ref = randomUUID();
      const crash = new Error('process died before commit');
      await expect(
        store.transaction(async (trx) => {
          await claim('PAY-1', 'first', trx);
          await trx(businessTable).insert({ ref });
          throw crash;
        }),
      ).rejects.toBe(crash);
      expect(await rows()).toEqual([]);
      expect(await knex(businessTable).where({ ref })).toEqual([]);

      await store.transaction(async (trx) => {
        const again = await claim('PAY-1', 'second', trx);
        expect(again).toMatchObject({ status: 'claimed', takeover: false });
        await trx(businessTable).insert({ ref });
        await store.complete({ token: token('PAY-1'), owner: 'second', ttlMs: 60_000 }, trx);
      });
      expect(await knex(businessTable).where({ ref })).toHaveLength(1);
      expect(await rows()).toMatchObject([{ status: 'completed', owner: 'second' }]);
    });

    if (dialect !== 'sqlite') {
      it('a connection killed mid-transaction (a dead process) leaves nothing behind', async () => {
        freshScope();
        const ref = randomUUID();
        const killer = openDatabase(dialect);
        try {
          const outcome = await store
            .transaction(async (trx) => {
              await claim('PAY-KILLED', 'doomed', trx);
              await trx(businessTable).insert({ ref });
              await killSession(dialect, killer.knex, await sessionId(dialect, trx));
              await trx(businessTable).insert({ ref: `${ref}-after` });
            })
            .then(
              () => 'committed',
              () => 'failed',
            );
          expect(outcome).toBe('failed');
        } finally {
          await killer.close();
        }
        expect(await rows()).toEqual([]);
        expect(await knex(businessTable).whereIn('ref', [ref, `${ref}-after`])).toEqual([]);
        expect(await claim('PAY-KILLED', 'redelivery')).toMatchObject({ status: 'claimed', takeover: false });
      });
    }

    if (dialect === 'sqlite') {
      it('two copies at once in transactional mode: SQLite runs them one after the other, the second sees the first committed', async () => {
        freshScope();
        const order: string[] = [];
        const first = store.transaction(async (trx) => {
          expect((await claim('TWIN', 'first', trx)).status).toBe('claimed');
          order.push('first claimed');
          await sleep(300);
          await store.complete({ token: token('TWIN'), owner: 'first', ttlMs: 60_000 }, trx);
          order.push('first done');
        });
        await sleep(20);
        const second = store.transaction(async (trx) => {
          order.push('second begins');
          return claim('TWIN', 'second', trx);
        });
        const [, answer] = await Promise.all([first, second]);
        expect(order).toEqual(['first claimed', 'first done', 'second begins']);
        expect(answer).toMatchObject({ status: 'exists', record: { status: 'completed', owner: 'first' } });
      });
    } else {
      it('two copies at once in transactional mode: the second is told "in progress" at once, not after the first commits', async () => {
        freshScope();
        let release!: () => void;
        const held = new Promise<void>((resolve) => {
          release = resolve;
        });
        let claimedFirst!: () => void;
        const firstClaimed = new Promise<void>((resolve) => {
          claimedFirst = resolve;
        });
        const first = store.transaction(async (trx) => {
          expect((await claim('TWIN', 'first', trx)).status).toBe('claimed');
          claimedFirst();
          await held;
          await store.complete({ token: token('TWIN'), owner: 'first', ttlMs: 60_000 }, trx);
        });
        await firstClaimed;
        const started = performance.now();
        const answer: ClaimResult = await store.transaction((trx) => claim('TWIN', 'second', trx));
        const elapsed = performance.now() - started;
        release();
        await first;
        // Without the lock, PostgreSQL waits for the first commit and InnoDB for up to 50 s.
        expect(elapsed).toBeLessThan(500);
        expect(answer.status).toBe('exists');
        expect(answer.record).toMatchObject({ status: 'inProgress', fence: 0, owner: '' });
        // The lock ends with the first transaction: a third copy now sees the completed record.
        const third = await store.transaction((trx) => claim('TWIN', 'third', trx));
        expect(third).toMatchObject({ status: 'exists', record: { status: 'completed', owner: 'first' } });
        await expectNoLockLeft(token('TWIN'));
      });

      it('a copy meeting an open takeover is told "in progress" at once and never sees the dead owner as live', async () => {
        freshScope();
        await claim('ORPHAN', 'dead-worker', undefined, 200);
        await sleep(250);
        let release!: () => void;
        const held = new Promise<void>((resolve) => {
          release = resolve;
        });
        let took!: () => void;
        const taken = new Promise<void>((resolve) => {
          took = resolve;
        });
        const first = store.transaction(async (trx) => {
          expect(await claim('ORPHAN', 'heir', trx)).toMatchObject({ status: 'claimed', takeover: true });
          took();
          await held;
          await store.complete({ token: token('ORPHAN'), owner: 'heir', ttlMs: 60_000 }, trx);
        });
        await taken;
        const started = performance.now();
        const answer = await store.transaction((trx) => claim('ORPHAN', 'late', trx));
        expect(performance.now() - started).toBeLessThan(500);
        release();
        await first;
        // The committed row still names the dead owner with an expired lease: the answer is a stand-in.
        expect(answer).toMatchObject({ status: 'exists', record: { status: 'inProgress', owner: '' } });
        expect(await rows()).toMatchObject([{ status: 'completed', owner: 'heir' }]);
        expect(Number((await rows())[0]?.fence)).toBe(2);
        await expectNoLockLeft(token('ORPHAN'));
      });

      it('a copy told "in progress" keeps its transaction: its writes before and after the answer commit', async () => {
        freshScope();
        const first = await openTransaction((trx) => claim('USABLE', 'first', trx));
        expect(first.answer.status).toBe('claimed');
        const ref = randomUUID();
        const started = performance.now();
        // On MariaDB the second copy's insert fails at once on the first copy's row (1205): only that
        // statement is undone, and the transaction goes on.
        const answer = await store.transaction(async (trx) => {
          await trx(businessTable).insert({ ref: `${ref}-before` });
          const told = await claim('USABLE', 'second', trx);
          await trx(businessTable).insert({ ref: `${ref}-after` });
          return told;
        });
        expect(performance.now() - started).toBeLessThan(500);
        await first.end();
        expect(answer).toMatchObject({ status: 'exists', record: { status: 'inProgress', owner: '' } });
        const written = await knex(businessTable).whereIn('ref', [`${ref}-before`, `${ref}-after`]);
        expect(written.map((r: { ref: string }) => r.ref).sort()).toEqual([`${ref}-after`, `${ref}-before`]);
        expect(await rows()).toMatchObject([{ owner: 'first' }]);
        await expectNoLockLeft(token('USABLE'));
      });

      for (const neighbour of ['a copy that found it completed', 'an open takeover'] as const) {
        it(`a claim next to a row locked by ${neighbour} is claimed, not told "in progress"`, async () => {
          freshScope();
          // InnoDB (REPEATABLE READ) also locks the gap before the row, where GAP-4 goes: the insert that
          // meets that lock is not a copy of GAP-4 in flight.
          if (neighbour === 'an open takeover') {
            await claim('GAP-5', 'dead-worker', undefined, 100);
            await sleep(150);
          } else {
            await claim('GAP-5', 'o');
            await store.complete({ token: token('GAP-5'), owner: 'o', ttlMs: 60_000 });
          }
          const other = await openTransaction((trx) => claim('GAP-5', 'other', trx));
          expect(other.answer.status).toBe(neighbour === 'an open takeover' ? 'claimed' : 'exists');
          const beside = store.transaction((trx) => claim('GAP-4', 'beside', trx));
          await sleep(100);
          await other.end();
          expect(await beside).toMatchObject({ status: 'claimed', record: { owner: 'beside' } });
          await expectNoLockLeft(token('GAP-4'));
        });
      }
    }

    it('renew inside the transaction answers for the owner only', async () => {
      freshScope();
      await store.transaction(async (trx) => {
        await claim('RENEW', 'me', trx);
        await expect(store.renew(token('RENEW'), 'me', 1_000, trx)).resolves.toBe(true);
        await expect(store.renew(token('RENEW'), 'someone-else', 1_000, trx)).resolves.toBe(false);
      });
    });

    it('purgeExpired deletes expired completed rows in batches and leaves the rest', async () => {
      freshScope();
      for (let i = 0; i < 7; i++) {
        await claim(`OLD-${i}`, 'o');
        await store.complete({ token: token(`OLD-${i}`), owner: 'o', ttlMs: 100 });
      }
      await claim('KEPT', 'o');
      await store.complete({ token: token('KEPT'), owner: 'o', ttlMs: 3_600_000 });
      await claim('STALE-LEASE', 'o', undefined, 100);
      await sleep(200);
      const statements: string[] = [];
      const listen = (q: { sql: string }) => statements.push(q.sql);
      knex.on('query', listen);
      const purged = await store.purgeExpired({ batchSize: 3 });
      knex.off('query', listen);
      expect(purged).toBeGreaterThanOrEqual(7);
      expect((await rows()).map((r) => text(r.key)).sort()).toEqual(['KEPT', 'STALE-LEASE']);
      // Each delete names at most one batch of ids.
      expect(statements.filter((s) => /^delete/i.test(s)).length).toBeGreaterThanOrEqual(3);
      await expect(store.purgeExpired({ batchSize: 0 })).rejects.toThrow(/batchSize/);
    });

    it('purgeExpired pauses between batches (a fixed pause, or as long as the batch took), never after the last', async () => {
      freshScope();
      for (let i = 0; i < 5; i++) {
        await claim(`PAUSE-${i}`, 'o');
        await store.complete({ token: token(`PAUSE-${i}`), owner: 'o', ttlMs: 100 });
      }
      await sleep(200);
      const deletes: number[] = [];
      const listen = (q: { sql: string }) => {
        if (/^delete/i.test(q.sql)) deletes.push(performance.now());
      };
      knex.on('query', listen);
      try {
        // 5 rows in batches of 2: three batches, two pauses.
        await expect(store.purgeExpired({ batchSize: 2, pause: 120 })).resolves.toBeGreaterThanOrEqual(5);
      } finally {
        knex.off('query', listen);
      }
      expect(deletes).toHaveLength(3);
      for (let i = 1; i < deletes.length; i++)
        expect((deletes[i] as number) - (deletes[i - 1] as number)).toBeGreaterThanOrEqual(110);
      // 'auto', from the store's option: runs, and nothing is left to purge.
      const paced = new KnexIdempotencyStore(knex, { tableName, purgePause: 'auto' });
      await expect(paced.purgeExpired()).resolves.toBe(0);
      expect(() => new KnexIdempotencyStore(knex, { tableName, purgePause: -1 })).toThrow(/purgePause/);
      expect(() => new KnexIdempotencyStore(knex, { tableName, purgePause: 'fast' as never })).toThrow(
        /'auto' or an integer/,
      );
      await expect(store.purgeExpired({ pause: 1.5 })).rejects.toThrow(/pause/);
    });

    if (dialect === 'postgresql') {
      it('purgeExpired reads the expires_at index, not the whole table (the clock is read once per statement)', async () => {
        freshScope();
        await claim('IDX', 'o');
        await store.complete({ token: token('IDX'), owner: 'o', ttlMs: 100 });
        const selects: { sql: string; bindings: readonly unknown[] }[] = [];
        const listen = (q: { sql: string; bindings?: readonly unknown[] }) => {
          if (/^select/i.test(q.sql)) selects.push({ sql: q.sql, bindings: q.bindings ?? [] });
        };
        knex.on('query', listen);
        await store.purgeExpired();
        knex.off('query', listen);
        const select = selects[0] as { sql: string; bindings: readonly unknown[] };
        expect(select).toBeDefined();
        // clock_timestamp() is volatile: compared row by row it rules the index out (a 10M-row table was
        // scanned whole on every purge, 20 s with nothing to delete). Read once, the index serves.
        const plan = await knex.transaction(async (trx) => {
          await trx.raw('set local enable_seqscan = off');
          const sql = select.sql.replace(/\$\d+/g, '?'); // as the driver saw it, in knex's placeholders
          const rows = (await trx.raw(`explain ${sql}`, select.bindings as never)) as {
            rows: { 'QUERY PLAN': string }[];
          };
          return rows.rows.map((r) => r['QUERY PLAN']).join('\n');
        });
        expect(plan).toMatch(/Index (Only )?Scan (using|on) \S*_expires_idx/);
        expect(plan).not.toMatch(/Seq Scan/);
      });
    }

    it('getMany answers in one statement', async () => {
      freshScope();
      await claim('A', 'o');
      await claim('C', 'o');
      const statements: string[] = [];
      const listen = (q: { sql: string }) => statements.push(q.sql);
      knex.on('query', listen);
      const found = await store.getMany([token('A'), token('B'), token('C'), token('A')]);
      knex.off('query', listen);
      expect(found.map((r) => r?.key)).toEqual(['A', undefined, 'C', 'A']);
      expect(statements).toHaveLength(1);
    });

    it('a missing table fails with an error that names the migration, not as "unavailable"', async () => {
      const missing = new KnexIdempotencyStore(knex, { tableName: uniqueTable('missing') });
      const error = await missing
        .claim({ token: { scope: 's', key: 'k' }, owner: 'o', leaseMs: 1_000 })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(IdempotencyTableMissingError);
      expect(error).toBeInstanceOf(IdempotencyStoreError);
      expect(error).not.toBeInstanceOf(StoreUnavailableError);
      expect((error as IdempotencyStoreError).code).toBe('STORE_FAILED');
      expect((error as Error).message).toMatch(/idempotencyMigration.*createIdempotencyTable/s);
      await expect(missing.get({ scope: 's', key: 'k' })).rejects.toBeInstanceOf(
        IdempotencyTableMissingError,
      );
    });
  });
}

describe('KnexIdempotencyStore options', () => {
  it('refuses a table name that is not a plain identifier, and an unsupported client', () => {
    const db = openDatabase('sqlite');
    try {
      for (const tableName of ['idem; drop table x', 'idem"', 'a.b.c', '', '1abc', 'x'.repeat(49)]) {
        expect(() => new KnexIdempotencyStore(db.knex, { tableName })).toThrow(/tableName/);
      }
      expect(() => new KnexIdempotencyStore(db.knex, { tableName: 'billing.idem_tokens' })).not.toThrow();
      expect(() => new KnexIdempotencyStore(db.knex, { keyLength: 601 })).toThrow(/keyLength/);
      expect(() => new KnexIdempotencyStore(db.knex, { maxClaimAttempts: 0 })).toThrow(/maxClaimAttempts/);
    } finally {
      void db.close();
    }
  });
});

function nowSql(dialect: string): string {
  switch (dialect) {
    case 'postgresql':
      return '(floor(extract(epoch from clock_timestamp()) * 1000)::bigint)';
    case 'mysql':
      return "(timestampdiff(microsecond, '1970-01-01 00:00:00', utc_timestamp(3)) div 1000)";
    default:
      return "(cast(round((julianday('now') - 2440587.5) * 86400000.0) as integer))";
  }
}
