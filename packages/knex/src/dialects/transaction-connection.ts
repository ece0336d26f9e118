/**
 * A claim's statement sent straight to the driver connection a knex transaction holds, so that it can be
 * prepared once per connection (knex prepares, or has the server parse, every query anew), and announced
 * on knex's `query` / `query-response` / `query-error` events as knex announces its own queries: a query
 * log or an instrumentation listening on the knex instance still sees it.
 */
import type { Knex } from 'knex';

/** What knex's transaction client offers besides its public type: its own connection and its id. */
interface TransactionClient {
  acquireConnection(): Promise<unknown>;
  emit(event: string, ...args: unknown[]): boolean;
  readonly txid?: string;
}

/**
 * Runs `send` with the transaction's own connection. Refused once the transaction has ended, as knex
 * refuses it: on an ended transaction the statement would otherwise run on its own, outside any.
 */
export async function onTransactionConnection<C, R>(
  trx: Knex.Transaction,
  sql: string,
  bindings: readonly unknown[],
  send: (connection: C) => R | Promise<R>,
): Promise<R> {
  const client = trx.client as unknown as TransactionClient;
  const connection = (await client.acquireConnection()) as C;
  if (trx.isCompleted()) {
    throw new Error('Transaction query already complete: the claim came after its transaction ended');
  }
  const query = { method: 'raw', sql, bindings, options: {}, __knexTxId: client.txid ?? null };
  client.emit('query', query);
  try {
    const response = await send(connection);
    client.emit('query-response', response, query);
    return response;
  } catch (error) {
    client.emit('query-error', error, query);
    throw error;
  }
}
