/**
 * PostgreSQL. Any error aborts the surrounding transaction, so nothing here raises on a duplicate:
 * `ON CONFLICT DO NOTHING RETURNING *` answers with a row or none. A second transactional copy would wait
 * on the first one's uncommitted row; `pg_try_advisory_xact_lock` answers it at once instead, and the
 * lock ends with the transaction by itself.
 */
import type { Knex } from 'knex';
import type { ResolvedTableOptions } from '../table-options.js';
import { type LockAnswer, toNumber } from './dialect.js';
import { ReturningDialect } from './returning-dialect.js';

export class PostgresDialect extends ReturningDialect {
  readonly name = 'postgresql';
  // clock_timestamp(), not now(): now() is frozen at the start of the transaction.
  readonly nowMs = '(floor(extract(epoch from clock_timestamp()) * 1000)::bigint)';
  // lockingReads stays false: under READ COMMITTED each statement already sees the latest commit.

  async tryLock(trx: Knex.Transaction, lockId: Buffer): Promise<LockAnswer> {
    // 64 bits of the token's hash: a collision only makes an unrelated copy retry later.
    const id = lockId.readBigInt64BE(0).toString();
    const result = await trx.raw(
      `select pg_try_advisory_xact_lock(?::bigint) as acquired, ${this.nowMs} as now_ms`,
      [id],
    );
    const row = (result as { rows: { acquired: boolean; now_ms: unknown }[] }).rows[0];
    return { acquired: row?.acquired === true, nowMs: toNumber(row?.now_ms) };
  }

  async releaseLocks(): Promise<void> {}

  isMissingTable(error: unknown): boolean {
    return (error as { code?: unknown } | null)?.code === '42P01';
  }

  defineColumns(t: Knex.CreateTableBuilder, o: ResolvedTableOptions): void {
    // Collation "C" compares bytes: keys are case- and accent-sensitive, and the index is cheaper.
    t.specificType('scope', `varchar(${o.scopeLength}) collate "C"`).notNullable();
    t.specificType('key', `varchar(${o.keyLength}) collate "C"`).notNullable();
    t.text('result').nullable();
  }
}
