/**
 * What differs between PostgreSQL, MySQL/MariaDB and SQLite, and nothing else: the database clock, the
 * insert-if-absent that tells a duplicate without raising, updates that return the row, the lock that
 * tells a second transactional copy "in flight" at once, the server's bound on an idle transaction, the
 * text a column cannot hold, the column types, and the start-up probes of those primitives.
 */
import type { ReadinessCheck } from '@idempotent-mq/core';
import type { Knex } from 'knex';
import type { ResolvedTableOptions } from '../table-options.js';
import type { NewRow, RowTemplate, TokenRow } from '../token-row.js';

/** The user's knex or one of its transactions: both build queries the same way. */
export type Db = Knex | Knex.Transaction;

/** The answer of {@link Dialect.tryLock}. */
export interface LockAnswer {
  /** No other open transaction holds the token. */
  readonly acquired: boolean;
  /** The database's time when asked, in epoch ms. */
  readonly nowMs: number;
}

/** The answer of {@link Dialect.lockAndInsert}. */
export interface ClaimAttempt extends LockAnswer {
  /** The row inserted: the token is claimed. */
  readonly row?: TokenRow;
  /**
   * The token's row as the dialect read it after the insert found the token taken (`row` undefined: no
   * committed row), when it read it; the store then needs no read of its own.
   */
  readonly standing?: { readonly row: TokenRow | undefined };
}

/** What a claim inside a transaction the store opened (`store.transaction`) brings to the dialect. */
export interface OwnTransaction {
  /** Session lock names that {@link Dialect.releaseLocks} must release before the transaction ends. */
  readonly held: string[];
  /**
   * The claim's lease: how long the database may let the transaction sit idle before it ends it, so
   * that a frozen process does not hold the token's lock forever.
   */
  readonly idleLimitMs: number;
}

export interface Dialect {
  readonly name: 'postgresql' | 'mysql' | 'sqlite';
  /** The database's name in messages. */
  readonly label: string;
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
  /**
   * A character of `value` that the column cannot hold, described with the reason (`U+0000, which …`),
   * or undefined. Length and lone surrogates (every driver re-encodes them) are checked by the store.
   */
  unstorableChar(value: string): string | undefined;
  /** Inserts the row unless one holds its (scope, key); the inserted row, or undefined. Never raises on a duplicate. */
  insertIfAbsent(db: Db, row: NewRow): Promise<TokenRow | undefined>;
  /**
   * Runs a conditional update of one token row; the row as updated, or undefined when the condition
   * held no row. `reread` selects the row by its new owner where the dialect cannot return it.
   */
  updateReturning(update: Knex.QueryBuilder, reread: () => Knex.QueryBuilder): Promise<TokenRow | undefined>;
  /**
   * A transactional claim's first step: tries, without waiting, to lock the token for the rest of `trx`
   * (`undefined` when it takes none for this transaction). Absent where the dialect needs no lock because its transactions already run one at a time (SQLite):
   * the store then computes no lock id at all. In a transaction the store opened (`own`), it also bounds
   * the transaction's idle time by the lease on the server, where the dialect can, and collects in
   * `own.held` the locks to release.
   */
  tryLock?(
    trx: Knex.Transaction,
    lockId: Buffer,
    own: OwnTransaction | undefined,
  ): Promise<LockAnswer | undefined>;
  /**
   * A transactional claim's first step where the dialect has a cheaper one than {@link Dialect.tryLock}
   * then {@link Dialect.insertIfAbsent}: the row inserted (a first-time claim costs one statement), or
   * whether another open transaction holds the token, with the row that stands where the dialect read it.
   * It bounds the idle time of `own` as {@link Dialect.tryLock} does.
   */
  lockAndInsert?(
    trx: Knex.Transaction,
    lockId: Buffer,
    row: NewRow,
    own: OwnTransaction | undefined,
  ): Promise<ClaimAttempt>;
  /** Releases the session locks `tryLock` took in `trx` (MySQL); nothing elsewhere. */
  releaseLocks(trx: Knex.Transaction, held: readonly string[]): Promise<void>;
  isMissingTable(error: unknown): boolean;
  /** Defines the token columns on a table being created. */
  defineColumns(table: Knex.CreateTableBuilder, options: ResolvedTableOptions): void;
  /** An SQL expression for the server's own version text (`version()`), read by the start-up check. */
  readonly versionSql: string;
  /** The rows of a `raw()` result, which each driver shapes its own way. */
  rawRows(result: unknown): Record<string, unknown>[];
  /**
   * Probes, on the server, the primitives a transactional claim relies on (a lock that really excludes a
   * second session, the bound on an idle transaction), one check each, and adopts what it found where
   * a fallback exists. `server` is the server's version text, for the checks' words.
   */
  checkPrimitives(knex: Knex, server: string): Promise<ReadinessCheck[]>;
}

/** An identifier (a table name may be schema-qualified) quoted as knex quotes it for this database. */
export function quoted(db: Db, name: string): string {
  return db.raw('??', [name]).toQuery();
}

/** `table (column, …)` of a row template, quoted: what follows `INSERT INTO`. */
export function intoColumns(db: Db, template: RowTemplate): string {
  return `${quoted(db, template.table)} (${template.columns.map((c) => quoted(db, c)).join(', ')})`;
}

/**
 * The statement `build` makes for `template`, made at its first use and kept: it depends on nothing else,
 * and templates live as long as their store.
 */
export function builtOnce(
  cache: WeakMap<RowTemplate, string>,
  template: RowTemplate,
  build: () => string,
): string {
  let sql = cache.get(template);
  if (sql === undefined) {
    sql = build();
    cache.set(template, sql);
  }
  return sql;
}

/** Reads a numeric column or expression that a driver may return as a string or a bigint. */
export function toNumber(value: unknown): number {
  return typeof value === 'number' ? value : Number(value);
}
