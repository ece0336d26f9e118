/**
 * What differs between PostgreSQL, MySQL/MariaDB and SQLite, and nothing else: the database clock, the
 * insert-if-absent that tells a duplicate without raising, updates that return the row, the lock that
 * tells a second transactional copy "in flight" at once, and the column types.
 */
import type { Knex } from 'knex';
import type { ResolvedTableOptions } from '../table-options.js';
import type { TokenRow } from '../token-row.js';

/** The user's knex or one of its transactions: both build queries the same way. */
export type Db = Knex | Knex.Transaction;

/** The answer of {@link Dialect.tryLock}. */
export interface LockAnswer {
  /** No other open transaction holds the token. */
  readonly acquired: boolean;
  /** The database's time when asked, in epoch ms. */
  readonly nowMs: number;
}

export interface Dialect {
  readonly name: 'postgresql' | 'mysql' | 'sqlite';
  /**
   * An SQL expression for the database's time in epoch milliseconds, read anew by each statement (so a
   * long transaction does not see a frozen clock). Leases and retention compare against it, never
   * against the client's clock.
   */
  readonly nowMs: string;
  /** Reads of the token row inside a transaction lock it (`FOR SHARE`), to see the latest commit. */
  readonly lockingReads: boolean;
  /** How a scope or key is bound for comparison with its column. */
  bindText(value: string): string | Buffer;
  /** A scope or key as read back from its column. */
  readText(value: unknown): string;
  /** Inserts the row unless one holds its (scope, key); the inserted row, or undefined. Never raises on a duplicate. */
  insertIfAbsent(db: Db, table: string, values: Record<string, unknown>): Promise<TokenRow | undefined>;
  /**
   * Runs a conditional update of one token row; the row as updated, or undefined when the condition
   * held no row. `reread` selects the row by its new owner where the dialect cannot return it.
   */
  updateReturning(update: Knex.QueryBuilder, reread: () => Knex.QueryBuilder): Promise<TokenRow | undefined>;
  /**
   * Tries, without waiting, to lock the token for the rest of `trx`; `undefined` when the dialect needs
   * no lock because its transactions already run one at a time. `held` collects lock names that
   * {@link Dialect.releaseLocks} must release before the transaction ends.
   */
  tryLock(trx: Knex.Transaction, lockId: Buffer, held: string[] | undefined): Promise<LockAnswer | undefined>;
  /**
   * Where the dialect can, {@link Dialect.tryLock} and {@link Dialect.insertIfAbsent} in one statement:
   * the insert runs only if the lock was acquired. One round trip fewer per transactional claim.
   */
  lockAndInsert?(
    trx: Knex.Transaction,
    lockId: Buffer,
    table: string,
    values: Record<string, unknown>,
    held: string[] | undefined,
  ): Promise<LockAnswer & { readonly row?: TokenRow }>;
  /** Releases the session locks `tryLock` took in `trx` (MySQL); nothing elsewhere. */
  releaseLocks(trx: Knex.Transaction, held: readonly string[]): Promise<void>;
  isMissingTable(error: unknown): boolean;
  /** Defines the token columns on a table being created. */
  defineColumns(table: Knex.CreateTableBuilder, options: ResolvedTableOptions): void;
}

/** Reads a numeric column or expression that a driver may return as a string or a bigint. */
/** A knex `raw()` value (an SQL expression) rather than a plain binding. */
export function isRaw(value: unknown): value is Knex.Raw {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { isRawInstance?: unknown }).isRawInstance === true
  );
}

/**
 * `INSERT … SELECT` of one row of `values`: the select list (a plain binding as `?` — cast with
 * `castOf(column)` where given — or a raw expression inlined) and its bindings, in order.
 */
export function selectList(
  values: Record<string, unknown>,
  castOf: (column: string) => string = () => '',
): { sql: string; bindings: Knex.RawBinding[] } {
  const bindings: Knex.RawBinding[] = [];
  const parts = Object.entries(values).map(([column, value]) => {
    if (isRaw(value)) {
      const compiled = value.toSQL();
      bindings.push(...(compiled.bindings as Knex.RawBinding[]));
      return `(${compiled.sql})`;
    }
    bindings.push(value as Knex.RawBinding);
    return `?${castOf(column)}`;
  });
  return { sql: parts.join(', '), bindings };
}

export function toNumber(value: unknown): number {
  return typeof value === 'number' ? value : Number(value);
}
