/**
 * MySQL and MariaDB (InnoDB). `INSERT IGNORE` tells a duplicate by `affectedRows` (knex's own insert
 * result does not), and it is safe here only because the store refuses, before any SQL, values that
 * IGNORE would otherwise truncate. A second transactional copy would wait on the first one's row for
 * `innodb_lock_wait_timeout` (50 s by default). On MariaDB 10.5+ the claim's insert runs with that timeout
 * at 0 instead, so a row another open transaction holds fails the statement at once; elsewhere
 * `GET_LOCK(name, 0)` answers the copy at once. That lock belongs to the session, so the store releases it
 * before the transaction ends. On MariaDB the session's `idle_transaction_timeout` is set to the lease, so
 * that the server ends the transaction of a process that froze holding the token. The start-up check
 * probes these rather than trusting the version, and the store adopts what it found.
 */
import type { ReadinessCheck } from '@idempotent-mq/core';
import type { Knex } from 'knex';
import type { ResolvedTableOptions } from '../table-options.js';
import { isExpired, type NewRow, type RowTemplate, type TokenRow } from '../token-row.js';
import {
  builtOnce,
  type ClaimAttempt,
  type Db,
  type Dialect,
  intoColumns,
  type LockAnswer,
  type OwnTransaction,
  quoted,
  toNumber,
} from './dialect.js';
import { mariadbVersion, mysqlChecks, probeMysql, type ServerTraits } from './mysql-probe.js';

/** Lock names are server-wide and at most 64 characters. */
function lockName(lockId: Buffer): string {
  return `idempotent-mq:${lockId.toString('base64url')}`;
}

/** ER_LOCK_WAIT_TIMEOUT: with a timeout of 0, "another transaction holds a lock this statement needs". */
function isLockWaitTimeout(error: unknown): boolean {
  const e = error as { code?: unknown; errno?: unknown } | null;
  return e?.errno === 1205 || e?.code === 'ER_LOCK_WAIT_TIMEOUT';
}

/** What `statement` answers, or undefined when it met a lock it would have had to wait for. */
async function unlessLockWaitTimeout<T>(statement: PromiseLike<T>): Promise<T | undefined> {
  try {
    return await statement;
  } catch (error) {
    if (isLockWaitTimeout(error)) return undefined;
    throw error;
  }
}

type StandingRead = { lock_now_ms: unknown } & TokenRow;

/**
 * The `idle_transaction_timeout` (whole seconds) last set on each pooled connection, by any store: a
 * session keeps it, so it is set again only on a new connection or for another lease.
 */
const idleLimits = new WeakMap<object, number>();

/**
 * Sets the session's idle limit to the lease, rounded up to whole seconds (the setting's unit). It has to
 * be the session's: `SET STATEMENT` lasts one statement, and the limit is checked between statements.
 */
async function setSessionIdleLimit(trx: Knex.Transaction, ms: number): Promise<void> {
  const seconds = Math.ceil(ms / 1000);
  // A transaction's client hands out the transaction's own connection, without a round trip.
  const connection: unknown = await trx.client.acquireConnection();
  const known = typeof connection === 'object' && connection !== null;
  if (known && idleLimits.get(connection) === seconds) return;
  await trx.raw(`set session idle_transaction_timeout = ${seconds}`);
  if (known) idleLimits.set(connection, seconds);
}

/** The store's SQL for MySQL and MariaDB (InnoDB), as the file comment describes. Internal: chosen by `KnexIdempotencyStore`. */
export class MysqlDialect implements Dialect {
  readonly name = 'mysql';
  readonly label = 'MySQL/MariaDB';
  #server: Promise<ServerTraits> | undefined;
  readonly #insert = new WeakMap<RowTemplate, string>();
  readonly #noWaitInsert = new WeakMap<RowTemplate, string>();
  readonly #lockingRead = new WeakMap<RowTemplate, string>();
  readonly #plainRead = new WeakMap<RowTemplate, string>();
  // UTC_TIMESTAMP, not NOW(): independent of the session's time zone and its daylight-saving jumps.
  readonly nowMs = "(timestampdiff(microsecond, '1970-01-01 00:00:00', utc_timestamp(3)) div 1000)";
  readonly versionSql = 'version()';
  // REPEATABLE READ snapshots may predate a commit that INSERT IGNORE already saw: read with a lock.
  readonly lockingReads = true;

  /** Keys live in VARBINARY columns: bytes compare exactly, with no PAD SPACE ('a' ≠ 'a ') or collation. */
  bindText(value: string): Buffer {
    return Buffer.from(value, 'utf8');
  }

  readText(value: unknown): string {
    return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
  }

  /** VARBINARY holds any bytes, U+0000 included. */
  unstorableChar(): undefined {
    return undefined;
  }

  async insertIfAbsent(db: Db, row: NewRow): Promise<TokenRow | undefined> {
    const sql = builtOnce(
      this.#insert,
      row.template,
      () => `insert ignore into ${intoColumns(db, row.template)} values (${row.template.values.join(', ')})`,
    );
    const [header] = (await db.raw(sql, row.bindings as Knex.RawBinding[])) as [{ affectedRows: number }];
    if (header.affectedRows !== 1) return undefined;
    const rows: TokenRow[] = await db(row.template.table)
      .select('*')
      .where({ scope: row.scope, key: row.key, owner: row.owner });
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
   * On MariaDB 10.5+, `SET STATEMENT innodb_lock_wait_timeout=0 FOR INSERT IGNORE … RETURNING *`: a
   * first-time claim is one statement and takes no named lock, so nothing is left to release before the
   * commit. A row that another open transaction holds (its uncommitted claim, takeover or delete) fails
   * the insert at once with 1205, and MariaDB undoes only that statement: the transaction goes on.
   * Elsewhere (MySQL has no `SET STATEMENT` nor `RETURNING`; a server with `innodb_rollback_on_timeout`
   * would undo the whole transaction; a transaction the store did not open), `GET_LOCK` then the insert.
   */
  async lockAndInsert(
    trx: Knex.Transaction,
    lockId: Buffer,
    row: NewRow,
    own: OwnTransaction | undefined,
  ): Promise<ClaimAttempt> {
    const server = own && (await this.limitIdle(trx, own));
    if (!own || !server?.insertsWithoutWaiting) return this.lockThenInsert(trx, lockId, row, own);
    const claimed = await this.insertWithoutWaiting(trx, row);
    if (claimed) return { acquired: true, nowMs: toNumber(claimed.created_at), row: claimed };
    // A row stands, or the insert met a lock. A locking read that does not wait tells which: it fails only
    // if another transaction holds this token's row. A lock of a neighbouring key also fails the insert
    // (under REPEATABLE READ, InnoDB locks the gap before each row a statement reads or finds duplicate)
    // but lets this read through, and so does a row another copy has only read.
    const read = await this.readWithoutWaiting(trx, row);
    if (!read) {
      const committed = await this.readRow(trx, row, false);
      return { acquired: false, nowMs: committed.nowMs, standing: { row: committed.row } };
    }
    const standing = { row: read.row };
    if (read.row && !isExpired(read.row, read.nowMs)) return { acquired: true, nowMs: read.nowMs, standing };
    // Expired or absent: the takeover or the new claim runs under the named lock, so that two copies never
    // race to it (both holding the row's shared lock, their updates would deadlock). On a server without
    // named locks they may: the deadlock's victim is rolled back and run again by the engine.
    if (server?.namedLocks === false) return { acquired: true, nowMs: read.nowMs, standing };
    const lock = await this.getLock(trx, lockId, own.held);
    return { ...lock, standing };
  }

  private async lockThenInsert(
    trx: Knex.Transaction,
    lockId: Buffer,
    row: NewRow,
    own: OwnTransaction | undefined,
  ): Promise<ClaimAttempt> {
    // A transaction the store did not open cannot have its session lock released: it waits on the row instead.
    const lock = own && (await this.getLock(trx, lockId, own.held));
    if (lock && !lock.acquired) return lock;
    return { acquired: true, nowMs: lock?.nowMs ?? 0, row: await this.insertIfAbsent(trx, row) };
  }

  /** The inserted row; undefined for a duplicate, or when a lock would have made the insert wait. */
  private async insertWithoutWaiting(trx: Knex.Transaction, row: NewRow): Promise<TokenRow | undefined> {
    const sql = builtOnce(
      this.#noWaitInsert,
      row.template,
      () =>
        `set statement innodb_lock_wait_timeout=0 for insert ignore into ${intoColumns(trx, row.template)} ` +
        `values (${row.template.values.join(', ')}) returning *`,
    );
    const result = await unlessLockWaitTimeout(trx.raw(sql, row.bindings as Knex.RawBinding[]));
    return (result as [TokenRow[]] | undefined)?.[0][0];
  }

  /** {@link readRow} with a shared lock that does not wait; undefined when another transaction holds the row. */
  private async readWithoutWaiting(
    trx: Knex.Transaction,
    row: NewRow,
  ): Promise<{ row: TokenRow | undefined; nowMs: number } | undefined> {
    return unlessLockWaitTimeout(this.readRow(trx, row, true));
  }

  /** The token's row, if any, and the database's time; `locking` reads the latest commit, under a shared lock. */
  private async readRow(
    trx: Knex.Transaction,
    row: NewRow,
    locking: boolean,
  ): Promise<{ row: TokenRow | undefined; nowMs: number }> {
    const template = row.template;
    const sql = builtOnce(locking ? this.#lockingRead : this.#plainRead, template, () => {
      const table = quoted(trx, template.table);
      const where = `t.scope = ? and t.${quoted(trx, 'key')} = ?`;
      const lock = locking ? ' lock in share mode nowait' : '';
      return `select ${this.nowMs} as lock_now_ms, t.* from (select 1 as one) x left join ${table} t on ${where}${lock}`;
    });
    const [[read]] = (await trx.raw(sql, [row.scope, row.key])) as [StandingRead[]];
    const { lock_now_ms, ...rest } = read as StandingRead;
    return { row: rest.id === null ? undefined : (rest as TokenRow), nowMs: toNumber(lock_now_ms) };
  }

  /**
   * In a transaction the store opened, bounds its idle time on MariaDB (see {@link setSessionIdleLimit}); the
   * server's traits either way.
   */
  private async limitIdle(trx: Knex.Transaction, own: OwnTransaction): Promise<ServerTraits> {
    const server = await this.server(trx);
    if (server.limitsIdleTransactions) await setSessionIdleLimit(trx, own.idleLimitMs);
    return server;
  }

  /**
   * Probes both ways of answering a second copy at once (the no-wait insert, `GET_LOCK`) and the idle
   * limit, and adopts the answers: the claims then take the path the server really has.
   */
  async checkPrimitives(knex: Knex, server: string): Promise<ReadinessCheck[]> {
    const { checks, traits } = mysqlChecks(server, await probeMysql(knex, server));
    this.adopt(traits);
    return checks;
  }

  /** What the server was found to have: the claims take the path it allows from now on. */
  adopt(traits: ServerTraits): void {
    this.#server = Promise.resolve(traits);
  }

  /**
   * Asked once per store, with its first transactional claim, unless the start-up check has probed the
   * server already: then its answers stand.
   */
  private server(db: Db): Promise<ServerTraits> {
    this.#server ??= db
      .raw('select version() as v, @@innodb_rollback_on_timeout as rollback_on_timeout')
      .then(
        (result) => {
          const [[row]] = result as [{ v: string; rollback_on_timeout: unknown }[]];
          const version = mariadbVersion(row?.v ?? '');
          return {
            insertsWithoutWaiting: version >= 1005 && toNumber(row?.rollback_on_timeout) === 0,
            limitsIdleTransactions: version >= 1003,
            namedLocks: true,
          };
        },
        (error: unknown) => {
          // Asked again by the next claim: an outage must not be remembered as the server's answer.
          this.#server = undefined;
          throw error;
        },
      );
    return this.#server;
  }

  async tryLock(
    trx: Knex.Transaction,
    lockId: Buffer,
    own: OwnTransaction | undefined,
  ): Promise<LockAnswer | undefined> {
    // A transaction the store did not open cannot have its session lock released: it waits on the row instead.
    if (!own) return undefined;
    await this.limitIdle(trx, own);
    return this.getLock(trx, lockId, own.held);
  }

  private async getLock(trx: Knex.Transaction, lockId: Buffer, held: string[]): Promise<LockAnswer> {
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

  rawRows(result: unknown): Record<string, unknown>[] {
    return (result as [Record<string, unknown>[]])[0];
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
