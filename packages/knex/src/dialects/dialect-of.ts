/** Picks the {@link Dialect} of a knex instance from its client. */
import { InvalidOptionError } from '@idempotent-mq/core';
import type { Knex } from 'knex';
import type { Dialect } from './dialect.js';
import { MysqlDialect } from './mysql.js';
import { PostgresDialect } from './postgres.js';
import { SqliteDialect } from './sqlite.js';

/** The dialect of a knex instance, from its client; an unsupported client fails at start-up. */
export function dialectOf(knex: Knex): Dialect {
  const name = (knex.client as { dialect?: unknown }).dialect;
  switch (name) {
    case 'postgresql':
      return new PostgresDialect();
    case 'mysql':
      return new MysqlDialect();
    case 'sqlite3':
      return new SqliteDialect();
    default:
      throw new InvalidOptionError(
        'knex',
        "a knex instance on PostgreSQL ('pg'), MySQL/MariaDB ('mysql2', 'mysql') or SQLite ('better-sqlite3', 'sqlite3')",
        String(name),
      );
  }
}
