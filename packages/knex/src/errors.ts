/** The errors this package raises beyond core's; connection failures surface as core's `StoreUnavailableError`. */
import { IdempotencyStoreError, type StoreStep, type TokenRef } from '@idempotent-mq/core';

/**
 * The token table does not exist (or the store points at the wrong name). Not an outage: no amount of
 * waiting fixes it, so it is never classed as unavailable and a fail-open policy does not act on it.
 */
export class IdempotencyTableMissingError extends IdempotencyStoreError {
  override readonly name = 'IdempotencyTableMissingError';
  constructor(
    step: StoreStep,
    token: TokenRef | undefined,
    readonly tableName: string,
    cause: unknown,
  ) {
    super(step, token, cause);
    this.message = `The idempotency table "${tableName}" does not exist. ${createTableFix(tableName)}`;
  }
}

/** How to create the token table, in the words of the error and of the start-up check. */
export function createTableFix(tableName: string): string {
  return (
    `Add idempotencyMigration({ tableName: '${tableName}' }) from @idempotent-mq/knex to your knex ` +
    `migrations and run them, or call createIdempotencyTable(knex, { tableName: '${tableName}' }) at start-up.`
  );
}

/** Raised by the store for a token its table cannot hold; defined in core, where transports see its code. */
export { UnstorableTokenError } from '@idempotent-mq/core';
