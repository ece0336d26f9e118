/**
 * The business side of the demo: accounts and the payments applied to them, written in the same
 * transaction as the idempotency token. Deliberately without a unique index on the serial, so that a
 * double charge would show instead of being stopped by the ledger itself.
 */
import type { MemoryTransaction } from '@idempotent-mq/core';

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
