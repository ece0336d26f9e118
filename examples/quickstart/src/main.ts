/**
 * The engine on its embedded defaults (memory store and cache, no servers): a payment consumer gets
 * each payment several times — sequential resends, concurrent copies, a crash mid-handler — and charges
 * each payment serial number exactly once.
 *
 *   pnpm demo
 */
import 'reflect-metadata';
import {
  deliveryInfo,
  IDEMPOTENCY_OUTCOME_LISTENER,
  type IdempotencyContext,
  IdempotencyInFlightError,
  IdempotencyModule,
  type IdempotencyOutcome,
  Idempotent,
  idempotentView,
  type MemoryTransaction,
} from '@idempotent-mq/core';
import { Container, injectable } from 'inversify';

/** What a RocketMQ consumer receives, reduced to what this example reads. */
interface PaymentMessage {
  readonly messageId: string;
  /** The business key the producer set: the payment serial number. */
  readonly keys: string[];
  readonly body: { readonly account: string; readonly amount: number };
  readonly deliveryAttempt: number;
}

/** The business state: account balances and the payments applied to them. */
class Ledger {
  readonly balances = new Map<string, number>([
    ['alice', 1_000],
    ['bob', 1_000],
  ]);
  readonly applied: string[] = [];
}

@injectable()
class PaymentConsumer {
  /** Fails the first run of these serials, as a crash mid-handler would. */
  readonly crashOnce = new Set(['PAY-0003', 'PAY-0007']);

  constructor(readonly ledger: Ledger) {}

  @Idempotent({ key: (m: PaymentMessage) => m.keys, storeResult: true })
  async onMessage(m: PaymentMessage, ctx: IdempotencyContext<MemoryTransaction>) {
    const serial = ctx.token.key;
    const { account, amount } = m.body;
    // The business write and its undo go through the store's transaction: they commit with the token.
    this.ledger.balances.set(account, (this.ledger.balances.get(account) ?? 0) - amount);
    this.ledger.applied.push(serial);
    ctx.trx.onRollback(() => {
      this.ledger.balances.set(account, (this.ledger.balances.get(account) ?? 0) + amount);
      this.ledger.applied.splice(this.ledger.applied.lastIndexOf(serial), 1);
    });
    await new Promise((r) => setTimeout(r, 2));
    if (this.crashOnce.delete(serial)) throw new Error(`crashed while charging ${serial}`);
    return { charged: amount, serial };
  }
}

async function main(): Promise<number> {
  const container = new Container();
  container.load(new IdempotencyModule());
  container.bind(Ledger).toSelf().inSingletonScope();
  container.bind(PaymentConsumer).toSelf().inSingletonScope();
  const outcomes: IdempotencyOutcome[] = [];
  container.bind(IDEMPOTENCY_OUTCOME_LISTENER).toConstantValue((o) => outcomes.push(o));

  const consumer = idempotentView(container.get(PaymentConsumer));
  const ledger = container.get(Ledger);

  const payments = Array.from({ length: 10 }, (_, i) => ({
    serial: `PAY-${String(i + 1).padStart(4, '0')}`,
    account: i % 2 === 0 ? 'alice' : 'bob',
    amount: 10 * (i + 1),
  }));
  let deliveries = 0;
  // A broker that redelivers until the consumer settles the copy (ack), as RocketMQ does.
  const deliver = async (p: (typeof payments)[number], copy: number) => {
    for (let attempt = 1; ; attempt++) {
      deliveries++;
      const message: PaymentMessage = {
        messageId: `${p.serial}-copy${copy}-try${attempt}`,
        keys: [p.serial],
        body: { account: p.account, amount: p.amount },
        deliveryAttempt: attempt,
      };
      try {
        return await consumer.onMessage(message, deliveryInfo({ attempt, maxAttempts: 16 }));
      } catch (error) {
        if (!(error instanceof IdempotencyInFlightError))
          console.log(`  redelivering ${p.serial}: ${(error as Error).message}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };

  const started = Date.now();
  // Every payment arrives three times: two copies at once (a rebalance), then a late resend.
  await Promise.all(payments.map((p) => Promise.all([deliver(p, 1), deliver(p, 2)])));
  await Promise.all(payments.map((p) => deliver(p, 3)));

  const expected = new Map([
    ['alice', 1_000 - payments.filter((p) => p.account === 'alice').reduce((s, p) => s + p.amount, 0)],
    ['bob', 1_000 - payments.filter((p) => p.account === 'bob').reduce((s, p) => s + p.amount, 0)],
  ]);
  const count = (kind: string) => outcomes.filter((o) => o.kind === kind).length;
  const doubleCharges = ledger.applied.length - new Set(ledger.applied).size;
  const lost = payments.filter((p) => !ledger.applied.includes(p.serial)).length;
  const balancesRight = [...expected].every(([account, balance]) => ledger.balances.get(account) === balance);

  console.log('');
  console.log(`payments sent: ${payments.length} (x3 copies), deliveries: ${deliveries}`);
  console.log(
    `processed: ${count('processed') + count('takeover')}, failed and redelivered: ${count('failed')}`,
  );
  console.log(
    `duplicates skipped: ${count('duplicate')} (cache ${outcomes.filter((o) => o.tier === 'cache').length}, ` +
      `store ${outcomes.filter((o) => o.tier === 'store').length}), in flight and retried: ${count('inFlight')}`,
  );
  console.log(
    `balances: ${[...ledger.balances].map(([a, b]) => `${a}=${b}`).join(' ')} (${balancesRight ? 'exact' : 'WRONG'})`,
  );
  console.log(`time taken: ${Date.now() - started} ms`);
  console.log(`double charges: ${doubleCharges}`);
  console.log(`lost payments: ${lost}`);
  return doubleCharges === 0 && lost === 0 && balancesRight ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
