/**
 * The SQL side of the volume benchmark: token tables of the store's own migration, filled on the server
 * with rows shaped as the store writes them, the plans of the store's statements on a filled table, and
 * the removal of tables an earlier run left behind.
 */
import knexFactory, { type Knex } from 'knex';

export type Dialect = 'postgresql' | 'mysql';

/** The database clock in epoch ms, as the store's dialects read it. */
export const NOW_MS: Record<Dialect, string> = {
  postgresql: '(floor(extract(epoch from clock_timestamp()) * 1000)::bigint)',
  mysql: "(timestampdiff(microsecond, '1970-01-01 00:00:00', utc_timestamp(3)) div 1000)",
};

const DAY = 86_400_000;
/** The engine's default retention (`ttlMs`), which the measured messages get too. */
export const TTL_MS = 7 * DAY;

export function dialectOf(db: Knex): Dialect {
  return (db.client.config.client as string) === 'pg' ? 'postgresql' : 'mysql';
}

export async function dbNow(db: Knex): Promise<number> {
  const rows = await db.raw(`select ${NOW_MS[dialectOf(db)]} as now_ms`);
  const row = dialectOf(db) === 'postgresql' ? rows.rows[0] : rows[0][0];
  return Number(row.now_ms);
}

/**
 * What a fill writes: `live` rows completed over the last day and kept for the engine's retention (the
 * tokens a busy consumer piles up), or `expired` rows whose retention ended a day ago (what the purge
 * removes). Keys are UUID-shaped text spread uniformly over the index, as message ids are.
 */
export interface FillPlan {
  readonly table: string;
  readonly scope: string;
  readonly kind: 'live' | 'expired';
  /** Rows `from` … `to` (1-based, inclusive) of the sequence the keys and times come from. */
  readonly from: number;
  readonly to: number;
  /** The database's time when the fill began, and the spacing of completion times. */
  readonly nowMs: number;
  readonly stepMs: number;
}

/** The first completion time of a fill; row g completed at `origin + g * stepMs`. */
function origin(plan: FillPlan): number {
  return plan.kind === 'live' ? plan.nowMs - DAY : plan.nowMs - TTL_MS - 2 * DAY;
}

/**
 * Inserts the plan's rows with one statement per `batch` rows, server-side (PostgreSQL
 * `generate_series`, MariaDB's SEQUENCE engine): each row as the store writes a completed claim (status,
 * a UUID owner, fence 1, no lease, a SHA-256 base64url fingerprint, no result, created = completed,
 * expiry = completion + the retention).
 */
export async function fill(db: Knex, plan: FillPlan, batch: number, progress: (done: number) => void) {
  for (let from = plan.from; from <= plan.to; from += batch) {
    const to = Math.min(plan.to, from + batch - 1);
    if (dialectOf(db) === 'postgresql') {
      await db.raw(
        'insert into ?? (scope, key, status, owner, fence, lease_expires_at, fingerprint, result, ' +
          'created_at, completed_at, expires_at) ' +
          "select ?::varchar, md5(?::text || g)::uuid::text, 'completed', md5(?::text || g)::uuid::text, 1, null, " +
          `translate(encode(sha256(convert_to('j{"amount":' || g || '}', 'UTF8')), 'base64'), '+/=', '-_'), ` +
          'null, ?::bigint + g * ?::bigint, ?::bigint + g * ?::bigint, ?::bigint + g * ?::bigint ' +
          'from generate_series(?::bigint, ?::bigint) g',
        [...rowBindings(plan, plan.scope), from, to],
      );
    } else {
      const { sql, bindings } = mysqlInsert(plan, from, to);
      await db.raw(sql, bindings);
    }
    progress(to - plan.from + 1);
  }
}

/**
 * MariaDB's INSERT … SELECT of the plan's rows `from` … `to` from the SEQUENCE engine, each row as
 * {@link fill} describes.
 */
function mysqlInsert(plan: FillPlan, from: number, to: number): { sql: string; bindings: Knex.RawBinding[] } {
  const uuid = (expr: string) =>
    `lower(insert(insert(insert(insert(md5(${expr}), 9, 0, '-'), 14, 0, '-'), 19, 0, '-'), 24, 0, '-'))`;
  // The SEQUENCE engine's table names carry the bounds: integers of this program, never input.
  return {
    sql:
      'insert into ?? (scope, `key`, status, owner, fence, lease_expires_at, fingerprint, result, ' +
      'created_at, completed_at, expires_at) ' +
      `select ?, cast(${uuid('concat(?, seq)')} as binary), 'completed', ${uuid('concat(?, seq)')}, 1, null, ` +
      `replace(replace(replace(to_base64(unhex(sha2(concat('j{"amount":', seq, '}'), 256))), '+', '-'), '/', '_'), '=', ''), ` +
      `null, ? + seq * ?, ? + seq * ?, ? + seq * ? from seq_${Math.trunc(from)}_to_${Math.trunc(to)}`,
    bindings: rowBindings(plan, Buffer.from(plan.scope, 'utf8')),
  };
}

/**
 * The bindings both dialects' fills share, in their statements' order: the table, the scope (as the
 * dialect binds it), the key and owner tags, then created, completed and expiry as origin + step.
 */
function rowBindings(plan: FillPlan, scope: string | Buffer): Knex.RawBinding[] {
  const t0 = origin(plan);
  const tag = plan.kind === 'live' ? 'fill-' : 'expired-';
  return [plan.table, scope, tag, `owner-${tag}`, t0, plan.stepMs, t0, plan.stepMs, t0 + TTL_MS, plan.stepMs];
}

/**
 * MariaDB only: the plan's rows into an empty table as one INSERT … SELECT in one transaction, with
 * `unique_checks` and `foreign_key_checks` off for the session, which lets InnoDB (10.6+) take its bulk
 * path for an empty table: one undo record for the whole insert, and each secondary index (the unique
 * token index, the expiry index) built from sorted rows instead of row by row into a B-tree that outgrows
 * the buffer pool. The keys are distinct by construction (an MD5 of the row number), which is what the
 * skipped unique check would have verified. The indexes come out packed (`innodb_fill_factor`), where
 * random inserts leave leaves about 70% full. Runs on a connection of its own, closed after, so the
 * session settings go with it.
 */
export async function fillEmpty(db: Knex, plan: FillPlan): Promise<void> {
  if (dialectOf(db) !== 'mysql') throw new Error('fillEmpty: MariaDB/MySQL only; use fill on PostgreSQL');
  const own = knexFactory({ ...db.client.config, pool: { min: 0, max: 1 } } as Knex.Config);
  try {
    await own.transaction(async (trx) => {
      const [rows] = await trx.raw('select 1 from ?? limit 1', [plan.table]);
      if ((rows as unknown[]).length > 0) throw new Error(`fillEmpty: ${plan.table} is not empty`);
      await trx.raw('set session unique_checks = 0, session foreign_key_checks = 0');
      const { sql, bindings } = mysqlInsert(plan, plan.from, plan.to);
      await trx.raw(sql, bindings);
    });
  } finally {
    await own.destroy();
  }
}

/** Statistics and visibility after a bulk fill, as autovacuum / InnoDB's own statistics would have them. */
export async function settle(db: Knex, table: string): Promise<void> {
  if (dialectOf(db) === 'postgresql') await db.raw('vacuum (analyze) ??', [table]);
  else await db.raw('analyze table ??', [table]);
}

/** One row's columns as text, for comparing a filled row with one the store wrote. */
export type RowShape = Record<string, string | null>;

/** A row of the table as comparable text (MariaDB's VARBINARY as UTF-8), by its key. */
export async function rowShape(db: Knex, table: string, where: Record<string, unknown>): Promise<RowShape> {
  const [row] = (await db(table).select('*').where(where)) as Record<string, unknown>[];
  if (!row) throw new Error(`no row in ${table} where ${JSON.stringify(where)}`);
  return Object.fromEntries(
    Object.entries(row).map(([k, v]) => [
      k,
      v === null ? null : Buffer.isBuffer(v) ? v.toString('utf8') : String(v),
    ]),
  );
}

/**
 * Throws unless a filled row looks like one the store wrote: the same columns set and unset, the same
 * status, fence and scope, an owner and fingerprint of the same length, and an expiry in the future at
 * the same distance from completion.
 */
export function checkSameShape(filled: RowShape, written: RowShape, nowMs: number): void {
  const problems: string[] = [];
  const columns = new Set([...Object.keys(filled), ...Object.keys(written)]);
  for (const c of columns) {
    if ((filled[c] === null) !== (written[c] === null)) problems.push(`${c} null in one row only`);
  }
  for (const c of ['status', 'fence', 'scope', 'lease_expires_at', 'result']) {
    if (filled[c] !== written[c]) problems.push(`${c}: ${filled[c]} vs ${written[c]}`);
  }
  for (const c of ['owner', 'fingerprint', 'key']) {
    if (filled[c]?.length !== written[c]?.length) problems.push(`${c} length differs`);
  }
  const span = (r: RowShape) => Number(r.expires_at) - Number(r.completed_at);
  if (span(filled) !== span(written)) problems.push(`retention ${span(filled)} vs ${span(written)}`);
  if (Number(filled.expires_at) <= nowMs) problems.push('filled row already expired');
  if (problems.length > 0) throw new Error(`filled rows do not match the store's: ${problems.join('; ')}`);
}

/** A statement the store sent, as knex's `query` event reports it. */
export interface SentStatement {
  readonly sql: string;
  readonly bindings: readonly unknown[];
}

/**
 * The plan of a statement the store sent, on the filled table. `analyze` executes it (reads only):
 * PostgreSQL `EXPLAIN (ANALYZE, BUFFERS)`, MariaDB `ANALYZE`.
 */
export async function explain(db: Knex, sent: SentStatement, analyze: boolean): Promise<string> {
  const pg = dialectOf(db) === 'postgresql';
  // pg reports $n placeholders (in order); MariaDB's SET STATEMENT prefix cannot be explained.
  const sql = (pg ? sent.sql.replace(/\$\d+/g, '?') : sent.sql).replace(/^set statement .*? for /i, '');
  const prefix = pg
    ? analyze
      ? 'explain (analyze, buffers) '
      : 'explain '
    : analyze
      ? 'analyze '
      : 'explain ';
  const result = await db.raw(prefix + sql, sent.bindings as Knex.RawBinding[]);
  if (pg) return (result.rows as { 'QUERY PLAN': string }[]).map((r) => r['QUERY PLAN']).join('\n');
  return (result[0] as Record<string, unknown>[])
    .map((r) =>
      Object.entries(r)
        .filter(([, v]) => v !== null)
        .map(([k, v]) => `${k}=${v}`)
        .join(' '),
    )
    .join('\n');
}

/** Tables named `vol_…_<pid>`: this benchmark's, one set per process. */
const OURS = /^vol_[a-z]+_(\d+)$/;

/**
 * Drops the tables of earlier runs whose process is gone (a run killed before its cleanup); tables of a
 * live process, this one or another, stay.
 */
export async function dropLeftovers(db: Knex): Promise<string[]> {
  const pg = dialectOf(db) === 'postgresql';
  const result = await db.raw(
    pg
      ? "select table_name as name from information_schema.tables where table_schema = current_schema() and table_name like 'vol\\_%'"
      : "select table_name as name from information_schema.tables where table_schema = database() and table_name like 'vol\\_%'",
  );
  const names = ((pg ? result.rows : result[0]) as { name: string }[]).map((r) => r.name);
  const dropped: string[] = [];
  for (const name of names) {
    const pid = Number(OURS.exec(name)?.[1]);
    if (!pid || alive(pid)) continue;
    await db.schema.dropTableIfExists(name);
    dropped.push(name);
  }
  return dropped;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Size of the table with its indexes, in MB. */
export async function tableSizeMb(db: Knex, table: string): Promise<number> {
  if (dialectOf(db) === 'postgresql') {
    const r = await db.raw('select pg_total_relation_size(?::regclass) as b', [table]);
    return Math.round(Number(r.rows[0].b) / 2 ** 20);
  }
  const r = await db.raw(
    'select data_length + index_length as b from information_schema.tables where table_schema = database() and table_name = ?',
    [table],
  );
  return Math.round(Number(r[0][0].b) / 2 ** 20);
}
