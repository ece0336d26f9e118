/**
 * The business side of the demo: accounts and the payments applied to them, written in the same
 * transaction as the idempotency token. Deliberately without a unique index on the serial, so that a
 * double charge would show instead of being stopped by the ledger itself.
 */
import type { MemoryTransaction } from '@idempotent-mq/core';
import type { Knex } from 'knex';

export interface Ledger<Tx = unknown> {
  /** Debits `account` and records the payment, inside the handler's transaction. */
  charge(tx: Tx, serial: string, account: string, amount: number): Promise<void>;
  /** serial → how many times it was applied. */
  applied(): Promise<Map<string, number>>;
  /** account → balance. */
  balances(): Promise<Map<string, number>>;
}

export const OPENING_BALANCE = 1_000_000;

/** The ledger in memory, joined to a `MemoryTransaction` through its commit/rollback hooks. */
export class MemoryLedger implements Ledger<MemoryTransaction> {
  private readonly balance = new Map<string, number>();
  private readonly payments: string[] = [];

  async charge(tx: MemoryTransaction, serial: string, account: string, amount: number): Promise<void> {
    // Visible only once committed, as a database would make it.
    tx.onCommit(() => {
      this.balance.set(account, (this.balance.get(account) ?? OPENING_BALANCE) - amount);
      this.payments.push(serial);
    });
  }

  async applied(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const serial of this.payments) counts.set(serial, (counts.get(serial) ?? 0) + 1);
    return counts;
  }

  async balances(): Promise<Map<string, number>> {
    return new Map(this.balance);
  }
}

/**
 * The ledger in SQL: an `accounts` table debited and a `payments` table appended to, through the
 * handler's knex transaction.
 */
export class SqlLedger implements Ledger<Knex.Transaction> {
  constructor(
    private readonly knex: Knex,
    private readonly prefix = 'demo',
  ) {}

  private get accounts() {
    return `${this.prefix}_accounts`;
  }
  private get payments() {
    return `${this.prefix}_payments`;
  }

  /** Creates (afresh) the two tables. */
  async reset(): Promise<void> {
    await this.drop();
    await this.knex.schema.createTable(this.accounts, (t) => {
      t.string('account', 64).primary();
      t.bigInteger('balance').notNullable();
    });
    await this.knex.schema.createTable(this.payments, (t) => {
      t.increments('id');
      t.string('serial', 191).notNullable().index();
      t.string('account', 64).notNullable();
      t.integer('amount').notNullable();
    });
  }

  async drop(): Promise<void> {
    await this.knex.schema.dropTableIfExists(this.payments);
    await this.knex.schema.dropTableIfExists(this.accounts);
  }

  async charge(trx: Knex.Transaction, serial: string, account: string, amount: number): Promise<void> {
    // The account row is locked exclusively before anything else: one upsert opens the account already
    // debited, or debits it. Opening it with INSERT IGNORE and then debiting it deadlocked on InnoDB: the
    // ignored insert takes a shared lock on the existing row, so two payments to one account each held it
    // shared and then waited for the other to debit it (hundreds of deadlocks per demo run on MariaDB).
    // A plain UPDATE first would not be enough: for an account not opened yet, two payments would each
    // lock the gap where its row goes, then deadlock inserting it.
    await trx(this.accounts)
      .insert({ account, balance: OPENING_BALANCE - amount })
      .onConflict('account')
      .merge({ balance: trx.raw('?? - ?', [`${this.accounts}.balance`, amount]) });
    await trx(this.payments).insert({ serial, account, amount });
  }

  async applied(): Promise<Map<string, number>> {
    const rows = (await this.knex(this.payments).select('serial').count({ n: '*' }).groupBy('serial')) as {
      serial: string;
      n: number | string;
    }[];
    return new Map(rows.map((r) => [r.serial, Number(r.n)]));
  }

  async balances(): Promise<Map<string, number>> {
    const rows = (await this.knex(this.accounts).select('account', 'balance')) as {
      account: string;
      balance: number | string;
    }[];
    return new Map(rows.map((r) => [r.account, Number(r.balance)]));
  }
}
