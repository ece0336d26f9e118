/**
 * SQLite. knex gives it one connection, so transactions run one at a time in a process: a second
 * transactional copy waits for the first to commit (or roll back) and then sees its outcome; no lock is
 * needed. `ON CONFLICT DO NOTHING RETURNING *` tells a duplicate (knex's own insert result does not).
 */
import type { Knex } from 'knex';
import type { TokenRow } from '../token-row.js';
import type { Db, Dialect } from './dialect.js';

export class SqliteDialect implements Dialect {
  readonly name = 'sqlite';
  // julianday('now') works on every SQLite version (unixepoch('subsec') needs 3.42) and keeps milliseconds.
  readonly nowMs = "(cast(round((julianday('now') - 2440587.5) * 86400000.0) as integer))";
  readonly lockingReads = false;

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

  async tryLock(): Promise<undefined> {
    return undefined;
  }

  async releaseLocks(): Promise<void> {}

  isMissingTable(error: unknown): boolean {
    const message = (error as { message?: unknown } | null)?.message;
    return typeof message === 'string' && message.includes('no such table');
  }

  defineColumns(t: Knex.CreateTableBuilder): void {
    // TEXT compares with the BINARY collation; SQLite does not enforce lengths, the store does.
    t.text('scope').notNullable();
    t.text('key').notNullable();
    t.text('result').nullable();
  }
}
