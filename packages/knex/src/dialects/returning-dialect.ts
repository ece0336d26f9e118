/**
 * What PostgreSQL and SQLite share: text binds as text, and `ON CONFLICT DO NOTHING RETURNING *` and
 * `UPDATE … RETURNING *` answer with the row itself, so a duplicate is told without raising.
 */
import type { ReadinessCheck } from '@idempotent-mq/core';
import type { Knex } from 'knex';
import type { ResolvedTableOptions } from '../table-options.js';
import type { NewRow, RowTemplate, TokenRow } from '../token-row.js';
import { builtOnce, type Db, type Dialect, intoColumns } from './dialect.js';

/** The SQL that PostgreSQL and SQLite share (`RETURNING *`); each subclass adds its own locking and text rules. */
export abstract class ReturningDialect implements Dialect {
  abstract readonly name: Dialect['name'];
  abstract readonly label: string;
  abstract readonly nowMs: string;
  readonly lockingReads: boolean = false;
  readonly #insert = new WeakMap<RowTemplate, string>();

  bindText(value: string): string {
    return value;
  }

  readText(value: unknown): string {
    return String(value);
  }

  unstorableChar(_value: string): string | undefined {
    return undefined;
  }

  async insertIfAbsent(db: Db, row: NewRow): Promise<TokenRow | undefined> {
    return this.rowsOf(await db.raw(this.insertSql(db, row.template), row.bindings as Knex.RawBinding[]))[0];
  }

  /** `INSERT … ON CONFLICT DO NOTHING RETURNING *` of a claim's row, built once per template. */
  protected insertSql(db: Db, template: RowTemplate): string {
    return builtOnce(
      this.#insert,
      template,
      () =>
        `insert into ${intoColumns(db, template)} values (${template.values.join(', ')}) ` +
        'on conflict (scope, key) do nothing returning *',
    );
  }

  /** The rows of a `raw()` result, which each driver shapes its own way. */
  protected abstract rowsOf(result: unknown): TokenRow[];

  async updateReturning(update: Knex.QueryBuilder): Promise<TokenRow | undefined> {
    const rows: TokenRow[] = await update.returning('*');
    return rows[0];
  }

  abstract releaseLocks(trx: Knex.Transaction, held: readonly string[]): Promise<void>;
  abstract isMissingTable(error: unknown): boolean;
  abstract defineColumns(table: Knex.CreateTableBuilder, options: ResolvedTableOptions): void;
  abstract readonly versionSql: string;
  abstract checkPrimitives(knex: Knex, server: string): Promise<ReadinessCheck[]>;

  rawRows(result: unknown): Record<string, unknown>[] {
    return this.rowsOf(result) as unknown as Record<string, unknown>[];
  }
}
