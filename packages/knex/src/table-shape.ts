/**
 * The token table as the store needs it, checked at start-up: present, every column the store reads and
 * writes there and wide enough for its options, and the unique index on (scope, key) that its
 * insert-if-absent relies on. Read from the database's catalogue under the name the store's own
 * statements use (PostgreSQL's search_path, MySQL's current database, SQLite's main file).
 */
import type { ReadinessCheck } from '@idempotent-mq/core';
import type { Knex } from 'knex';
import { within } from './check-step.js';
import { type Dialect, quoted } from './dialects/dialect.js';
import { createTableFix } from './errors.js';
import type { ResolvedTableOptions } from './table-options.js';
import { ROW_COLUMNS } from './token-row.js';

/** A column as the catalogue describes it; `maxLength` in the database's unit (characters, or bytes of a VARBINARY). */
export interface ColumnShape {
  readonly name: string;
  readonly type: string;
  readonly maxLength?: number;
}

export interface UniqueIndexShape {
  readonly name: string;
  readonly columns: readonly string[];
  /** Some column is indexed by a prefix only (MySQL): longer values sharing it would meet. */
  readonly prefix: boolean;
}

export interface TableShape {
  readonly columns: ReadonlyMap<string, ColumnShape>;
  readonly uniqueIndexes: readonly UniqueIndexShape[];
}

/** Every column the store reads or writes: the token row's. */
const COLUMNS: readonly string[] = ROW_COLUMNS;

/** The table's shape, or undefined when there is no such table. */
export async function readTableShape(
  knex: Knex,
  dialect: Dialect,
  table: ResolvedTableOptions,
): Promise<TableShape | undefined> {
  const [schema, name] = splitName(table.tableName);
  const rows = async (sql: string, bindings: Knex.RawBinding[]): Promise<Record<string, unknown>[]> =>
    dialect.rawRows(await within(`the catalogue of table "${table.tableName}"`, knex.raw(sql, bindings)));
  switch (dialect.name) {
    case 'postgresql': {
      // to_regclass resolves the name as a statement would (search_path), quoted as knex quotes it.
      const regclass = quoted(knex, table.tableName);
      const columns = await rows(
        'select a.attname::text as name, format_type(a.atttypid, a.atttypmod) as type, ' +
          'case when a.atttypid in (1042, 1043) and a.atttypmod > 4 then a.atttypmod - 4 end as max_length ' +
          'from pg_attribute a where a.attrelid = to_regclass(?::text) and a.attnum > 0 and not a.attisdropped',
        [regclass],
      );
      if (columns.length === 0) return undefined;
      // Only what ON CONFLICT (scope, key) can infer: unique, not deferrable, not partial, on plain columns.
      const indexes = await rows(
        'select i.indexrelid::regclass::text as name, array(select a.attname::text from ' +
          'unnest(i.indkey::int2[]) with ordinality as k(attnum, n) join pg_attribute a ' +
          'on a.attrelid = i.indrelid and a.attnum = k.attnum order by k.n) as columns ' +
          'from pg_index i where i.indrelid = to_regclass(?::text) and i.indisunique and i.indimmediate ' +
          'and i.indpred is null and i.indexprs is null',
        [regclass],
      );
      return {
        columns: byName(columns),
        uniqueIndexes: indexes.map((i) => ({
          name: String(i.name),
          columns: i.columns as string[],
          prefix: false,
        })),
      };
    }
    case 'mysql': {
      const where = 'where table_schema = coalesce(?, database()) and table_name = ?';
      const columns = await rows(
        'select column_name as name, column_type as type, character_maximum_length as max_length ' +
          `from information_schema.columns ${where}`,
        [schema ?? null, name],
      );
      if (columns.length === 0) return undefined;
      const parts = await rows(
        'select index_name as name, column_name as col, sub_part as sub_part from information_schema.statistics ' +
          `${where} and non_unique = 0 order by index_name, seq_in_index`,
        [schema ?? null, name],
      );
      return { columns: byName(columns), uniqueIndexes: grouped(parts) };
    }
    case 'sqlite': {
      const file = schema ?? 'main';
      const columns = await rows('select name, type from pragma_table_info(?, ?)', [name, file]);
      if (columns.length === 0) return undefined;
      const list = await rows('select name from pragma_index_list(?, ?) where "unique" = 1 and partial = 0', [
        name,
        file,
      ]);
      const uniqueIndexes: UniqueIndexShape[] = [];
      for (const index of list) {
        const indexName = String(index.name);
        const cols = await rows('select name from pragma_index_info(?, ?) order by seqno', [indexName, file]);
        uniqueIndexes.push({ name: indexName, columns: cols.map((c) => String(c.name)), prefix: false });
      }
      return { columns: byName(columns), uniqueIndexes };
    }
  }
}

/**
 * What the shape means for the store: one ok check, or one failed check per problem, each with its fix.
 * `dialect` decides the units: MySQL/MariaDB keep scopes and keys as VARBINARY, 4 bytes per code point.
 */
export function tableChecks(
  dialect: Dialect['name'],
  table: ResolvedTableOptions,
  shape: TableShape | undefined,
): ReadinessCheck[] {
  const name = `table "${table.tableName}"`;
  if (!shape) {
    return [
      {
        name,
        status: 'failed',
        detail: `does not exist (looked up as the store's statements name it, on the store's knex).`,
        fix: createTableFix(table.tableName),
      },
    ];
  }
  const problems: { detail: string; fix: string }[] = [];
  const missing = COLUMNS.filter((column) => !shape.columns.has(column));
  if (missing.length > 0) {
    problems.push({
      detail:
        `has no column${missing.length > 1 ? 's' : ''} ${missing.map((c) => `"${c}"`).join(', ')}, which ` +
        'the store reads and writes.',
      fix:
        'The table was not made by idempotencyMigration, or a column was renamed or dropped: add the ' +
        `missing columns as idempotencyMigration defines them, or recreate the table with ` +
        `idempotencyMigration({ tableName: '${table.tableName}' }).`,
    });
  }
  const widths: [column: string, codePoints: number, option?: 'keyLength' | 'scopeLength'][] = [
    ['scope', table.scopeLength, 'scopeLength'],
    ['key', table.keyLength, 'keyLength'],
    ['owner', 64],
    ['fingerprint', 255],
    ['status', 'inProgress'.length],
  ];
  for (const [column, codePoints, option] of widths) {
    const shown = shape.columns.get(column);
    if (!shown) continue;
    const bytes = dialect === 'mysql' && option !== undefined;
    if (bytes && !/^varbinary\b/i.test(shown.type)) {
      problems.push({
        detail:
          `column "${column}" is ${shown.type}: the store binds ${column}s as UTF-8 bytes and compares them ` +
          'exactly (VARBINARY); a text column may fold case, accents or trailing spaces under its collation, ' +
          `and BINARY pads with zero bytes, so two different ${column}s could meet.`,
        fix: `Alter the column to VARBINARY(${codePoints * 4}), or recreate the table with idempotencyMigration.`,
      });
      continue;
    }
    if (shown.maxLength === undefined) continue;
    const holds = bytes ? Math.floor(shown.maxLength / 4) : shown.maxLength;
    if (holds >= codePoints) continue;
    const unit = bytes ? ` (${shown.type}, 4 bytes each)` : '';
    problems.push({
      detail:
        `column "${column}" holds ${holds} code points${unit}; the store writes up to ${codePoints}` +
        (option ? ` (its ${option})` : '') +
        '.',
      fix: option
        ? `Give the store the table's ${option} (${holds}), or widen the column.`
        : `Widen the column to ${codePoints} characters, as idempotencyMigration makes it.`,
    });
  }
  const exact = shape.uniqueIndexes.filter((index) => sameColumns(index.columns, ['scope', 'key']));
  const whole = exact.find((index) => !index.prefix);
  if (!whole) {
    const partial = exact[0];
    problems.push({
      detail: partial
        ? `its unique index "${partial.name}" on (scope, key) covers only a prefix of a column: longer keys ` +
          'sharing that prefix would meet.'
        : 'has no unique index on exactly (scope, key): the claim inserts a token unless one exists, and ' +
          'only that index makes it so; without it two copies of a message could both claim the token.',
      fix: `Add a unique index on (scope, key), as idempotencyMigration does (${table.baseName}_token_uq).`,
    });
  }
  if (problems.length > 0) {
    return problems.map((problem) => ({ name, status: 'failed', ...problem }));
  }
  const key = shape.columns.get('key');
  const keyHolds =
    key?.maxLength === undefined
      ? 'is not bounded by the database (the store bounds keys itself)'
      : `holds ${dialect === 'mysql' ? key.maxLength / 4 : key.maxLength} code points`;
  return [
    {
      name,
      status: 'ok',
      detail:
        `has the ${COLUMNS.length} columns the store reads and writes and the unique index "${whole?.name}" on ` +
        `(scope, key); its key column ${keyHolds}.`,
    },
  ];
}

function splitName(tableName: string): [schema: string | undefined, table: string] {
  const at = tableName.indexOf('.');
  return at < 0 ? [undefined, tableName] : [tableName.slice(0, at), tableName.slice(at + 1)];
}

function byName(rows: Record<string, unknown>[]): Map<string, ColumnShape> {
  return new Map(
    rows.map((row) => {
      const max = row.max_length;
      const column: ColumnShape = {
        name: String(row.name),
        type: String(row.type),
        ...(max === null || max === undefined ? {} : { maxLength: Number(max) }),
      };
      return [column.name, column];
    }),
  );
}

/** MySQL's one row per indexed column, as one entry per index. */
function grouped(parts: Record<string, unknown>[]): UniqueIndexShape[] {
  const indexes = new Map<string, { columns: string[]; prefix: boolean }>();
  for (const part of parts) {
    const name = String(part.name);
    const index = indexes.get(name) ?? { columns: [], prefix: false };
    index.columns.push(String(part.col));
    if (part.sub_part !== null && part.sub_part !== undefined) index.prefix = true;
    indexes.set(name, index);
  }
  return [...indexes].map(([name, index]) => ({ name, ...index }));
}

function sameColumns(actual: readonly string[], expected: readonly string[]): boolean {
  return actual.length === expected.length && expected.every((column) => actual.includes(column));
}
