/**
 * Tells a failure that the same transaction may pass if run again at once (a deadlock, a serialization
 * failure, a busy database) from every other one. The engine reruns the whole transaction on these; a
 * connection drop, a unique violation or a missing table would only fail again.
 */
import { type DriverErrorFields, errorChain } from './error-chain.js';

/** SQLSTATEs: 40001 serialization failure, 40P01 deadlock detected. */
const POSTGRES_CODES = new Set(['40001', '40P01']);

/** InnoDB chose this transaction as a deadlock's victim (1213), or a lock wait ran out (1205). */
const MYSQL_ERRNOS = new Set([1213, 1205]);
const MYSQL_CODES = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT']);

export function isTransientFailure(error: unknown): boolean {
  return errorChain(error).some(isTransient);
}

/**
 * 26000 (no such prepared statement) and 42P05 (it exists already) about one of the store's own named
 * statements: the server and the driver disagreed on what the connection holds (a DEALLOCATE, a pooler);
 * the PostgreSQL dialect has set the driver right, so the rerun prepares or reuses it.
 */
const PREPARED_CODES = new Set(['26000', '42P05']);
const OWN_STATEMENT = /"idempotent_mq_[0-9a-f]+"/;

function isTransient(e: DriverErrorFields): boolean {
  if (typeof e.errno === 'number' && MYSQL_ERRNOS.has(e.errno)) return true;
  if (typeof e.code !== 'string') return false;
  if (POSTGRES_CODES.has(e.code) || MYSQL_CODES.has(e.code)) return true;
  if (PREPARED_CODES.has(e.code)) return OWN_STATEMENT.test(String(e.message));
  // SQLITE_BUSY and its extended codes (SQLITE_BUSY_SNAPSHOT, _RECOVERY, _TIMEOUT): another connection
  // holds the write lock, or a WAL snapshot went stale; SQLITE_LOCKED*: a conflict on a shared cache.
  return /^SQLITE_(BUSY|LOCKED)(_[A-Z]+)?$/.test(e.code);
}
