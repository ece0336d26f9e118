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
import { type Db, type Dialect, type LockAnswer, selectList, toNumber } from './dialect.js';

/** Lock names are server-wide and at most 64 characters. */
function lockName(lockId: Buffer): string {
  return `idempotent-mq:${lockId.toString('base64url')}`;
}

export class MysqlDialect implements Dialect {
  readonly name = 'mysql';
  #returning: Promise<boolean> | undefined;
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

  /**
   * On MariaDB 10.5 and later, `GET_LOCK` and `INSERT IGNORE … RETURNING` in one statement: the insert
   * runs only if the lock was acquired, and returns the row (no read-back). Elsewhere (MySQL, a
   * transaction the store did not open), the lock and the insert one after the other.
   */
  async lockAndInsert(
    trx: Knex.Transaction,
    lockId: Buffer,
    table: string,
    values: Record<string, unknown>,
    held: string[] | undefined,
  ): Promise<LockAnswer & { row?: TokenRow }> {
    if (!held || !(await this.insertReturns(trx))) {
      const lock = await this.tryLock(trx, lockId, held);
      if (lock && !lock.acquired) return lock;
      return { acquired: true, nowMs: lock?.nowMs ?? 0, row: await this.insertIfAbsent(trx, table, values) };
    }
    const name = lockName(lockId);
    // Listed for release before the statement runs: if it fails after GET_LOCK succeeded (a deadlock on
    // the insert), the session lock must not outlive the transaction. Releasing a lock not held is a no-op.
    held.push(name);
    const columns = Object.keys(values);
    const select = selectList(values);
    // LIMIT 1 keeps the derived table from being merged into the insert: merged, GET_LOCK runs twice and
    // the lock is held twice, so one RELEASE_LOCK would leave it held on the pooled connection.
    const [rows] = (await trx.raw(
      `insert ignore into ?? (${columns.map(() => '??').join(', ')})
       select ${select.sql} from (select get_lock(?, 0) as acquired limit 1) l where l.acquired = 1
       returning *`,
      [table, ...columns, ...select.bindings, name],
    )) as [TokenRow[]];
    const row = rows[0];
    if (row) return { acquired: true, nowMs: toNumber(row.created_at), row };
    // No row: either another transaction holds the lock, or a row already stands and we hold the lock.
    const [[mine]] = (await trx.raw(
      `select is_used_lock(?) = connection_id() as mine, ${this.nowMs} as now_ms`,
      [name],
    )) as [{ mine: unknown; now_ms: unknown }[]];
    return { acquired: toNumber(mine?.mine) === 1, nowMs: toNumber(mine?.now_ms) };
  }

  /** MariaDB 10.5+ answers `INSERT … RETURNING`; MySQL does not. Asked once per store. */
  private insertReturns(db: Db): Promise<boolean> {
    this.#returning ??= db.raw('select version() as v').then((result) => {
      const [[row]] = result as [{ v: string }[]];
      const match = /^(\d+)\.(\d+).*mariadb/i.exec(row?.v ?? '');
      return !!match && (Number(match[1]) > 10 || (Number(match[1]) === 10 && Number(match[2]) >= 5));
    });
    return this.#returning;
  }

  async tryLock(
    trx: Knex.Transaction,
    lockId: Buffer,
    held: string[] | undefined,
  ): Promise<LockAnswer | undefined> {
    // A transaction the store did not open cannot have its session lock released: it waits on the row instead.
    if (!held) return undefined;
    const name = lockName(lockId);
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
