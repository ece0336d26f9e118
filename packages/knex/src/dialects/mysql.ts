/**
 * MySQL and MariaDB (InnoDB). `INSERT IGNORE` tells a duplicate by `affectedRows` (knex's own insert
 * result does not), and it is safe here only because the store refuses, before any SQL, values that
 * IGNORE would otherwise truncate. A second transactional copy would wait on the first one's row for
 * `innodb_lock_wait_timeout` (50 s by default); `GET_LOCK(name, 0)` answers it at once instead. That lock
 * belongs to the session, so the store releases it before the transaction ends.
 */
import type { Knex } from 'knex';
import type { ResolvedTableOptions } from '../table-options.js';
import type { TokenRow } from '../token-row.js';
import { type Db, type Dialect, type LockAnswer, toNumber } from './dialect.js';

export class MysqlDialect implements Dialect {
  readonly name = 'mysql';
  // UTC_TIMESTAMP, not NOW(): independent of the session's time zone and its daylight-saving jumps.
  readonly nowMs = "(timestampdiff(microsecond, '1970-01-01 00:00:00', utc_timestamp(3)) div 1000)";
  // REPEATABLE READ snapshots may predate a commit that INSERT IGNORE already saw: read with a lock.
  readonly lockingReads = true;

  /** Keys live in VARBINARY columns: bytes compare exactly, with no PAD SPACE ('a' ≠ 'a ') or collation. */
  bindText(value: string): Buffer {
    return Buffer.from(value, 'utf8');
  }

  readText(value: unknown): string {
    return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
  }

  async insertIfAbsent(
    db: Db,
    table: string,
    values: Record<string, unknown>,
  ): Promise<TokenRow | undefined> {
    const { sql, bindings } = db(table).insert(values).onConflict(['scope', 'key']).ignore().toSQL();
    const [header] = (await db.raw(sql, bindings)) as [{ affectedRows: number }];
    if (header.affectedRows !== 1) return undefined;
    const rows: TokenRow[] = await db(table)
      .select('*')
      .where({ scope: values.scope, key: values.key, owner: values.owner });
    return rows[0];
  }

  async updateReturning(
    update: Knex.QueryBuilder,
    reread: () => Knex.QueryBuilder,
  ): Promise<TokenRow | undefined> {
    const changed = toNumber(await update);
    if (changed === 0) return undefined;
    const rows: TokenRow[] = await reread();
    return rows[0];
  }

  async tryLock(
    trx: Knex.Transaction,
    lockId: Buffer,
    held: string[] | undefined,
  ): Promise<LockAnswer | undefined> {
    // A transaction the store did not open cannot have its session lock released: it waits on the row instead.
    if (!held) return undefined;
    // Lock names are server-wide and at most 64 characters.
    const name = `idempotent-mq:${lockId.toString('base64url')}`;
    const [rows] = (await trx.raw(`select get_lock(?, 0) as acquired, ${this.nowMs} as now_ms`, [name])) as [
      { acquired: unknown; now_ms: unknown }[],
    ];
    const row = rows[0];
    const acquired = toNumber(row?.acquired) === 1;
    if (acquired) held.push(name);
    return { acquired, nowMs: toNumber(row?.now_ms) };
  }

  async releaseLocks(trx: Knex.Transaction, held: readonly string[]): Promise<void> {
    for (const name of held) {
      try {
        await trx.raw('select release_lock(?)', [name]);
      } catch {
        // The session is gone (its locks with it), or the transaction ended; nothing left to release.
      }
    }
  }

  isMissingTable(error: unknown): boolean {
    const e = error as { code?: unknown; errno?: unknown } | null;
    return e?.code === 'ER_NO_SUCH_TABLE' || e?.errno === 1146;
  }

  defineColumns(t: Knex.CreateTableBuilder, o: ResolvedTableOptions): void {
    // Up to 4 bytes per code point in UTF-8.
    t.specificType('scope', `varbinary(${o.scopeLength * 4})`).notNullable();
    t.specificType('key', `varbinary(${o.keyLength * 4})`).notNullable();
    t.specificType('result', 'longtext').nullable();
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.engine('InnoDB');
  }
}
