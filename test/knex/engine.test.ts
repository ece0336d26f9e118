/**
 * The engine on the SQL store, each real database: business rows through ctx.trx, crashes, bounded keys,
 * copies in flight, results JSON cannot hold, and a database that is down.
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import {
  buildScope,
  IDEMPOTENCY_CLOCK,
  type IdempotencyContext,
  type IdempotencyModuleOptions,
  Idempotent,
  ResultNotSerializableError,
  StoreUnavailableError,
  SystemClock,
} from '@idempotent-mq/core/adapter';
import { createIdempotencyTable, dropIdempotencyTable, KnexIdempotencyStore } from '@idempotent-mq/knex';
import { injectable } from 'inversify';
import knexModule, { type Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DIALECTS,
  openDatabase,
  sleep,
  type TestDatabase,
  uniqueTable,
} from '../../packages/knex/test/support/databases.js';
import { deferred, harness, type Message, msg } from '../support/engine-harness.js';

const text = (value: unknown): string => (Buffer.isBuffer(value) ? value.toString('utf8') : String(value));

/** An engine on the SQL store, on real time. */
function engine(store: KnexIdempotencyStore, module: IdempotencyModuleOptions = {}) {
  const h = harness({ store: () => store, module });
  h.container.rebind(IDEMPOTENCY_CLOCK).toConstantValue(new SystemClock());
  return h;
}

for (const dialect of DIALECTS) {
  describe(`the engine on KnexIdempotencyStore (${dialect})`, () => {
    const tableName = uniqueTable();
    const payments = uniqueTable('pay');
    let db: TestDatabase;
    let knex: Knex;
    let store: KnexIdempotencyStore;

    beforeAll(async () => {
      db = openDatabase(dialect);
      knex = db.knex;
      await createIdempotencyTable(knex, { tableName });
      await knex.schema.createTable(payments, (t) => {
        t.increments('id');
        t.string('ref', 64).notNullable();
        t.integer('amount').notNullable();
      });
      store = new KnexIdempotencyStore(knex, { tableName });
    });
    afterAll(async () => {
      await dropIdempotencyTable(knex, { tableName });
      await knex.schema.dropTableIfExists(payments);
      await db.close();
    });

    /** The table's rows of a handler's scope, read with plain SQL (the engine stores it as `v1:<scope>`). */
    const tokenRows = async (scope: string) =>
      (await knex(tableName).select('*')).filter(
        (r: { scope: unknown }) => text(r.scope) === buildScope(scope, 1),
      );
    const paid = async (ref: string): Promise<number> => (await knex(payments).where({ ref })).length;

    /** A consumer that books a payment through ctx.trx; `plan` decides what each call does. */
    function payer(
      scope: string,
      plan: { crash?: boolean; hold?: Promise<void>; entered?: () => void; result?: unknown } = {},
    ) {
      @injectable()
      class Payer {
        calls = 0;
        @Idempotent({ key: (m: Message) => m.keys, scope, mode: 'transactional', storeResult: true })
        async onMessage(m: Message, ctx: IdempotencyContext<Knex.Transaction>) {
          this.calls++;
          await ctx.trx(payments).insert({ ref: (m.body as { ref: string }).ref, amount: 100 });
          plan.entered?.();
          if (plan.hold) await plan.hold;
          if (plan.crash) throw new Error('crashed after the business write');
          return plan.result ?? { booked: true };
        }
      }
      return Payer;
    }

    it('a transactional handler books through ctx.trx once; its duplicate is answered from the table', async () => {
      const scope = `pay-${randomUUID()}`;
      const ref = randomUUID();
      const first = engine(store).get(payer(scope));
      await expect(first.onMessage(msg('PAY-1', { ref }))).resolves.toEqual({ booked: true });
      // Another consumer process: its own cache, the same table.
      const other = engine(store);
      const second = other.get(payer(scope));
      await expect(second.onMessage(msg('PAY-1', { ref }))).resolves.toEqual({ booked: true });
      expect(other.outcomes.map((o) => [o.kind, o.kind === 'duplicate' ? o.tier : undefined])).toEqual([
        ['duplicate', 'store'],
      ]);
      expect(await paid(ref)).toBe(1);
      expect(await tokenRows(scope)).toMatchObject([{ status: 'completed', result: '{"booked":true}' }]);
    });

    it('a crash after the business write rolls both back; the redelivery books once', async () => {
      const scope = `pay-${randomUUID()}`;
      const ref = randomUUID();
      const crashing = engine(store);
      await expect(
        crashing.get(payer(scope, { crash: true })).onMessage(msg('PAY-2', { ref })),
      ).rejects.toThrow('crashed after the business write');
      expect(await paid(ref)).toBe(0);
      expect(await tokenRows(scope)).toEqual([]);
      const h = engine(store);
      await h.get(payer(scope)).onMessage(msg('PAY-2', { ref }, 2));
      expect(h.outcomes.map((o) => o.kind)).toEqual(['processed']);
      expect(await paid(ref)).toBe(1);
    });

    it('a 1 MB key is bounded by the engine before the table; its duplicate is recognised, a near-twin is not', async () => {
      const scope = `pay-${randomUUID()}`;
      const big = `K${'x'.repeat(1024 * 1024)}`;
      const twin = `${big.slice(0, -1)}y`;
      const h = engine(store);
      const consumer = h.get(payer(scope));
      await consumer.onMessage(msg(big, { ref: 'big' }));
      await consumer.onMessage(msg(twin, { ref: 'twin' }));
      const again = engine(store);
      await again.get(payer(scope)).onMessage(msg(big, { ref: 'big' }));
      expect(h.outcomes.map((o) => o.kind)).toEqual(['processed', 'processed']);
      expect(again.outcomes.map((o) => o.kind)).toEqual(['duplicate']);
      const keys = (await tokenRows(scope)).map((r: { key: unknown }) => text(r.key));
      expect(keys).toHaveLength(2);
      for (const key of keys) expect([...key].length).toBeLessThanOrEqual(250);
    });

    it('a result JSON cannot hold rolls the booking and the claim back, and the message is failed, not lost', async () => {
      const scope = `pay-${randomUUID()}`;
      const ref = randomUUID();
      const h = engine(store);
      await expect(
        h.get(payer(scope, { result: { n: 1n } })).onMessage(msg('PAY-3', { ref })),
      ).rejects.toBeInstanceOf(ResultNotSerializableError);
      expect(h.outcomes.map((o) => o.kind)).toEqual(['failed']);
      expect(await paid(ref)).toBe(0);
      expect(await tokenRows(scope)).toEqual([]);
    });

    if (dialect === 'sqlite') {
      it('a second copy while the first runs waits for it (SQLite runs one transaction at a time), then is a duplicate', async () => {
        const scope = `pay-${randomUUID()}`;
        const ref = randomUUID();
        const hold = deferred();
        const h = engine(store);
        const first = h.get(payer(scope, { hold: hold.promise })).onMessage(msg('PAY-4', { ref }));
        await sleep(50);
        const second = engine(store).get(payer(scope)).onMessage(msg('PAY-4', { ref }));
        await sleep(100);
        hold.resolve();
        await expect(Promise.all([first, second])).resolves.toEqual([{ booked: true }, { booked: true }]);
        expect(await paid(ref)).toBe(1);
      });
    } else {
      it('a second copy while the first runs is "in flight" at once, and is retried later, not dropped', async () => {
        const scope = `pay-${randomUUID()}`;
        const ref = randomUUID();
        const hold = deferred();
        const entered = deferred();
        const first = engine(store)
          .get(payer(scope, { hold: hold.promise, entered: entered.resolve }))
          .onMessage(msg('PAY-4', { ref }));
        await entered.promise;
        const other = engine(store);
        const started = performance.now();
        await expect(other.get(payer(scope)).onMessage(msg('PAY-4', { ref }))).rejects.toMatchObject({
          code: 'IN_FLIGHT',
        });
        expect(performance.now() - started).toBeLessThan(500);
        hold.resolve();
        await first;
        await other.get(payer(scope)).onMessage(msg('PAY-4', { ref }, 2));
        expect(other.outcomes.map((o) => o.kind)).toEqual(['inFlight', 'duplicate']);
        expect(await paid(ref)).toBe(1);
      });
    }

    if (dialect !== 'sqlite') {
      it('a slow live handler keeps its transaction past the server idle limit: its keep-alive talks to the server', async () => {
        // The server ends a store transaction idle for longer than the lease (1.5 s here); the engine
        // renews every third of it, and each renewal is a statement on the transaction.
        const scope = `slow-${randomUUID()}`;
        const ref = randomUUID();
        @injectable()
        class SlowPayer {
          @Idempotent({ key: (m: Message) => m.keys, scope, mode: 'transactional', leaseMs: 1_500 })
          async onMessage(m: Message, ctx: IdempotencyContext<Knex.Transaction>) {
            await sleep(3_500);
            await ctx.trx(payments).insert({ ref: (m.body as { ref: string }).ref, amount: 100 });
          }
        }
        const h = engine(store);
        await h.get(SlowPayer).onMessage(msg('SLOW-1', { ref }));
        expect(h.outcomes.map((o) => o.kind)).toEqual(['processed']);
        expect(await paid(ref)).toBe(1);
        expect(await tokenRows(scope)).toMatchObject([{ status: 'completed' }]);
      });

      it('two handlers that deadlock on each other: the victim is run again in place, and both book once', async () => {
        const scope = `deadlock-${randomUUID()}`;
        const [one, two] = [randomUUID(), randomUUID()];
        await knex(payments).insert([
          { ref: one, amount: 0 },
          { ref: two, amount: 0 },
        ]);
        // By primary key: InnoDB would lock every row a scan for an unindexed ref reads.
        const ids = await knex(payments).whereIn('ref', [one, two]).select('id', 'ref');
        const idOf = (ref: string) => ids.find((r: { ref: string }) => r.ref === ref).id as number;
        const firstLocks = deferred();
        let holding = 0;
        const calls: string[] = [];
        @injectable()
        class Transfer {
          @Idempotent({ key: (m: Message) => m.keys, scope, mode: 'transactional' })
          async onMessage(m: Message, ctx: IdempotencyContext<Knex.Transaction>) {
            const { from, to } = m.body as { from: number; to: number };
            calls.push(m.keys[0] as string);
            await ctx.trx(payments).where({ id: from }).increment('amount', -1);
            // The first attempts wait for each other, each holding its first row: a deadlock.
            if (!ctx.replay) {
              if (++holding === 2) firstLocks.resolve();
              await firstLocks.promise;
            }
            await ctx.trx(payments).where({ id: to }).increment('amount', 1);
          }
        }
        const h = engine(store);
        const transfer = h.get(Transfer);
        await Promise.all([
          transfer.onMessage(msg('T-1', { from: idOf(one), to: idOf(two) })),
          transfer.onMessage(msg('T-2', { from: idOf(two), to: idOf(one) })),
        ]);
        expect(h.outcomes.map((o) => o.kind)).toEqual(['processed', 'processed']);
        // One of the two ran twice: its first transaction was the deadlock's victim and rolled back.
        expect(calls).toHaveLength(3);
        const amounts = await knex(payments).whereIn('ref', [one, two]).select('amount');
        expect(amounts.map((r: { amount: number }) => Number(r.amount))).toEqual([0, 0]);
        expect(await tokenRows(scope)).toHaveLength(2);
      });
    }

    it('lease mode: the claim is committed before the handler runs, and completed after', async () => {
      const scope = `lease-${randomUUID()}`;
      const seen: string[] = [];
      @injectable()
      class Mailer {
        @Idempotent({ key: (m: Message) => m.keys, scope, mode: 'lease', leaseMs: 2_000 })
        async onMessage() {
          // Read through the pool, outside any transaction: another process would see the same.
          seen.push(...(await tokenRows(scope)).map((r: { status: string }) => r.status));
        }
      }
      const h = engine(store);
      await h.get(Mailer).onMessage(msg('MAIL-1'));
      expect(seen).toEqual(['inProgress']);
      expect(await tokenRows(scope)).toMatchObject([{ status: 'completed' }]);
    });
  });
}

describe('the engine on a database that is down', () => {
  for (const [client, url] of [
    ['pg', 'postgres://postgres@127.0.0.1:1/test'],
    ['mysql2', 'mysql://root@127.0.0.1:1/test'],
  ] as const) {
    it(`${client}: fails closed by default, runs unprotected only when failOpen is chosen`, async () => {
      const knex = knexModule({ client, connection: url, acquireConnectionTimeout: 2_000 });
      try {
        const store = new KnexIdempotencyStore(knex);
        const scope = `down-${randomUUID()}`;
        let runs = 0;
        @injectable()
        class Consumer {
          @Idempotent({ key: (m: Message) => m.keys, scope, mode: 'transactional' })
          async onMessage() {
            runs++;
          }
        }
        const closed = engine(store);
        await expect(closed.get(Consumer).onMessage(msg('K'))).rejects.toBeInstanceOf(StoreUnavailableError);
        expect(runs).toBe(0);
        expect(closed.outcomes).toMatchObject([{ kind: 'failed', unprotected: false }]);

        const open = engine(store, { onStoreUnavailable: 'failOpen' });
        await open.get(Consumer).onMessage(msg('K'));
        expect(runs).toBe(1);
        expect(open.outcomes).toMatchObject([{ kind: 'processed', unprotected: true }]);
      } finally {
        await knex.destroy();
      }
    });
  }
});
