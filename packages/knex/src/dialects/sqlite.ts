/**
 * SQLite. knex gives it one connection, so transactions run one at a time in a process: a second
 * transactional copy waits for the first to commit (or roll back) and then sees its outcome; no lock is
 * needed. `ON CONFLICT DO NOTHING RETURNING *` tells a duplicate (knex's own insert result does not).
 * There is no server to end an idle transaction: the engine's own handler bound (`maxHandlerMs`) applies.
 * TEXT holds any string, U+0000 included (bound and compared with its length, not up to a NUL).
 */
import type { Knex } from 'knex';
import type { TokenRow } from '../token-row.js';
import { ReturningDialect } from './returning-dialect.js';

export class SqliteDialect extends ReturningDialect {
  readonly name = 'sqlite';
  readonly label = 'SQLite';
  // julianday('now') works on every SQLite version (unixepoch('subsec') needs 3.42) and keeps milliseconds.
  readonly nowMs = "(cast(round((julianday('now') - 2440587.5) * 86400000.0) as integer))";

  async tryLock(): Promise<undefined> {
    return undefined;
  }

  async releaseLocks(): Promise<void> {}

  protected rowsOf(result: unknown): TokenRow[] {
    return result as TokenRow[];
  }

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
