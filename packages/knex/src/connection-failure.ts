/**
 * Tells "the database cannot be reached" from every other failure. Only these become
 * `StoreUnavailableError`, the one error a fail-open policy acts on: a unique violation, a syntax error
 * or a missing table must never let a duplicate run unprotected.
 */
import { type DriverErrorFields, errorChain } from './error-chain.js';

/** Node's socket and DNS codes. */
const NETWORK_CODES = [
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
];

/** mysql2's codes for a lost, killed or refused connection. */
const MYSQL_CODES = [
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR',
  'ER_CON_COUNT_ERROR',
  'ER_TOO_MANY_USER_CONNECTIONS',
  'ER_SERVER_SHUTDOWN',
  // MySQL 8 closing a session past wait_timeout.
  'ER_CLIENT_INTERACTION_TIMEOUT',
];

/** MariaDB's 1927 ER_CONNECTION_KILLED (KILL CONNECTION mid-statement), which mysql2 has no name for. */
const MARIADB_ERRNOS = new Set([1927]);

/**
 * SQLSTATEs: 57P01 admin shutdown (pg_terminate_backend), 57P02 crash shutdown, 57P03 cannot connect
 * now, 57P05 idle session timeout, 25P03 idle-in-transaction timeout, 53300 too many connections. Class
 * 08 (connection exception) is matched as a whole.
 */
const POSTGRES_CODES = ['57P01', '57P02', '57P03', '57P05', '25P03', '53300'];

const CONNECTION_CODES = new Set([...NETWORK_CODES, ...MYSQL_CODES, ...POSTGRES_CODES, 'SQLITE_CANTOPEN']);

/**
 * What pg and mysql2 raise, without a code, for a query on a connection that went away (the server
 * ended the session while it was idle, or mid-query).
 */
const DRIVER_MESSAGES = [
  // pg
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  // mysql2
  "Can't add new command when connection is in closed state",
  'Connection lost: The server closed the connection',
];

/**
 * A driver's message alone, or after the SQL that knex puts before it (`select … - Connection
 * terminated unexpectedly`); the SQL carries the query's bindings, so a phrase inside them is not taken.
 */
const DRIVER_MESSAGE = new RegExp(
  `(?:^| - )(?:${DRIVER_MESSAGES.map((m) => m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`,
);

export function isConnectionFailure(error: unknown): boolean {
  return errorChain(error).some(isDrop);
}

function isDrop(e: DriverErrorFields): boolean {
  // knex could not get a connection from its pool in time (acquireConnectionTimeout).
  if (e.name === 'KnexTimeoutError') return true;
  // A coded error is decided by its code alone: a duplicate-key or syntax error quotes the statement's
  // values in its message, and those may contain any text. Its cause is still looked at.
  if (typeof e.code === 'string') return CONNECTION_CODES.has(e.code) || /^08[0-9A-Z]{3}$/.test(e.code);
  // A server error mysql2 has no name for comes with its number alone (socket errors' are negative).
  if (typeof e.errno === 'number' && e.errno > 0) return MARIADB_ERRNOS.has(e.errno);
  return typeof e.message === 'string' && DRIVER_MESSAGE.test(e.message);
}
