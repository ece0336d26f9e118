/** Picks the {@link Dialect} of a knex instance from its client, refusing anything that is not one. */
import { InvalidOptionError } from '@idempotent-mq/core';
import type { Knex } from 'knex';
import type { Dialect } from './dialect.js';
import { MysqlDialect } from './mysql.js';
import { PostgresDialect } from './postgres.js';
import { SqliteDialect } from './sqlite.js';

const SUPPORTED =
  "a knex instance on PostgreSQL ('pg'), MySQL/MariaDB ('mysql2', 'mysql') or SQLite ('better-sqlite3', 'sqlite3')";

/** The dialect of a knex instance, from its client; anything else fails at start-up, naming the fix. */
export function dialectOf(knex: Knex, options: { readonly preparedStatements?: boolean } = {}): Dialect {
  assertKnex(knex);
  const { dialect: name, driverName } = knex.client as { dialect?: unknown; driverName?: unknown };
  switch (name) {
    case 'postgresql':
      // Named statements through node-postgres' own API; any other driver (pg-native) goes through knex.
      return new PostgresDialect((options.preparedStatements ?? true) && driverName === 'pg');
    case 'mysql':
      return new MysqlDialect();
    case 'sqlite3':
      // Statements kept per connection are better-sqlite3's; node-sqlite3's API is another.
      return new SqliteDialect(driverName === 'better-sqlite3');
    default:
      throw new InvalidOptionError('knex', SUPPORTED, String(name));
  }
}

/**
 * A knex instance is a function with a client; a URL or a knex configuration bound where the instance
 * belongs would otherwise fail later, on the first message, with "knex.client is undefined".
 */
function assertKnex(value: unknown): asserts value is Knex {
  const candidate = value as Partial<Knex> | null | undefined;
  if (
    typeof value === 'function' &&
    typeof candidate?.raw === 'function' &&
    typeof candidate.transaction === 'function' &&
    typeof candidate.client === 'object' &&
    candidate.client !== null
  ) {
    return;
  }
  if (typeof value === 'string') {
    throw new InvalidOptionError(
      'knex',
      `a knex instance, not a connection string: pass knex({ client: 'pg', connection: url }) (or the ` +
        'client your database needs), not the URL',
      withoutPassword(value),
    );
  }
  if (typeof value === 'object' && value !== null && 'client' in value) {
    throw new InvalidOptionError(
      'knex',
      'a knex instance, not its configuration: pass knex(config), not the config',
      { client: (value as { client: unknown }).client, connection: '…' },
    );
  }
  throw new InvalidOptionError('knex', `${SUPPORTED}: knex({ client, connection })`, described(value));
}

/** A URL as given, with its password (if any) hidden: the message may reach a log. */
function withoutPassword(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, '$1:***@');
}

function described(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name !== 'Object' ? `an instance of ${name}` : 'an object';
}
