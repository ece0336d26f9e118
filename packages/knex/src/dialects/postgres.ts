/**
 * PostgreSQL. Any error aborts the surrounding transaction, so nothing here raises on a duplicate:
 * `ON CONFLICT DO NOTHING RETURNING *` answers with a row or none. A second transactional copy would wait
 * on the first one's uncommitted row; `pg_try_advisory_xact_lock` answers it at once instead, and the
 * lock ends with the transaction by itself. The claim that opens a store transaction also sets that
 * transaction's `idle_in_transaction_session_timeout` to the lease, in the same statement: the server
 * ends the session of a process that froze holding the lock. A server that refuses that setting (found by
 * the start-up check) gets claims without it.
 */
import { hash } from 'node:crypto';
import type { ReadinessCheck } from '@idempotent-mq/core';
import type { Knex } from 'knex';
import { isRefused } from '../check-step.js';
import type { ResolvedTableOptions } from '../table-options.js';
import { type NewRow, ROW_COLUMNS, type RowTemplate, type TokenRow } from '../token-row.js';
import {
  builtOnce,
  type ClaimAttempt,
  intoColumns,
  type LockAnswer,
  type OwnTransaction,
  quoted,
  toNumber,
} from './dialect.js';
import { postgresChecks, probePostgres } from './postgres-probe.js';
import { ReturningDialect } from './returning-dialect.js';
import { onTransactionConnection } from './transaction-connection.js';

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

type LockedRead = { lock_acquired: boolean; lock_now_ms: unknown } & TokenRow;

/**
 * Sets the transaction's idle limit (in ms, the setting's unit) for the rest of the transaction only
 * (`is_local`): the user's own transactions on the pooled connection keep the server's setting.
 */
const IDLE_LIMIT = "set_config('idle_in_transaction_session_timeout', ?::text, true)";

/** What the store uses of a node-postgres `Client`: the connection knex holds for a transaction. */
interface PgConnection {
  query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: unknown[] }>;
  /** The driver's record of the statements it prepared on this connection, by name. */
  readonly connection?: { readonly parsedStatements?: Record<string, string> };
}

/** A statement as node-postgres runs it: `$n` parameters, and its name on every connection that prepared it. */
interface NamedStatement {
  readonly name: string;
  readonly text: string;
}

/** The store's SQL for PostgreSQL, as the file comment describes. Internal: chosen by `KnexIdempotencyStore`. */
export class PostgresDialect extends ReturningDialect {
  readonly name = 'postgresql';
  readonly label = 'PostgreSQL';
  // clock_timestamp(), not now(): now() is frozen at the start of the transaction.
  readonly nowMs = '(floor(extract(epoch from clock_timestamp()) * 1000)::bigint)';
  readonly versionSql = 'version()';
  /** The server accepts the idle limit; the start-up check turns this off on one that refuses it. */
  #limitsIdle = true;
  // lockingReads stays false: under READ COMMITTED each statement already sees the latest commit.
  readonly #lockedInsert = new WeakMap<RowTemplate, string>();
  readonly #boundedLockedInsert = new WeakMap<RowTemplate, string>();
  readonly #lockedRead = new WeakMap<RowTemplate, string>();
  readonly #named = new Map<string, NamedStatement>();

  /**
   * @param preparedStatements whether the claim's statements run as named prepared statements (see
   * `KnexIdempotencyStoreOptions.preparedStatements`).
   */
  constructor(private readonly preparedStatements = true) {
    super();
  }

  override unstorableChar(value: string): string | undefined {
    return value.includes('\u0000') ? 'U+0000, which PostgreSQL text cannot hold' : undefined;
  }

  async tryLock(trx: Knex.Transaction, lockId: Buffer, own: OwnTransaction | undefined): Promise<LockAnswer> {
    const id = advisoryKey(lockId);
    const limit = this.idleLimit(own);
    const bound = limit === undefined ? '' : `, ${IDLE_LIMIT} as idle_limit`;
    const result = await trx.raw(
      `select pg_try_advisory_xact_lock(?::bigint) as acquired, ${this.nowMs} as now_ms${bound}`,
      limit === undefined ? [id] : [id, limit],
    );
    const row = (result as { rows: { acquired: boolean; now_ms: unknown }[] }).rows[0];
    return { acquired: row?.acquired === true, nowMs: toNumber(row?.now_ms) };
  }

  /**
   * `INSERT … SELECT … WHERE pg_try_advisory_xact_lock(…)`: the insert runs only if the lock was acquired
   * (measured ~0.1 ms cheaper on the server than a CTE that also reports the lock). When it returns no
   * row, a second statement tells why: asked again, the lock answers true if this transaction holds it
   * (advisory locks stack, and all end with the transaction) — a row stands — and false if another does.
   * The same statement reads the row, so the store needs no read of its own. In a transaction the store
   * opened, the insert also sets the idle limit: no statement of its own.
   */
  async lockAndInsert(
    trx: Knex.Transaction,
    lockId: Buffer,
    row: NewRow,
    own: OwnTransaction | undefined,
  ): Promise<ClaimAttempt> {
    const key = advisoryKey(lockId);
    const bindings = row.bindings as Knex.RawBinding[];
    const limit = this.idleLimit(own);
    const inserted = (await this.claimStatement(
      trx,
      this.lockedInsert(trx, row.template, limit !== undefined),
      limit === undefined ? [...bindings, key] : [...bindings, limit, key],
    )) as { rows: TokenRow[] };
    const claimed = inserted.rows[0];
    if (claimed) return { acquired: true, nowMs: toNumber(claimed.created_at), row: claimed };
    const read = (await this.claimStatement(trx, this.lockedRead(trx, row.template), [
      key,
      row.scope,
      row.key,
    ])) as { rows: LockedRead[] };
    const { lock_acquired, lock_now_ms, ...standing } = read.rows[0] as LockedRead;
    return {
      acquired: lock_acquired === true,
      nowMs: toNumber(lock_now_ms),
      standing: { row: standing.id === null ? undefined : (standing as TokenRow) },
    };
  }

  /**
   * Probes the advisory lock from two sessions and the idle limit; a refused idle limit is dropped from
   * the claims (they work without it), a lock that does not exclude has no fallback and is reported.
   */
  async checkPrimitives(knex: Knex, server: string): Promise<ReadinessCheck[]> {
    const probe = await probePostgres(knex);
    this.#limitsIdle = !isRefused(probe.idleLimit);
    return postgresChecks(server, probe);
  }

  /**
   * Runs one of a transactional claim's two statements. As a named prepared statement on the
   * transaction's own connection (`preparedStatements`), the server parses and plans it once per
   * connection instead of once per claim: the insert's plan (a lock, a setting, the clock) cost about as
   * much as the insert itself.
   */
  private async claimStatement(trx: Knex.Transaction, sql: string, bindings: Knex.RawBinding[]) {
    if (!this.preparedStatements) return trx.raw(sql, bindings);
    const { name, text } = this.named(trx, sql);
    return onTransactionConnection(trx, text, bindings, async (connection: PgConnection) => {
      try {
        return await connection.query({ name, text, values: bindings });
      } catch (error) {
        // node-postgres remembers which names it prepared on a connection. A server that lost one
        // (DEALLOCATE ALL, DISCARD ALL, a pooler that changed the session) answers 26000; a server that has
        // it when the driver does not (a pooler again) answers 42P05. Either way the driver is told what
        // the server holds, and the failure is transient: the engine reruns the transaction, which then
        // prepares (or reuses) the statement. One name is one text, so a statement found is this one.
        const code = (error as { code?: unknown } | null)?.code;
        const known = connection.connection?.parsedStatements;
        if (known && code === '26000') delete known[name];
        if (known && code === '42P05') known[name] = text;
        throw error;
      }
    });
  }

  /**
   * The statement as node-postgres takes it (`$n` parameters), named by a hash of its text: one name per
   * text, whichever store or table, so that a connection never sees one name for two statements.
   */
  private named(trx: Knex.Transaction, sql: string): NamedStatement {
    let statement = this.#named.get(sql);
    if (!statement) {
      const placeholders = sql.match(/\?/g)?.length ?? 0;
      const text = trx
        .raw(
          sql,
          Array.from({ length: placeholders }, () => null),
        )
        .toSQL()
        .toNative().sql;
      const name = `idempotent_mq_${hash('sha256', text, 'hex').slice(0, 24)}`;
      statement = { name, text };
      this.#named.set(sql, statement);
    }
    return statement;
  }

  /** The idle limit a claim sets, in ms as text: only in a transaction the store opened, on a server that takes it. */
  private idleLimit(own: OwnTransaction | undefined): string | undefined {
    return own && this.#limitsIdle ? String(own.idleLimitMs) : undefined;
  }

  private lockedInsert(trx: Knex.Transaction, template: RowTemplate, bounded: boolean): string {
    return builtOnce(bounded ? this.#boundedLockedInsert : this.#lockedInsert, template, () => {
      // Parameters of INSERT … SELECT have no type of their own: give each its column's.
      const values = template.values.map((value, i) =>
        value === '?' ? `?::${COLUMN_TYPES[template.columns[i] as string] ?? 'text'}` : value,
      );
      // In FROM, the setting is made before the WHERE asks for the lock, whatever the lock answers: a
      // subquery with a volatile function is neither merged into the outer query nor given its WHERE.
      const from = bounded ? ` from (select ${IDLE_LIMIT}) as idle_limit` : '';
      return (
        `insert into ${intoColumns(trx, template)} select ${values.join(', ')}${from} ` +
        'where pg_try_advisory_xact_lock(?::bigint) on conflict (scope, key) do nothing ' +
        `returning ${ROW_COLUMNS.map((c) => quoted(trx, c)).join(', ')}`
      );
    });
  }

  /** The lock asked again, and the token's committed row (a plain read: a locking one could wait). */
  private lockedRead(trx: Knex.Transaction, template: RowTemplate): string {
    return builtOnce(
      this.#lockedRead,
      template,
      () =>
        `select pg_try_advisory_xact_lock(?::bigint) as lock_acquired, ${this.nowMs} as lock_now_ms, ` +
        `${ROW_COLUMNS.map((c) => `t.${quoted(trx, c)}`).join(', ')} ` +
        `from (select 1) as one left join ${quoted(trx, template.table)} as t ` +
        'on t.scope = ? and t.key = ?',
    );
  }

  protected rowsOf(result: unknown): TokenRow[] {
    return (result as { rows: TokenRow[] }).rows;
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
