/**
 * SQLite. knex gives it one connection, so transactions run one at a time in a process: a second
 * transactional copy waits for the first to commit (or roll back) and then sees its outcome; no lock is
 * needed. `ON CONFLICT DO NOTHING RETURNING *` tells a duplicate (knex's own insert result does not).
 * There is no server to end an idle transaction: the engine's own handler bound (`maxHandlerMs`) applies.
 * TEXT holds any string, U+0000 included (bound and compared with its length, not up to a NUL).
 */
import type { ReadinessCheck } from '@idempotent-mq/core';
import type { Knex } from 'knex';
import { within } from '../check-step.js';
import type { NewRow, TokenRow } from '../token-row.js';
import type { Db } from './dialect.js';
import { ReturningDialect } from './returning-dialect.js';
import { onTransactionConnection } from './transaction-connection.js';

/** What the store uses of a better-sqlite3 `Database`: the connection knex holds for a transaction. */
interface SqliteConnection {
  prepare(sql: string): { all(...bindings: unknown[]): unknown[] };
}

/** The store's SQL for SQLite, as the file comment describes. Internal: chosen by `KnexIdempotencyStore`. */
export class SqliteDialect extends ReturningDialect {
  readonly name = 'sqlite';
  readonly label = 'SQLite';
  // julianday('now') works on every SQLite version (unixepoch('subsec') needs 3.42) and keeps milliseconds.
  readonly nowMs = "(cast(round((julianday('now') - 2440587.5) * 86400000.0) as integer))";
  readonly versionSql = "('SQLite ' || sqlite_version())";
  /** @param keepsStatements the driver is better-sqlite3, whose statements the dialect keeps per connection. */
  constructor(private readonly keepsStatements: boolean) {
    super();
  }

  /** Claim statements prepared once per connection, by SQL (knex prepares every query anew). */
  readonly #prepared = new WeakMap<object, Map<string, ReturnType<SqliteConnection['prepare']>>>();

  /**
   * Inside a transaction, the claim's insert runs on the transaction's own connection as a statement
   * prepared once per connection: knex would prepare the long statement again for every claim, which
   * was a third of the store's CPU per message. Outside a transaction, or on another driver than
   * better-sqlite3, through knex.
   */
  override async insertIfAbsent(db: Db, row: NewRow): Promise<TokenRow | undefined> {
    if (!this.keepsStatements || !isTransaction(db)) return super.insertIfAbsent(db, row);
    const sql = this.insertSql(db, row.template);
    return onTransactionConnection(db, sql, row.bindings, (connection: SqliteConnection) => {
      let statements = this.#prepared.get(connection);
      if (!statements) {
        statements = new Map();
        this.#prepared.set(connection, statements);
      }
      let statement = statements.get(sql);
      if (!statement) {
        statement = connection.prepare(sql);
        statements.set(sql, statement);
      }
      return statement.all(...row.bindings)[0] as TokenRow | undefined;
    });
  }

  async releaseLocks(): Promise<void> {}

  /**
   * Nothing to probe across sessions: transactions run one at a time on the one connection. Reports the
   * journal mode and busy timeout, which decide how other processes on the same file fare.
   */
  async checkPrimitives(knex: Knex, server: string): Promise<ReadinessCheck[]> {
    const pragma = async (name: string): Promise<unknown> => {
      const rows = this.rawRows(await within(`pragma ${name}`, knex.raw(`pragma ${name}`)));
      return Object.values(rows[0] ?? {})[0];
    };
    const journal = String(await pragma('journal_mode'));
    const busyMs = Number(await pragma('busy_timeout'));
    const max = (knex.client as { pool?: { max?: unknown } }).pool?.max;
    const connections = typeof max === 'number' && max > 1 ? `${max} connections` : 'one connection';
    return [
      {
        name: 'transactions',
        status: 'ok',
        detail:
          `${server}, journal_mode=${journal}, busy_timeout=${busyMs} ms, knex pool of ${connections}. A ` +
          'transactional handler holds its connection while it runs, so handlers in transactional mode run ' +
          'one at a time per process (a second copy waits for the first to end, then sees its outcome). ' +
          `Other processes on the file wait up to busy_timeout for its write lock, then fail SQLITE_BUSY, ` +
          'which the engine runs again' +
          (journal.toLowerCase() === 'wal' ? '.' : '; journal_mode=WAL would let them read meanwhile.') +
          " No server ends a frozen transaction: the engine's maxHandlerMs bounds a handler.",
      },
    ];
  }

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

function isTransaction(db: Db): db is Knex.Transaction {
  return (db as { isTransaction?: unknown }).isTransaction === true;
}
