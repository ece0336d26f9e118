/** @idempotent-mq/knex: the SQL idempotency store on knex (PostgreSQL, MySQL/MariaDB, SQLite), and its table. */
export { IdempotencyTableMissingError, UnstorableTokenError } from './errors.js';
export { KnexIdempotencyStore, type KnexIdempotencyStoreOptions } from './knex-idempotency-store.js';
export {
  createIdempotencyTable,
  dropIdempotencyTable,
  type IdempotencyMigration,
  idempotencyMigration,
} from './schema.js';
export { DEFAULT_TABLE_NAME, type IdempotencyTableOptions } from './table-options.js';
