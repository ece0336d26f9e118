/**
 * The token table: a knex migration to add to your own migration list, and a helper that creates the
 * table directly (tests, scripts, apps without migrations).
 */
import type { Knex } from 'knex';
import { dialectOf } from './dialects/dialect-of.js';
import {
  type IdempotencyTableOptions,
  type ResolvedTableOptions,
  resolveTableOptions,
} from './table-options.js';

/** A knex migration: `up` creates the token table, `down` drops it. */
export interface IdempotencyMigration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/**
 * The migration for the token table. In a migration file:
 *
 * ```ts
 * export const { up, down } = idempotencyMigration({ tableName: 'idempotency_tokens' });
 * ```
 *
 * or as an entry of a custom `migrationSource`.
 */
export function idempotencyMigration(options: IdempotencyTableOptions = {}): IdempotencyMigration {
  const resolved = resolveTableOptions(options);
  return {
    up: (knex) => createTable(knex, resolved),
    down: async (knex) => {
      dialectOf(knex);
      await knex.schema.dropTableIfExists(resolved.tableName);
    },
  };
}

/** Creates the token table unless it exists. Same schema as {@link idempotencyMigration}. */
export async function createIdempotencyTable(
  knex: Knex,
  options: IdempotencyTableOptions = {},
): Promise<void> {
  const resolved = resolveTableOptions(options);
  dialectOf(knex);
  if (await knex.schema.hasTable(resolved.tableName)) return;
  await createTable(knex, resolved);
}

/** Drops the token table if it exists. */
export async function dropIdempotencyTable(knex: Knex, options: IdempotencyTableOptions = {}): Promise<void> {
  dialectOf(knex);
  await knex.schema.dropTableIfExists(resolveTableOptions(options).tableName);
}

async function createTable(knex: Knex, o: ResolvedTableOptions): Promise<void> {
  const dialect = dialectOf(knex);
  await knex.schema.createTable(o.tableName, (t) => {
    // A surrogate key lets the purge delete by primary key in small batches.
    t.bigIncrements('id').primary();
    dialect.defineColumns(t, o);
    t.string('status', 16).notNullable();
    t.string('owner', 64).notNullable();
    t.integer('fence').notNullable();
    // Epoch milliseconds on the database's clock.
    t.bigInteger('lease_expires_at').nullable();
    t.string('fingerprint', 255).nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('completed_at').nullable();
    t.bigInteger('expires_at').nullable();
    t.unique(['scope', 'key'], { indexName: `${o.baseName}_token_uq` });
    // Only completed records have expires_at: the purge reads a range of this index and nothing else.
    t.index(['expires_at'], `${o.baseName}_expires_idx`);
  });
}
