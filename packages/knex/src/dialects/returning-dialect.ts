/**
 * What PostgreSQL and SQLite share: text binds as text, and `ON CONFLICT DO NOTHING RETURNING *` and
 * `UPDATE … RETURNING *` answer with the row itself, so a duplicate is told without raising.
 */
import type { Knex } from 'knex';
import type { ResolvedTableOptions } from '../table-options.js';
import type { TokenRow } from '../token-row.js';
import type { Db, Dialect, LockAnswer } from './dialect.js';

export abstract class ReturningDialect implements Dialect {
  abstract readonly name: Dialect['name'];
  abstract readonly nowMs: string;
  readonly lockingReads: boolean = false;

  bindText(value: string): string {
    return value;
  }

  readText(value: unknown): string {
    return String(value);
  }

  async insertIfAbsent(
    db: Db,
    table: string,
    values: Record<string, unknown>,
  ): Promise<TokenRow | undefined> {
    const rows: TokenRow[] = await db(table)
      .insert(values)
      .onConflict(['scope', 'key'])
      .ignore()
      .returning('*');
    return rows[0];
  }

  async updateReturning(update: Knex.QueryBuilder): Promise<TokenRow | undefined> {
    const rows: TokenRow[] = await update.returning('*');
    return rows[0];
  }

  abstract tryLock(
    trx: Knex.Transaction,
    lockId: Buffer,
    held: string[] | undefined,
  ): Promise<LockAnswer | undefined>;
  abstract releaseLocks(trx: Knex.Transaction, held: readonly string[]): Promise<void>;
  abstract isMissingTable(error: unknown): boolean;
  abstract defineColumns(table: Knex.CreateTableBuilder, options: ResolvedTableOptions): void;
}
