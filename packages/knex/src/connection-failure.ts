/**
 * Tells "the database cannot be reached" from every other failure. Only these become
 * `StoreUnavailableError`, the one error a fail-open policy acts on: a unique violation, a syntax error
 * or a missing table must never let a duplicate run unprotected.
 */

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** mysql2's codes for a lost or refused connection. */
const MYSQL_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR',
  'ER_CON_COUNT_ERROR',
  'ER_TOO_MANY_USER_CONNECTIONS',
  'ER_SERVER_SHUTDOWN',
]);

/** SQLSTATEs: 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now, 53300 too many connections. */
const POSTGRES_CODES = new Set(['57P01', '57P02', '57P03', '53300']);

/** pg raises these without a code when the socket goes away mid-query. */
const POSTGRES_MESSAGES = [
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
];

export function isConnectionFailure(error: unknown, depth = 0): boolean {
  if (depth > 4 || typeof error !== 'object' || error === null) return false;
  const e = error as { name?: unknown; code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  // knex could not get a connection from its pool in time (acquireConnectionTimeout).
  if (e.name === 'KnexTimeoutError') return true;
  if (typeof e.code === 'string') {
    if (NETWORK_CODES.has(e.code) || MYSQL_CODES.has(e.code) || POSTGRES_CODES.has(e.code)) return true;
    // SQLSTATE class 08: connection exception.
    if (/^08[0-9A-Z]{3}$/.test(e.code)) return true;
    if (e.code === 'SQLITE_CANTOPEN') return true;
  }
  if (typeof e.message === 'string' && POSTGRES_MESSAGES.some((m) => (e.message as string).startsWith(m))) {
    return true;
  }
  // Node's dual-stack connect reports an AggregateError; knex and drivers may wrap the socket error.
  if (Array.isArray(e.errors) && e.errors.some((inner) => isConnectionFailure(inner, depth + 1))) return true;
  return isConnectionFailure(e.cause, depth + 1);
}
