/**
 * End to end on each real database: a payment ledger. 1,000 payments with 30% duplicate deliveries, 8
 * concurrent consumers, random handler crashes, a few slow handlers that outlive their lease, and claims
 * orphaned by workers that died (their leases must expire and be taken over). The ledger rows are written
 * through ctx.trx. Afterwards the table itself must show: the total exact, no payment charged twice, none
 * lost.
 */
import 'reflect-metadata';
import {
  IDEMPOTENCY_CLOCK,
  type IdempotencyContext,
  IdempotencyInFlightError,
  type IdempotencyOutcome,
  Idempotent,
  SystemClock,
} from '@idempotent-mq/core';
import { createIdempotencyTable, dropIdempotencyTable, KnexIdempotencyStore } from '@idempotent-mq/knex';
import { seededRandom } from '@idempotent-mq/testing';
import { injectable } from 'inversify';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DIALECTS,
  openDatabase,
  sleep,
  type TestDatabase,
  uniqueTable,
} from '../../packages/knex/test/support/databases.js';
import { harness, type Message, msg } from '../support/engine-harness.js';

const PAYMENTS = 1_000;
const DUPLICATE_SHARE = 0.3;
const CONSUMERS = 8;
const CRASH_RATE = 0.1;
const SLOW_RATE = 0.01;
const ORPHANS = 20;
const LEASE_MS = 300;

interface Delivery {
  readonly id: string;
  readonly amount: number;
  attempt: number;
  notBefore: number;
}

for (const dialect of DIALECTS) {
  describe(`payment ledger on ${dialect}`, () => {
    const tableName = uniqueTable();
    const ledger = uniqueTable('ledger');
    let db: TestDatabase;
    let knex: Knex;

    beforeAll(async () => {
      db = openDatabase(dialect, { max: CONSUMERS + 4 });
      knex = db.knex;
      await createIdempotencyTable(knex, { tableName });
      // No unique index on payment_id: the ledger must not rely on one to stay exact.
      await knex.schema.createTable(ledger, (t) => {
        t.increments('id');
        t.string('payment_id', 32).notNullable();
        t.integer('amount').notNullable().checkPositive();
        t.integer('fence').notNullable().checkPositive();
      });
    });
    afterAll(async () => {
      await dropIdempotencyTable(knex, { tableName });
      await knex.schema.dropTableIfExists(ledger);
      await db.close();
    });

    it('1,000 payments, 30% duplicates, 8 consumers, crashes and expired leases: total exact, 0 double charges, 0 lost', async () => {
      const started = performance.now();
      const rand = seededRandom(20261126);
      const scope = 'ledger';
      const payments = Array.from({ length: PAYMENTS }, (_, i) => ({
        id: `PAY-${String(i).padStart(4, '0')}`,
        amount: 1 + Math.floor(rand() * 1_000),
      }));
      const expectedTotal = payments.reduce((sum, p) => sum + p.amount, 0);
      // Exactly 30% of the payments are delivered twice; the second copy usually arrives while the
      // first is still being handled, as a broker's redelivery after a consume timeout does.
      const order = [...payments];
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [order[i], order[j]] = [order[j] as (typeof order)[number], order[i] as (typeof order)[number]];
      }
      const twice = new Set(order.slice(0, Math.round(PAYMENTS * DUPLICATE_SHARE)).map((p) => p.id));
      const copies: (typeof payments)[number][] = [];
      for (const p of order) {
        copies.push(p);
        if (twice.has(p.id))
          copies.splice(copies.length - Math.floor(rand() * Math.min(4, copies.length)), 0, p);
      }
      const queue: Delivery[] = copies.map((p) => ({ ...p, attempt: 1, notBefore: 0 }));
      const duplicates = copies.length - PAYMENTS;
      expect(duplicates).toBe(300);

      // Workers that died holding a committed claim: their leases must run out and be taken over.
      const seedStore = new KnexIdempotencyStore(knex, { tableName });
      const orphaned = payments.slice(0, ORPHANS);
      for (const p of orphaned) {
        await seedStore.claim({
          token: { scope: `v1:${scope}`, key: p.id },
          owner: 'dead-worker',
          leaseMs: LEASE_MS,
        });
      }

      let crashes = 0;
      let slow = 0;
      @injectable()
      class LedgerConsumer {
        @Idempotent({ key: (m: Message) => m.keys, scope, mode: 'transactional', leaseMs: LEASE_MS })
        async onMessage(m: Message, ctx: IdempotencyContext<Knex.Transaction>) {
          const { amount } = m.body as { amount: number };
          await ctx.trx(ledger).insert({ payment_id: m.keys[0], amount, fence: ctx.fence });
          if (rand() < SLOW_RATE) {
            slow++;
            await sleep(LEASE_MS + 100);
          }
          if (rand() < CRASH_RATE) {
            crashes++;
            throw new Error('handler crashed after writing the ledger');
          }
        }
      }

      const outcomes: IdempotencyOutcome[] = [];
      const consumers = Array.from({ length: CONSUMERS }, () => {
        // One process each: its own engine, cache and store instance; one database.
        const h = harness({ store: () => new KnexIdempotencyStore(knex, { tableName }) });
        h.container.rebind(IDEMPOTENCY_CLOCK).toConstantValue(new SystemClock());
        return { h, consumer: h.get(LedgerConsumer) };
      });

      let pending = queue.length;
      let inFlight = 0;
      let failures = 0;
      const work = async ({ consumer }: (typeof consumers)[number]): Promise<void> => {
        while (pending > 0) {
          const index = queue.findIndex((d) => d.notBefore <= Date.now());
          if (index < 0) {
            await sleep(5);
            continue;
          }
          const [delivery] = queue.splice(index, 1) as [Delivery];
          try {
            await consumer.onMessage(msg(delivery.id, { amount: delivery.amount }, delivery.attempt));
            pending--;
          } catch (error) {
            if (error instanceof IdempotencyInFlightError) inFlight++;
            else failures++;
            // The broker redelivers later.
            if (delivery.attempt >= 200) throw new Error(`${delivery.id} was never settled`);
            delivery.attempt++;
            delivery.notBefore = Date.now() + 20;
            queue.push(delivery);
          }
        }
      };
      await Promise.all(consumers.map(work));
      for (const { h } of consumers) outcomes.push(...h.outcomes);

      // The ledger, read with plain SQL.
      const perPayment: { payment_id: string; n: number | string; total: number | string }[] = await knex(
        ledger,
      )
        .select('payment_id')
        .count({ n: '*' })
        .sum({ total: 'amount' })
        .groupBy('payment_id');
      const doubleCharged = perPayment.filter((r) => Number(r.n) !== 1);
      const charged = new Set(perPayment.map((r) => r.payment_id));
      const lost = payments.filter((p) => !charged.has(p.id));
      const total = perPayment.reduce((sum, r) => sum + Number(r.total), 0);
      expect(doubleCharged).toEqual([]);
      expect(lost).toEqual([]);
      expect(total).toBe(expectedTotal);
      // Each orphaned payment was charged by the copy that took its claim over (fence 2).
      const orphanFences = await knex(ledger)
        .whereIn(
          'payment_id',
          orphaned.map((p) => p.id),
        )
        .pluck('fence');
      expect(orphanFences.map(Number)).toEqual(orphaned.map(() => 2));

      const tokens: { status: string }[] = await knex(tableName).select('status');
      expect(tokens).toHaveLength(PAYMENTS);
      expect(tokens.every((t) => t.status === 'completed')).toBe(true);

      const kinds = (kind: string) => outcomes.filter((o) => o.kind === kind).length;
      expect(kinds('processed') + kinds('takeover')).toBe(PAYMENTS);
      expect(kinds('takeover')).toBe(ORPHANS);
      expect(kinds('duplicate')).toBe(duplicates);
      expect(crashes).toBeGreaterThan(0);
      expect(slow).toBeGreaterThan(0);
      console.info(
        `${dialect} ledger: ${copies.length} deliveries (${duplicates} duplicates), ` +
          `${crashes} crashes, ${slow} slow handlers, ${inFlight} in-flight answers, ${failures} failures, ` +
          `${kinds('takeover')} takeovers in ${Math.round(performance.now() - started)} ms`,
      );
    }, 60_000);
  });
}
