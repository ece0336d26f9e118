/**
 * The SQL store: one row per token in a table of your database, written in the same knex transaction as
 * the handler's business rows, so that the claim, the effect and the completion commit together or not
 * at all. Times are read from the database's clock in SQL, never from this process.
 */
import { hash } from 'node:crypto';
import {
  BaseIdempotencyStore,
  type BaseIdempotencyStoreOptions,
  type ClaimRequest,
  type ClaimResult,
  type CompleteRequest,
  checkOptionsObject,
  codePointLength,
  type ForgetOptions,
  type ForgetResult,
  IdempotencyError,
  type IdempotencyRecord,
  IdempotencyStoreError,
  InconsistentStateError,
  InvalidOptionError,
  isWellFormedText,
  type PurgeOptions,
  PurgePacer,
  purgePauseOption,
  type ReadinessCheck,
  type ReadinessRequest,
  type RecordInspection,
  type StatsOptions,
  type StoreStats,
  type StoreStep,
  StoreUnavailableError,
  type TokenRef,
} from '@idempotent-mq/core/adapter';
import type { Knex } from 'knex';
import { isConnectionFailure } from './connection-failure.js';
import { type Db, type Dialect, type OwnTransaction, toNumber } from './dialects/dialect.js';
import { dialectOf } from './dialects/dialect-of.js';
import { IdempotencyTableMissingError } from './errors.js';
import { checkKnexStore } from './store-check.js';
import {
  type IdempotencyTableOptions,
  type ResolvedTableOptions,
  resolveTableOptions,
} from './table-options.js';
import {
  claimStateSql,
  claimTemplate,
  isExpired,
  type NewRow,
  type RowTemplate,
  STATUS_COMPLETED,
  STATUS_IN_PROGRESS,
  type TokenRow,
  toRecord,
} from './token-row.js';
import { isTransientFailure } from './transient-failure.js';

export interface KnexIdempotencyStoreOptions extends IdempotencyTableOptions, BaseIdempotencyStoreOptions {
  /**
   * Rows deleted per statement by {@link KnexIdempotencyStore.purgeExpired} when the call names none.
   * @defaultValue 1000
   */
  purgeBatchSize?: number;
  /**
   * How long {@link KnexIdempotencyStore.purgeExpired} waits between two batches, in ms, when the call
   * names none; `'auto'` waits as long as the last batch took, so the purge takes at most half of the
   * database's time from the consumers beside it. Measured on MariaDB (1M expired rows, 64 consumers, 2
   * cores): without a pause the consumers ran at 0.44–0.75 of their throughput during the purge, with
   * `'auto'` at 0.93–0.96, for a purge twice as long. PostgreSQL's consumers lost nothing without it.
   * @defaultValue 0
   */
  purgePause?: number | 'auto';
  /**
   * Isolation level of the transactions the store opens for transactional handlers.
   * @defaultValue the database's default (READ COMMITTED on PostgreSQL, REPEATABLE READ on InnoDB)
   */
  isolationLevel?: Knex.IsolationLevels;
  /**
   * PostgreSQL: run a transactional claim's statements as named prepared statements, parsed and planned
   * once per connection (measured: a first-time message's claim costs the server about half). Set
   * `false` behind a pooler that cannot keep prepared statements across transactions (PgBouncer before
   * 1.21 in transaction mode, or with `max_prepared_statements = 0`): it would answer
   * `prepared statement "idempotent_mq_…" does not exist`. Other dialects ignore it (SQLite always
   * prepares the claim once per connection; MySQL/MariaDB go through knex).
   * @defaultValue true
   */
  preparedStatements?: boolean;
}

/** Columns the store writes besides the token; the owner and fingerprint must fit them exactly. */
const OWNER_LENGTH = 64;
const FINGERPRINT_LENGTH = 255;
/** Tokens per statement of {@link KnexIdempotencyStore.getMany}, well under every driver's parameter limit. */
const LOOKUP_CHUNK = 500;
const MAX_BATCH = 100_000;

/** Every option's name, so that a misspelt one (`tabelName`) is refused with the nearest. */
const STORE_OPTIONS = [
  'tableName',
  'keyLength',
  'scopeLength',
  'maxClaimAttempts',
  'purgeBatchSize',
  'purgePause',
  'isolationLevel',
  'preparedStatements',
];

/**
 * An {@link IdempotencyStore} on the knex instance you already have (its pool, TLS and dialect):
 * PostgreSQL, MySQL/MariaDB or SQLite. Create the table first with {@link idempotencyMigration} or
 * {@link createIdempotencyTable}, with the same table options.
 *
 * In transactional mode the handler receives the knex transaction as `ctx.trx`. A second copy of a
 * token arriving while the first copy's transaction is open answers `inFlight` at once on PostgreSQL
 * (advisory lock) and MySQL/MariaDB (`GET_LOCK`); on SQLite it waits for the first to finish, since
 * SQLite runs one transaction at a time. On PostgreSQL and MariaDB the server ends a store transaction
 * left idle for longer than its claim's lease (a frozen process), so the token does not stay locked.
 *
 * Before the first message, {@link KnexIdempotencyStore.check} tells whether the database answers, the
 * table is there and of the right shape, and the server's locks behave; the store then uses what it found.
 */
export class KnexIdempotencyStore extends BaseIdempotencyStore<Knex.Transaction> {
  private readonly table: ResolvedTableOptions;
  private readonly dialect: Dialect;
  private readonly purgeBatchSize: number;
  private readonly purgePause: number | 'auto';
  private readonly isolationLevel: Knex.IsolationLevels | undefined;
  /** Transactions this store opened, with the session lock names they hold (MySQL). */
  private readonly opened = new WeakMap<Knex.Transaction, string[]>();
  /** Claims written completed at once inside their transaction (see `ClaimRequest.ttlMs`), by token and owner. */
  private readonly precompleted = new WeakMap<Knex.Transaction, Set<string>>();
  /** The rows of new claims: in progress under a lease, and completed at once. */
  private readonly templates: { readonly leased: RowTemplate; readonly completed: RowTemplate };

  constructor(
    private readonly knex: Knex,
    options: KnexIdempotencyStoreOptions = {},
  ) {
    checkOptionsObject(options, STORE_OPTIONS, 'KnexIdempotencyStore');
    super(options);
    this.table = resolveTableOptions(options);
    if (options.preparedStatements !== undefined && typeof options.preparedStatements !== 'boolean') {
      throw new InvalidOptionError('preparedStatements', 'true or false', options.preparedStatements);
    }
    this.dialect = dialectOf(knex, { preparedStatements: options.preparedStatements });
    this.purgeBatchSize = batchSize('purgeBatchSize', options.purgeBatchSize ?? 1000);
    this.purgePause = purgePauseOption('purgePause', options.purgePause ?? 0);
    this.isolationLevel = options.isolationLevel;
    this.templates = {
      leased: claimTemplate(this.table.tableName, this.dialect.nowMs, false),
      completed: claimTemplate(this.table.tableName, this.dialect.nowMs, true),
    };
  }

  /**
   * Checks, before any message is consumed: the database answers (one statement, bounded), the table
   * exists with every column the store uses, wide enough for its options, and the unique index on
   * (scope, key); and, when `transactional`, the server's primitives, probed on it: PostgreSQL's advisory
   * lock from two sessions and its idle-transaction limit; MySQL/MariaDB's no-wait insert, `GET_LOCK`
   * from two sessions and `idle_transaction_timeout`; SQLite's journal mode. Where a primitive is
   * missing and a fallback exists, the store adopts it (and says so); where none exists, the check
   * fails, naming the server and the fix. Never throws for a failed check.
   */
  async check(request: ReadinessRequest): Promise<readonly ReadinessCheck[]> {
    return checkKnexStore(this.knex, this.dialect, this.table, request);
  }

  /** The dialect the store speaks: `postgresql`, `mysql` or `sqlite`. */
  get dialectName(): Dialect['name'] {
    return this.dialect.name;
  }

  async transaction<T>(work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
    let began = false;
    let failure: { error: unknown } | undefined;
    const config = this.isolationLevel ? { isolationLevel: this.isolationLevel } : undefined;
    try {
      return await this.knex.transaction(async (trx) => {
        // knex calls this even after a failed BEGIN, on a transaction already completed (and rejected with
        // BEGIN's error): nothing may run then.
        if (trx.isCompleted()) throw new Error('BEGIN failed');
        began = true;
        const held: string[] = [];
        this.opened.set(trx, held);
        let result: T;
        try {
          result = await work(trx);
        } catch (error) {
          failure = { error };
          throw error;
        } finally {
          // Before the end of the transaction: a copy that gets the lock meanwhile waits only for our commit.
          await this.dialect.releaseLocks(trx, held);
        }
        return result;
      }, config);
    } catch (error) {
      if (failure) throw failure.error;
      // Could not begin (no connection, BEGIN refused): nothing ran, so an outage here may be treated as one.
      if (!began) throw this.translate('begin', undefined, error);
      // The COMMIT failed. It may have reached the database, so this is never "unavailable": a fail-open
      // policy must not run the handler a second time.
      throw new IdempotencyStoreError('commit', undefined, error);
    }
  }

  /** The token, owner and fingerprint must fit the table's columns, as text the driver stores unaltered. */
  protected override unstorable(request: ClaimRequest): string | undefined {
    return (
      this.unstorableToken(request.token) ??
      tooLong('owner', request.owner, OWNER_LENGTH) ??
      (request.fingerprint === undefined
        ? undefined
        : tooLong('fingerprint', request.fingerprint, FINGERPRINT_LENGTH))
    );
  }

  /**
   * Inside a transaction, the token's lock first, so that two copies never both run the handler: where
   * the dialect can, the lock and the insert in one statement (PostgreSQL, MariaDB), which answers most
   * claims outright; else the lock alone (MySQL's `GET_LOCK`, SQLite's writer lock), then the loop.
   */
  protected override claimFirst(
    request: ClaimRequest,
    tx?: Knex.Transaction,
  ): Promise<ClaimResult | undefined> | undefined {
    return tx && this.lockFirst(request, tx);
  }

  private async lockFirst(request: ClaimRequest, tx: Knex.Transaction): Promise<ClaimResult | undefined> {
    const own = this.own(tx, request);
    if (this.dialect.lockAndInsert) {
      const attempt = await this.dialect.lockAndInsert(
        tx,
        this.lockId(request.token),
        this.newRow(request, tx),
        own,
      );
      if (attempt.row) {
        this.notePrecompleted(request, tx);
        return { status: 'claimed', record: this.record(attempt.row), takeover: false };
      }
      const standing = attempt.standing?.row;
      // A row that stands answers the claim, whoever holds the lock.
      if (standing && !isExpired(standing, attempt.nowMs)) {
        return { status: 'exists', record: this.record(standing) };
      }
      if (!attempt.acquired) return this.heldElsewhere(request.token, attempt.nowMs, tx, attempt.standing);
      // The row is expired or gone (or unread): the loop decides, under the lock.
      return undefined;
    }
    // SQLite runs one transaction at a time: nothing to lock, so no lock id to hash either.
    if (!this.dialect.tryLock) return undefined;
    const lock = await this.dialect.tryLock(tx, this.lockId(request.token), own);
    if (lock && !lock.acquired) return this.heldElsewhere(request.token, lock.nowMs, tx);
    return undefined;
  }

  protected async insertIfAbsent(
    request: ClaimRequest,
    tx?: Knex.Transaction,
  ): Promise<IdempotencyRecord | undefined> {
    const row = await this.dialect.insertIfAbsent(tx ?? this.knex, this.newRow(request, tx));
    if (row) this.notePrecompleted(request, tx);
    return row && this.record(row);
  }

  protected async takeOverIfExpired(
    request: ClaimRequest,
    tx?: Knex.Transaction,
  ): Promise<{ record: IdempotencyRecord; takeover: boolean } | undefined> {
    const db = tx ?? this.knex;
    const now = db.raw(this.dialect.nowMs);
    const update = db(this.table.tableName)
      .where(this.tokenWhere(request.token))
      .andWhere((expired) =>
        expired
          .where((lease) => lease.where('status', STATUS_IN_PROGRESS).andWhere('lease_expires_at', '<=', now))
          .orWhere((ttl) => ttl.where('status', STATUS_COMPLETED).andWhere('expires_at', '<=', now)),
      )
      .update({
        // First: MySQL evaluates SET left to right, and this must read the old status.
        fence: db.raw('case when ?? = ? then ?? + 1 else 1 end', ['status', STATUS_IN_PROGRESS, 'fence']),
        owner: request.owner,
        fingerprint: request.fingerprint ?? null,
        result: null,
        created_at: now,
        ...this.claimState(db, request, tx),
      });
    const row = await this.dialect.updateReturning(update, () =>
      db(this.table.tableName)
        .select('*')
        .where({ ...this.tokenWhere(request.token), owner: request.owner }),
    );
    if (row) this.notePrecompleted(request, tx);
    // A completed record restarts at fence 1; only a taken-over claim goes above it.
    return row && { record: this.record(row), takeover: toNumber(row.fence) > 1 };
  }

  protected async find(token: TokenRef, tx?: Knex.Transaction): Promise<IdempotencyRecord | undefined> {
    const query = (tx ?? this.knex)(this.table.tableName).select('*').where(this.tokenWhere(token));
    const rows: TokenRow[] = await (tx && this.dialect.lockingReads ? query.forShare() : query);
    return rows[0] && this.record(rows[0]);
  }

  async renew(token: TokenRef, owner: string, leaseMs: number, tx?: Knex.Transaction): Promise<boolean> {
    if (this.unstorableToken(token)) return false;
    return this.guard('renew', token, async () => {
      if (tx) {
        // The claim is uncommitted, or its row is locked by this transaction: no copy can take it over
        // before the commit, and a new lease would become visible only with the completion. Renewing
        // therefore only checks that the claim is still this owner's; but it always sends a statement,
        // since that is what resets the server's idle limit on the transaction (set to the lease by the
        // claim): a live handler's keep-alive keeps its transaction.
        if (tx.isCompleted()) return false;
        if (this.precompleted.get(tx)?.has(claimId(token, owner))) {
          await tx.raw('select 1');
          return true;
        }
        return (await tx(this.table.tableName).select('id').where(this.heldWhere(token, owner))).length === 1;
      }
      const changed = await this.knex(this.table.tableName)
        .where(this.heldWhere(token, owner))
        .update({ lease_expires_at: this.nowPlus(this.knex, leaseMs) });
      if (toNumber(changed) > 0) return true;
      // A MySQL connection without CLIENT_FOUND_ROWS counts an unchanged row (same millisecond) as 0.
      if (this.dialect.name !== 'mysql') return false;
      return (
        (await this.knex(this.table.tableName).select('id').where(this.heldWhere(token, owner))).length === 1
      );
    });
  }

  async complete(request: CompleteRequest, tx?: Knex.Transaction): Promise<boolean> {
    if (this.unstorableToken(request.token)) return false;
    return this.guard('complete', request.token, async () => {
      if (tx && this.precompleted.get(tx)?.has(claimId(request.token, request.owner))) {
        // Written completed by the claim in this very transaction: only a result is left to store.
        if (request.result === undefined) return true;
        const changed = await tx(this.table.tableName)
          .where({ ...this.tokenWhere(request.token), owner: request.owner })
          .update({ result: request.result });
        return toNumber(changed) > 0;
      }
      const db = tx ?? this.knex;
      const changed = await db(this.table.tableName)
        .where(this.heldWhere(request.token, request.owner))
        .update({
          status: STATUS_COMPLETED,
          lease_expires_at: null,
          result: request.result ?? null,
          completed_at: db.raw(this.dialect.nowMs),
          expires_at: this.nowPlus(db, request.ttlMs),
        });
      return toNumber(changed) > 0;
    });
  }

  async release(token: TokenRef, owner: string, tx?: Knex.Transaction): Promise<boolean> {
    if (this.unstorableToken(token)) return false;
    return this.guard('release', token, async () => {
      const deleted = await (tx ?? this.knex)(this.table.tableName)
        .where(this.heldWhere(token, owner))
        .delete();
      return toNumber(deleted) > 0;
    });
  }

  async get(token: TokenRef, tx?: Knex.Transaction): Promise<IdempotencyRecord | undefined> {
    if (this.unstorableToken(token)) return undefined;
    return this.guard('read', token, async () => {
      const db = tx ?? this.knex;
      const rows: TokenRow[] = await this.live(
        db,
        db(this.table.tableName).select('*').where(this.tokenWhere(token)),
      );
      return rows[0] && this.record(rows[0]);
    });
  }

  async getMany(tokens: readonly TokenRef[]): Promise<(IdempotencyRecord | undefined)[]> {
    const storable = tokens.filter((token) => !this.unstorableToken(token));
    const found = new Map<string, IdempotencyRecord>();
    await this.guard('read', undefined, async () => {
      for (let i = 0; i < storable.length; i += LOOKUP_CHUNK) {
        const chunk = storable.slice(i, i + LOOKUP_CHUNK);
        const pairs = chunk.map((t) => [this.dialect.bindText(t.scope), this.dialect.bindText(t.key)]);
        const rows: TokenRow[] = await this.live(
          this.knex,
          this.knex(this.table.tableName).select('*').whereIn(['scope', 'key'], pairs),
        );
        for (const row of rows) {
          const record = this.record(row);
          found.set(exactId(record), record);
        }
      }
    });
    return tokens.map((token) => found.get(exactId(token)));
  }

  /**
   * Whether the failed transaction may pass if run again at once: a deadlock or a serialization failure
   * (PostgreSQL 40P01, 40001; MySQL/MariaDB 1213, and 1205 for a lock wait that ran out), or a busy
   * SQLite database (SQLITE_BUSY*, SQLITE_LOCKED*). `error` is a driver error the handler's own writes
   * threw, or one of this store's errors with the driver's as `cause`. Connection drops, constraint
   * violations and a missing table are not transient: they would only fail again.
   */
  isTransient(error: unknown): boolean {
    return isTransientFailure(error);
  }

  /**
   * Deletes expired completed rows, `batchSize` at a time, each batch in its own two statements (ids,
   * then a delete by id), with `pause` between batches (see `purgePause`); resolves to how many went.
   */
  async purgeExpired(options: PurgeOptions = {}): Promise<number> {
    const size = batchSize('batchSize', options.batchSize ?? this.purgeBatchSize);
    const pacer = new PurgePacer(purgePauseOption('pause', options.pause ?? this.purgePause));
    return this.guard('purge', undefined, async () => {
      let purged = 0;
      for (;;) {
        await pacer.next();
        // Ids first, then a delete by primary key: each statement locks at most one batch of rows, and
        // MySQL refuses LIMIT inside an IN subquery.
        const ids = (await this.expired(this.knex(this.table.tableName).select('id')).limit(size)).map(
          (row: { id: number | string }) => row.id,
        );
        if (ids.length === 0) return purged;
        // The condition again: a record re-claimed since the select is no longer expired and stays.
        purged += toNumber(await this.expired(this.knex(this.table.tableName).whereIn('id', ids)).delete());
        if (ids.length < size) return purged;
      }
    });
  }

  /** The token's row as stored, expired or not, with the database's time and the row's id. */
  async inspect(token: TokenRef): Promise<RecordInspection> {
    return this.guard('inspect', token, async () => {
      const row = this.unstorableToken(token) ? undefined : await this.rowWithNow(token);
      if (!row) return { now: await this.nowOf(this.knex), location: this.table.tableName };
      return { record: this.record(row), now: toNumber(row.now_ms), location: this.locationOf(row) };
    });
  }

  /**
   * Deletes the token's row unless it is a live claim (or `force`). The delete names the row as read
   * (id, owner, fence, status) and, without `force`, repeats the liveness test on the database's clock,
   * so a claim renewed or taken over meanwhile stays; the row is then read again.
   */
  async forget(token: TokenRef, options: ForgetOptions = {}): Promise<ForgetResult> {
    if (this.unstorableToken(token)) return { outcome: 'absent' };
    return this.guard('forget', token, async () => {
      for (let attempt = 1; attempt <= this.maxClaimAttempts; attempt++) {
        const row = await this.rowWithNow(token);
        if (!row) return { outcome: 'absent' };
        const record = this.record(row);
        const live = row.status === STATUS_IN_PROGRESS && !isExpired(row, toNumber(row.now_ms));
        if (live && !options.force) return { outcome: 'refused', reason: 'liveClaim', record };
        if (options.dryRun) return { outcome: 'forgotten', record };
        const asRead = this.knex(this.table.tableName).where({
          id: row.id,
          owner: row.owner,
          fence: row.fence,
          status: row.status,
        });
        const now = this.knex.raw(this.dialect.nowMs);
        const deleted = await (options.force
          ? asRead
          : asRead.andWhere((q) => q.where('status', STATUS_COMPLETED).orWhere('lease_expires_at', '<=', now))
        ).delete();
        if (toNumber(deleted) > 0) return { outcome: 'forgotten', record };
        // Renewed, taken over, completed or deleted since it was read: decide again on what stands now.
      }
      throw new InconsistentStateError(token, this.maxClaimAttempts);
    });
  }

  /**
   * Counts the rows (of a scope) on the database's clock: one aggregate statement and two reads of the
   * oldest rows. It scans the table (or the scope's part of the unique index): run it from a shell.
   */
  async stats(options: StatsOptions = {}): Promise<StoreStats> {
    const within = options.expiringWithinMs ?? 86_400_000;
    if (!Number.isInteger(within) || within < 0) {
      throw new InvalidOptionError('expiringWithinMs', 'a non-negative integer (milliseconds)', within);
    }
    const scope = options.scope;
    return this.guard('stats', undefined, async () => {
      // A scope the table cannot hold has no rows.
      if (scope !== undefined && this.textProblem('scope', scope)) {
        return emptyStats(await this.nowOf(this.knex), scope, within);
      }
      const k = this.knex;
      const now = this.dialect.nowMs;
      const count = (name: string, condition: string, bindings: Knex.RawBinding[] = []) =>
        k.raw(`coalesce(sum(case when ${condition} then 1 else 0 end), 0) as ??`, [...bindings, name]);
      const inScope = (query: Knex.QueryBuilder) =>
        scope === undefined ? query : query.where('scope', this.dialect.bindText(scope));
      const [totals] = (await inScope(
        k(this.table.tableName).select(
          count('in_progress', '?? = ?', ['status', STATUS_IN_PROGRESS]),
          count('completed', '?? = ?', ['status', STATUS_COMPLETED]),
          count('lapsed', `?? = ? and ?? <= ${now}`, ['status', STATUS_IN_PROGRESS, 'lease_expires_at']),
          count('expired', `?? = ? and ?? <= ${now}`, ['status', STATUS_COMPLETED, 'expires_at']),
          count('soon', `?? = ? and ?? > ${now} and ?? <= (${now} + ?)`, [
            'status',
            STATUS_COMPLETED,
            'expires_at',
            'expires_at',
            within,
          ]),
          k.raw(`${now} as ??`, ['now_ms']),
        ),
      )) as Record<string, unknown>[];
      const first = async (status?: string): Promise<IdempotencyRecord | undefined> => {
        const query = inScope(k(this.table.tableName).select('*')).orderBy([
          { column: 'created_at', order: 'asc' },
          { column: 'id', order: 'asc' },
        ]);
        const rows: TokenRow[] = await (status ? query.where('status', status) : query).limit(1);
        return rows[0] && this.record(rows[0]);
      };
      return {
        now: toNumber(totals?.now_ms),
        ...(scope === undefined ? {} : { scope }),
        inProgress: toNumber(totals?.in_progress ?? 0),
        completed: toNumber(totals?.completed ?? 0),
        lapsedClaims: toNumber(totals?.lapsed ?? 0),
        expired: toNumber(totals?.expired ?? 0),
        expiringWithinMs: within,
        expiringSoon: toNumber(totals?.soon ?? 0),
        oldest: await first(),
        oldestInProgress: await first(STATUS_IN_PROGRESS),
      };
    });
  }

  /** The token's row with the database's time in `now_ms`, read in one statement. */
  private async rowWithNow(token: TokenRef): Promise<(TokenRow & { now_ms: unknown }) | undefined> {
    const rows = await this.knex(this.table.tableName)
      .select('*', this.knex.raw(`${this.dialect.nowMs} as ??`, ['now_ms']))
      .where(this.tokenWhere(token));
    return rows[0];
  }

  private async nowOf(db: Db): Promise<number> {
    const [row] = (await db.select(db.raw(`${this.dialect.nowMs} as ??`, ['now_ms']))) as {
      now_ms: unknown;
    }[];
    return toNumber(row?.now_ms);
  }

  private locationOf(row: TokenRow): string {
    return `${this.dialect.label} table ${this.table.tableName}, row id ${row.id}`;
  }

  /** The status columns of a claim that takes over a row, as {@link claimStateSql} writes them. */
  private claimState(
    db: Db,
    request: ClaimRequest,
    tx: Knex.Transaction | undefined,
  ): Record<string, Knex.Raw> {
    const retention = retentionInTx(request, tx);
    const ms = retention ?? request.leaseMs;
    const columns = Object.entries(claimStateSql(this.dialect.nowMs, retention !== undefined));
    return Object.fromEntries(
      columns.map(([column, sql]) => [column, db.raw(sql, sql.includes('?') ? [ms] : [])]),
    );
  }

  /** The row of a fresh claim, in the same two states as {@link claimState}. */
  private newRow(request: ClaimRequest, tx: Knex.Transaction | undefined): NewRow {
    const scope = this.dialect.bindText(request.token.scope);
    const key = this.dialect.bindText(request.token.key);
    const retention = retentionInTx(request, tx);
    return {
      template: retention === undefined ? this.templates.leased : this.templates.completed,
      bindings: [scope, key, request.owner, request.fingerprint ?? null, retention ?? request.leaseMs],
      scope,
      key,
      owner: request.owner,
    };
  }

  /** A transaction this store opened, as its claim's dialect sees it; undefined for the user's own. */
  private own(tx: Knex.Transaction, request: ClaimRequest): OwnTransaction | undefined {
    const held = this.opened.get(tx);
    return held && { held, idleLimitMs: request.leaseMs };
  }

  private notePrecompleted(request: ClaimRequest, tx: Knex.Transaction | undefined): void {
    if (!tx || retentionInTx(request, tx) === undefined) return;
    const claims = this.precompleted.get(tx) ?? new Set<string>();
    claims.add(claimId(request.token, request.owner));
    this.precompleted.set(tx, claims);
  }

  /** The table's rows as records. */
  private record(row: TokenRow): IdempotencyRecord {
    return toRecord(row, (value) => this.dialect.readText(value));
  }

  /**
   * Another open transaction holds the token's lock: it is claiming or running this token now. The
   * answer is its committed row if that still stands (a completed record, a live lease), else a stand-in
   * claim in progress (owner '', fence 0), since the other claim is not visible before it commits. `read`
   * is that row when the dialect has already read it.
   */
  private async heldElsewhere(
    token: TokenRef,
    nowMs: number,
    tx: Knex.Transaction,
    read?: { readonly row: TokenRow | undefined },
  ): Promise<ClaimResult> {
    const row = read ? read.row : await this.committedRow(token, tx);
    if (row && !isExpired(row, nowMs)) return { status: 'exists', record: this.record(row) };
    return {
      status: 'exists',
      record: {
        scope: token.scope,
        key: token.key,
        status: STATUS_IN_PROGRESS,
        owner: '',
        fence: 0,
        createdAt: nowMs,
      },
    };
  }

  /** A plain read: a locking one would wait on the very transaction that holds the token. */
  private async committedRow(token: TokenRef, tx: Knex.Transaction): Promise<TokenRow | undefined> {
    const rows: TokenRow[] = await tx(this.table.tableName).select('*').where(this.tokenWhere(token));
    return rows[0];
  }

  private tokenWhere(token: TokenRef): Record<string, string | Buffer> {
    return { scope: this.dialect.bindText(token.scope), key: this.dialect.bindText(token.key) };
  }

  /** The token's row while `owner` holds it in progress: the fence of renew, complete and release. */
  private heldWhere(token: TokenRef, owner: string): Record<string, string | Buffer> {
    return { ...this.tokenWhere(token), owner, status: STATUS_IN_PROGRESS };
  }

  private nowPlus(db: Db, ms: number): Knex.Raw {
    return db.raw(`(${this.dialect.nowMs} + ?)`, [ms]);
  }

  /** Keeps rows that still stand: in progress, or completed and within retention. */
  private live(db: Db, query: Knex.QueryBuilder): Knex.QueryBuilder {
    return query.andWhere((q) =>
      q.whereNull('expires_at').orWhere('expires_at', '>', db.raw(this.dialect.nowMs)),
    );
  }

  private expired(query: Knex.QueryBuilder): Knex.QueryBuilder {
    // The clock as a scalar subquery: read once per statement. Compared row by row, PostgreSQL's volatile
    // clock_timestamp() rules the expires_at index out, and every purge scanned the whole table.
    return query
      .where('status', STATUS_COMPLETED)
      .andWhere('expires_at', '<=', this.knex.raw(`(select ${this.dialect.nowMs})`));
  }

  /**
   * The token's lock id: SHA-256 of table, scope and key, so that every process (and every version of the
   * store) names the same lock. One-shot `hash`: a third of the cost of `createHash` on the hot path.
   */
  private lockId(token: TokenRef): Buffer {
    return hash('sha256', `${this.table.tableName}\u0000${token.scope}\u0000${token.key}`, 'buffer');
  }

  /** Why the table cannot hold this token exactly, or undefined when it can. */
  private unstorableToken(token: TokenRef): string | undefined {
    return this.textProblem('scope', token.scope) ?? this.textProblem('key', token.key);
  }

  private textProblem(what: 'scope' | 'key', value: string): string | undefined {
    const option = what === 'key' ? 'keyLength' : 'scopeLength';
    const max = this.table[option];
    const length = codePointLength(value);
    if (length > max) {
      return (
        `the ${what} is ${length} code points; the table holds ${max}. Keep the engine's maxKeyLength ` +
        `within the table's ${option}, or widen the column and set ${option}`
      );
    }
    const fix =
      what === 'key'
        ? 'Make the key function of @Idempotent return text without it (encode binary keys as hex or base64)'
        : 'Choose a scope without it (the scope option of @Idempotent)';
    // The driver would re-encode a lone surrogate as U+FFFD, so two different keys could meet.
    if (!isWellFormedText(value)) {
      return (
        `the ${what} contains a lone surrogate (not valid Unicode), which the ${this.dialect.label} driver ` +
        `would store as U+FFFD, so that two different ${what}s could meet. ${fix}`
      );
    }
    const char = this.dialect.unstorableChar(value);
    return char && `the ${what} contains ${char}. ${fix}`;
  }

  /** Turns a driver's error into the engine's: an outage, a missing table, or a store error. */
  protected override async guard<T>(
    step: StoreStep,
    token: TokenRef | undefined,
    fn: () => Promise<T>,
  ): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw this.translate(step, token, error);
    }
  }

  private translate(step: StoreStep, token: TokenRef | undefined, error: unknown): IdempotencyError {
    if (error instanceof IdempotencyError) return error;
    if (isConnectionFailure(error)) return new StoreUnavailableError(step, token, error);
    if (this.dialect.isMissingTable(error)) {
      return new IdempotencyTableMissingError(step, token, this.table.tableName, error);
    }
    return new IdempotencyStoreError(step, token, error);
  }
}

/**
 * A claim's retention when it is written completed at once: only inside the transaction that will
 * complete it (nobody sees it before the commit), and only when the engine said how long to keep it.
 */
function retentionInTx(request: ClaimRequest, tx: Knex.Transaction | undefined): number | undefined {
  return tx === undefined ? undefined : request.ttlMs;
}

/**
 * A token as a map key, exact even where scopes and keys may contain U+0000 (MySQL/MariaDB, SQLite):
 * core's `tokenId` joins them with U+0000, so `('a\u0000', 'b')` and `('a', '\u0000b')` would meet.
 */
function exactId(token: TokenRef): string {
  return `${token.scope.length}:${token.scope}${token.key}`;
}

function claimId(token: TokenRef, owner: string): string {
  return `${exactId(token)}\u0000${owner}`;
}

function emptyStats(now: number, scope: string, expiringWithinMs: number): StoreStats {
  return {
    now,
    scope,
    inProgress: 0,
    completed: 0,
    lapsedClaims: 0,
    expired: 0,
    expiringWithinMs,
    expiringSoon: 0,
  };
}

function tooLong(what: string, value: string, max: number): string | undefined {
  return value.length > max ? `the ${what} is ${value.length} characters; the table holds ${max}` : undefined;
}

function batchSize(option: string, value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > MAX_BATCH) {
    throw new InvalidOptionError(option, `an integer from 1 to ${MAX_BATCH}`, value);
  }
  return value;
}
