/**
 * A consumer that freezes (SIGSTOP, a long GC pause) holding a store transaction must not hold its token
 * forever: on PostgreSQL and MariaDB the server ends a store transaction left idle for longer than its
 * claim's lease, and another copy then claims the token. A live handler's keep-alive (`renew` in the
 * transaction) sends a statement, which keeps its transaction. A process is frozen here by simply sending
 * nothing on the transaction: to the server the two look the same.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { ClaimResult, TokenRef } from '@idempotent-mq/core/adapter';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isConnectionFailure } from '../src/connection-failure.js';
import { MysqlDialect } from '../src/dialects/mysql.js';
import { PostgresDialect } from '../src/dialects/postgres.js';
import { createIdempotencyTable, dropIdempotencyTable, KnexIdempotencyStore } from '../src/index.js';
import {
  openDatabase,
  sessionAlive,
  sessionId,
  sleep,
  type TestDatabase,
  uniqueTable,
} from './support/databases.js';

const LEASE_MS = 1_500;

for (const dialect of ['postgresql', 'mysql'] as const) {
  // MariaDB's limit is in whole seconds, rounded up.
  const limitMs = dialect === 'postgresql' ? LEASE_MS : Math.ceil(LEASE_MS / 1000) * 1000;

  describe(`${dialect}: a store transaction is bounded by its lease on the server`, () => {
    const tableName = uniqueTable();
    const ledger = uniqueTable('ledger');
    let db: TestDatabase;
    let watcher: TestDatabase;
    let store: KnexIdempotencyStore;
    beforeAll(async () => {
      db = openDatabase(dialect);
      watcher = openDatabase(dialect);
      await createIdempotencyTable(db.knex, { tableName });
      await db.knex.schema.createTable(ledger, (t) => {
        t.increments('id');
        t.string('ref', 64).notNullable();
      });
      store = new KnexIdempotencyStore(db.knex, { tableName });
    });
    afterAll(async () => {
      await dropIdempotencyTable(db.knex, { tableName });
      await db.knex.schema.dropTableIfExists(ledger);
      await db.close();
      await watcher.close();
    });

    const token = (key: string): TokenRef => ({ scope: `idle-${dialect}`, key });
    /** Another copy, in its own store transaction: claimed, or told "in flight" (a stand-in, owner ''). */
    const copy = (t: TokenRef, owner: string): Promise<ClaimResult> =>
      store.transaction((trx) => store.claim({ token: t, owner, leaseMs: LEASE_MS, ttlMs: 60_000 }, trx));
    const inFlight = { status: 'exists', record: { status: 'inProgress', owner: '' } };
    /** The idle limit of the transaction's session, as the server reports it. */
    const settingOf = async (trx: Knex.Transaction): Promise<string> =>
      dialect === 'postgresql'
        ? String(
            (await trx.raw('show idle_in_transaction_session_timeout')).rows[0]
              .idle_in_transaction_session_timeout,
          )
        : String((await trx.raw('select @@session.idle_transaction_timeout as s'))[0][0].s);

    /** Whether the server closes the session within `ms`. */
    async function closedWithin(id: number, ms: number): Promise<boolean> {
      const started = performance.now();
      while (performance.now() - started < ms) {
        if (!(await sessionAlive(dialect, watcher.knex, id))) return true;
        await sleep(25);
      }
      return false;
    }

    it('a transaction frozen after its claim is ended by the server after about one lease; another copy then claims the token', async () => {
      const t = token(randomUUID());
      const ref = randomUUID();
      let claimed!: (id: number) => void;
      const claimedIn = new Promise<number>((resolve) => {
        claimed = resolve;
      });
      let wake!: () => void;
      const frozen = new Promise<void>((resolve) => {
        wake = resolve;
      });
      const first = store
        .transaction(async (trx) => {
          const id = await sessionId(dialect, trx);
          await store.claim({ token: t, owner: 'frozen', leaseMs: LEASE_MS, ttlMs: 60_000 }, trx);
          claimed(id);
          await frozen;
          // The process wakes up and goes on with its work.
          await trx(ledger).insert({ ref });
        })
        .then(
          () => undefined,
          (error: unknown) => error,
        );
      const id = await claimedIn;
      const frozenAt = performance.now();
      expect(await copy(t, 'early')).toMatchObject(inFlight);

      expect(await closedWithin(id, limitMs + 2_000), 'the server never ended the idle transaction').toBe(
        true,
      );
      const idleMs = performance.now() - frozenAt;
      expect(idleMs).toBeGreaterThanOrEqual(limitMs - 200);
      expect(idleMs).toBeLessThan(limitMs + 1_500);
      // The frozen claim rolled back with its session: the next copy claims the token afresh.
      expect(await copy(t, 'next')).toMatchObject({
        status: 'claimed',
        takeover: false,
        record: { owner: 'next' },
      });

      wake();
      const woken = await first;
      expect(isConnectionFailure(woken)).toBe(true);
      expect(await db.knex(ledger).where({ ref })).toEqual([]);
      expect(await db.knex(tableName).select('owner').where({ owner: 'frozen' })).toEqual([]);
    });

    it('without the limit the token stays held: a transaction the store did not open, as idle, still holds it', async () => {
      // A pool of its own: on MariaDB the limit stays on a connection a store transaction has used.
      const plain = openDatabase(dialect);
      const t = token(randomUUID());
      const trx = await plain.knex.transaction();
      try {
        const own = new KnexIdempotencyStore(plain.knex, { tableName });
        await own.claim({ token: t, owner: 'unbounded', leaseMs: LEASE_MS, ttlMs: 60_000 }, trx);
        const id = await sessionId(dialect, trx);
        expect(await closedWithin(id, limitMs + 1_000)).toBe(false);
        expect(await copy(t, 'blocked')).toMatchObject(inFlight);
      } finally {
        await trx.rollback();
        await plain.close();
      }
    });

    it('a live handler that renews every third of its lease keeps its transaction past the limit', async () => {
      const t = token(randomUUID());
      const ref = randomUUID();
      const started = performance.now();
      await store.transaction(async (trx) => {
        // Written completed at once (ttlMs given): renewing it has no row to update, but still talks.
        await store.claim({ token: t, owner: 'live', leaseMs: LEASE_MS, ttlMs: 60_000 }, trx);
        while (performance.now() - started < 2 * limitMs + 500) {
          await sleep(LEASE_MS / 3);
          await expect(store.renew(t, 'live', LEASE_MS, trx)).resolves.toBe(true);
        }
        await trx(ledger).insert({ ref });
        await expect(store.complete({ token: t, owner: 'live', ttlMs: 60_000 }, trx)).resolves.toBe(true);
      });
      expect(await db.knex(ledger).where({ ref })).toHaveLength(1);
      expect(await store.get(t)).toMatchObject({ status: 'completed', owner: 'live' });
    });

    it('the limit costs no statement of its own on PostgreSQL, and one per pooled connection and lease on MariaDB', async () => {
      const single = openDatabase(dialect, { max: 1 });
      try {
        const own = new KnexIdempotencyStore(single.knex, { tableName });
        const statementsOf = async (leaseMs: number): Promise<string[]> => {
          const statements: string[] = [];
          const listen = (q: { sql: string }) => statements.push(q.sql);
          single.knex.on('query', listen);
          try {
            await own.transaction((trx) =>
              own.claim({ token: token(randomUUID()), owner: 'o', leaseMs, ttlMs: 60_000 }, trx),
            );
          } finally {
            single.knex.off('query', listen);
          }
          return statements.filter((s) => !/^(begin|commit|select version)/i.test(s.trim()));
        };
        const first = await statementsOf(LEASE_MS);
        const again = await statementsOf(LEASE_MS);
        const otherLease = await statementsOf(3_000);
        if (dialect === 'postgresql') {
          for (const statements of [first, again, otherLease]) {
            expect(statements).toHaveLength(1);
            expect(statements[0]).toMatch(/set_config\('idle_in_transaction_session_timeout'/);
          }
        } else {
          expect(first).toEqual([
            'set session idle_transaction_timeout = 2',
            expect.stringMatching(/insert/),
          ]);
          expect(again).toEqual([expect.stringMatching(/insert/)]);
          expect(otherLease).toEqual([
            'set session idle_transaction_timeout = 3',
            expect.stringMatching(/insert/),
          ]);
        }
      } finally {
        await single.close();
      }
    });

    it("the dialect's other first step, tryLock, sets the same limit", async () => {
      // The store claims through lockAndInsert on both; tryLock is the Dialect's step for the others.
      const single = openDatabase(dialect, { max: 1 });
      try {
        const own = { held: [] as string[], idleLimitMs: 2_500 };
        const setting = await single.knex.transaction(async (trx) => {
          const lock = dialect === 'postgresql' ? new PostgresDialect() : new MysqlDialect();
          await expect(lock.tryLock(trx, randomBytes(32), own)).resolves.toMatchObject({ acquired: true });
          const value = await settingOf(trx);
          await lock.releaseLocks(trx, own.held);
          return value;
        });
        expect(setting).toBe(dialect === 'postgresql' ? '2500ms' : '3');
      } finally {
        await single.close();
      }
    });

    it(
      dialect === 'postgresql'
        ? 'the limit ends with the store transaction: the next transaction on the connection has the server setting'
        : 'the limit stays on the pooled connection: the next transaction there is bounded too (the side effect the README names)',
      async () => {
        const single = openDatabase(dialect, { max: 1 });
        try {
          const own = new KnexIdempotencyStore(single.knex, { tableName });
          const inside = await own.transaction(async (trx) => {
            await own.claim(
              { token: token(randomUUID()), owner: 'o', leaseMs: LEASE_MS, ttlMs: 60_000 },
              trx,
            );
            return settingOf(trx);
          });
          const after = await single.knex.transaction(settingOf);
          expect(inside).toBe(dialect === 'postgresql' ? '1500ms' : '2');
          expect(after).toBe(dialect === 'postgresql' ? '0' : '2');
        } finally {
          await single.close();
        }
      },
    );
  });
}
