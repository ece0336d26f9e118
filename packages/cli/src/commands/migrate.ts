/**
 * `migrate` and `migrate --status`: the token table of a knex store, through knex's own migrator with
 * this package's migrations (recorded in a migrations table of their own). A table that exists already
 * (made by `createIdempotencyTable` at start-up, or by your own migration) is adopted as it is.
 */
import { createIdempotencyTable, dropIdempotencyTable } from '@idempotent-mq/knex';
import type { Knex } from 'knex';
import type { ResolvedStore } from '../config.js';
import type { CommandContext } from '../context.js';
import { CliError, ExitCode } from '../exit-codes.js';
import type { CommandResult } from '../output.js';

type KnexStore = Extract<ResolvedStore, { type: 'knex' }>;

/** The migrations, in order. A later schema change is a new entry; a name once released never changes. */
export function tokenTableMigrations(
  store: KnexStore,
): readonly { name: string; migration: Knex.Migration }[] {
  const table = store.table ?? {};
  return [
    {
      name: '0001_idempotency_tokens',
      migration: {
        up: (knex) => createIdempotencyTable(knex, table),
        down: (knex) => dropIdempotencyTable(knex, table),
      },
    },
  ];
}

/** The options of `migrate`. */
export interface MigrateOptions {
  /** Report, change nothing. */
  readonly status?: boolean;
}

/** Runs `migrate`. */
export async function migrateCommand(
  context: CommandContext,
  options: MigrateOptions,
): Promise<CommandResult> {
  const store = context.config.store;
  if (store.type !== 'knex') {
    throw new CliError(
      'UNSUPPORTED',
      `migrate applies to knex (SQL) stores; the configured store is ${store.type === 'redis' ? 'Redis, which needs no table' : 'a custom store'} (${store.origin}).`,
    );
  }
  const connections = await context.connect();
  const knex = connections.knex as Knex;
  const migrations = tokenTableMigrations(store);
  const [schemaName, migrationsTable] = splitSchema(store.migrationsTable);
  const config: Knex.MigratorConfig = {
    tableName: migrationsTable,
    ...(schemaName ? { schemaName } : {}),
    migrationSource: {
      getMigrations: async () => migrations.map((m) => m.name),
      getMigrationName: (name: string) => name,
      getMigration: async (name: string) =>
        migrations.find((m) => m.name === name)?.migration as Knex.Migration,
    },
  };
  const tableName = store.table?.tableName ?? 'idempotency_tokens';
  const tableExisted = await knex.schema.hasTable(tableName);
  if (options.status) {
    const [completed, pending] = (await knex.migrate.list(config)) as [unknown[], unknown[]];
    const applied = completed.map(nameOf);
    const waiting = pending.map(nameOf);
    const json = {
      command: 'migrate',
      status: true,
      store: connections.storeDescription,
      table: tableName,
      tableExists: tableExisted,
      migrationsTable: store.migrationsTable,
      applied,
      pending: waiting,
      upToDate: waiting.length === 0,
    };
    const text = [
      `${connections.storeDescription}: table ${tableName} ${tableExisted ? 'exists' : 'does not exist'}`,
      ...migrations.map((m) => `  ${applied.includes(m.name) ? 'applied' : 'pending'}  ${m.name}`),
      waiting.length === 0 ? 'up to date' : `${waiting.length} pending: run idempotent-mq migrate`,
    ];
    return { exitCode: ExitCode.ok, json, text };
  }
  const [, ran] = (await knex.migrate.latest(config)) as [number, string[]];
  const json = {
    command: 'migrate',
    status: false,
    store: connections.storeDescription,
    table: tableName,
    tableExisted,
    migrationsTable: store.migrationsTable,
    ran,
    upToDate: true,
  };
  const text =
    ran.length === 0
      ? [`${connections.storeDescription}: already up to date`]
      : [
          ...ran.map((name) => `ran  ${name}`),
          tableExisted
            ? `table ${tableName} existed already: adopted as it is`
            : `created table ${tableName}`,
        ];
  return { exitCode: ExitCode.ok, json, text };
}

function splitSchema(name: string): [string | undefined, string] {
  const at = name.lastIndexOf('.');
  return at < 0 ? [undefined, name] : [name.slice(0, at), name.slice(at + 1)];
}

function nameOf(entry: unknown): string {
  if (typeof entry === 'string') return entry;
  const named = entry as { name?: unknown; file?: unknown };
  return String(named.name ?? named.file ?? entry);
}
