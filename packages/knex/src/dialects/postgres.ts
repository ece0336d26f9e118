/**
 * PostgreSQL. Any error aborts the surrounding transaction, so nothing here raises on a duplicate:
 * `ON CONFLICT DO NOTHING RETURNING *` answers with a row or none. A second transactional copy would wait
 * on the first one's uncommitted row; `pg_try_advisory_xact_lock` answers it at once instead, and the
 * lock ends with the transaction by itself.
 */
import type { Knex } from 'knex';
import type { ResolvedTableOptions } from '../table-options.js';
import type { TokenRow } from '../token-row.js';
import { type LockAnswer, selectList, toNumber } from './dialect.js';
import { ReturningDialect } from './returning-dialect.js';

/** The types of the token columns, for parameters that have no context to take one from. */
const COLUMN_TYPES: Record<string, string> = {
  scope: 'varchar',
  key: 'varchar',
  status: 'varchar',
  owner: 'varchar',
  fence: 'integer',
  lease_expires_at: 'bigint',
  fingerprint: 'varchar',
  result: 'text',
  created_at: 'bigint',
  completed_at: 'bigint',
  expires_at: 'bigint',
};

/** 64 bits of the token's hash: a collision only makes an unrelated copy retry later. */
function advisoryKey(lockId: Buffer): string {
  return lockId.readBigInt64BE(0).toString();
}

export class PostgresDialect extends ReturningDialect {
  readonly name = 'postgresql';
  // clock_timestamp(), not now(): now() is frozen at the start of the transaction.
  readonly nowMs = '(floor(extract(epoch from clock_timestamp()) * 1000)::bigint)';
  // lockingReads stays false: under READ COMMITTED each statement already sees the latest commit.

  async tryLock(trx: Knex.Transaction, lockId: Buffer): Promise<LockAnswer> {
    const id = advisoryKey(lockId);
    const result = await trx.raw(
      `select pg_try_advisory_xact_lock(?::bigint) as acquired, ${this.nowMs} as now_ms`,
      [id],
    );
    const row = (result as { rows: { acquired: boolean; now_ms: unknown }[] }).rows[0];
    return { acquired: row?.acquired === true, nowMs: toNumber(row?.now_ms) };
  }

  async lockAndInsert(
    trx: Knex.Transaction,
    lockId: Buffer,
    table: string,
    values: Record<string, unknown>,
  ): Promise<LockAnswer & { row?: TokenRow }> {
    const columns = Object.keys(values);
    // Parameters of INSERT … SELECT have no type of their own: give each its column's.
    const select = selectList(values, (column) => `::${COLUMN_TYPES[column] ?? 'text'}`);
    const result = await trx.raw(
      `with l as (select pg_try_advisory_xact_lock(?::bigint) as acquired, ${this.nowMs} as now_ms),
       ins as (insert into ?? (${columns.map(() => '??').join(', ')})
               select ${select.sql} from l where l.acquired
               on conflict (scope, key) do nothing returning *)
       select l.acquired as lock_acquired, l.now_ms as lock_now_ms, ins.* from l left join ins on true`,
      [advisoryKey(lockId), table, ...columns, ...select.bindings],
    );
    const { lock_acquired, lock_now_ms, ...row } = (
      result as { rows: ({ lock_acquired: boolean; lock_now_ms: unknown } & TokenRow)[] }
    ).rows[0] as { lock_acquired: boolean; lock_now_ms: unknown } & TokenRow;
    return {
      acquired: lock_acquired === true,
      nowMs: toNumber(lock_now_ms),
      row: row.id === null || row.id === undefined ? undefined : (row as TokenRow),
    };
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
