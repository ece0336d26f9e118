/**
 * The start-up probes of what a transactional claim on MySQL/MariaDB relies on, and what their answers
 * mean. A second copy of a message is told "in flight" at once by one of two primitives: MariaDB 10.5+'s
 * no-wait insert (`SET STATEMENT innodb_lock_wait_timeout=0 FOR INSERT IGNORE … RETURNING`), or
 * `GET_LOCK(name, 0)`. Compatible servers lack one or the other (MySQL and TiDB have no `SET STATEMENT`;
 * Galera before MDEV-31325 refuses `GET_LOCK`), so both are probed: with one the store has a path, with
 * neither a second copy would wait on the first one's row for `innodb_lock_wait_timeout` (50 s).
 */
import { randomBytes } from 'node:crypto';
import type { ReadinessCheck } from '@idempotent-mq/core';
import type { Knex } from 'knex';
import { isRefused, type Refused, refusedAs, within } from '../check-step.js';
import { withTwoSessions } from '../probe-sessions.js';

/** What the store knows of the server: which of its primitives it can use. */
export interface ServerTraits {
  /** MariaDB 10.5+ (`INSERT … RETURNING`, `SET STATEMENT`) with `innodb_rollback_on_timeout` off. */
  readonly insertsWithoutWaiting: boolean;
  /** MariaDB 10.3+: `idle_transaction_timeout`. MySQL has no limit on an idle transaction alone. */
  readonly limitsIdleTransactions: boolean;
  /** `GET_LOCK` works and excludes a second session. Assumed until the start-up check says otherwise. */
  readonly namedLocks: boolean;
}

/** What `GET_LOCK(name, 0)` answered: 1 acquired, 0 held elsewhere, null an error. */
export interface NamedLockAnswers {
  /** A session, for a name nobody holds. */
  readonly holder: number | null;
  /** A second session, while the first held the name. */
  readonly whileHeld: number | null;
  /** How long the second session waited for its answer (TiDB cannot wait less than 1 s). */
  readonly whileHeldMs: number;
}

export interface MysqlProbe {
  /** The server's version text (`version()`), as the check names the server. */
  readonly version: string;
  readonly namedLock: NamedLockAnswers | Refused;
  /** `SET STATEMENT innodb_lock_wait_timeout=0 FOR SELECT 1`. */
  readonly setStatement: true | Refused;
  /** `@@innodb_rollback_on_timeout`: on, a lock-wait timeout undoes the whole transaction. */
  readonly rollbackOnTimeout: boolean;
  /** `SET SESSION idle_transaction_timeout` (to its own value). */
  readonly idleLimit: true | Refused;
}

/** A GET_LOCK answer slower than this holds a consumer slot for it: reported, not refused. */
const SLOW_ANSWER_MS = 500;
const GET_LOCK = 'select get_lock(?, 0) as acquired';

/**
 * MariaDB's major * 100 + minor from its version text, as `version()` gives it or as the check names the
 * server (`10.11.19-MariaDB-…`, `MariaDB 10.11.19` → 1011); 0 on anything else.
 */
export function mariadbVersion(version: string): number {
  const match = /^(\d+)\.(\d+)\S*-mariadb/i.exec(version) ?? /^mariadb (\d+)\.(\d+)/i.exec(version);
  return match ? Number(match[1]) * 100 + Number(match[2]) : 0;
}

/** Asks the server; a dropped connection or a step without an answer is thrown, not taken for a refusal. */
export async function probeMysql(knex: Knex, version: string): Promise<MysqlProbe> {
  // A name of its own per probe (at most 64 characters): two processes starting at once must not meet on it.
  const name = `idempotent-mq:probe:${randomBytes(12).toString('base64url')}`;
  const namedLock = await refusedAs(() =>
    withTwoSessions(knex, async (first, second) => {
      const holder = acquired(await first.raw(GET_LOCK, [name]));
      try {
        const started = performance.now();
        const whileHeld = acquired(await second.raw(GET_LOCK, [name]));
        const whileHeldMs = Math.round(performance.now() - started);
        // A lock that does not exclude was taken twice: give it back from both sessions.
        if (whileHeld === 1) await second.raw('select release_lock(?)', [name]);
        return { holder, whileHeld, whileHeldMs };
      } finally {
        if (holder === 1) await first.raw('select release_lock(?)', [name]);
      }
    }),
  );
  const setStatement = await refusedAs(async () => {
    const sql = 'set statement innodb_lock_wait_timeout=0 for select 1 as one';
    await within(sql, knex.raw(sql));
    return true as const;
  });
  const rollback = await refusedAs(async () => {
    const sql = 'select @@innodb_rollback_on_timeout as rollback_on_timeout';
    const [rows] = (await within(sql, knex.raw(sql))) as [{ rollback_on_timeout: unknown }[]];
    return Number(rows[0]?.rollback_on_timeout) === 1;
  });
  const idleLimit = await refusedAs(async () => {
    // To its own value: the probe changes nothing on the pooled session it runs on.
    const sql = 'set session idle_transaction_timeout = @@session.idle_transaction_timeout';
    await within(sql, knex.raw(sql));
    return true as const;
  });
  // A server without InnoDB's setting (TiDB) has no SET STATEMENT either: the answer does not matter then.
  return { version, namedLock, setStatement, rollbackOnTimeout: rollback === true, idleLimit };
}

/**
 * The checks the probe's answers make, and the traits the store adopts: a pure function, so that
 * servers not at hand here (MySQL, TiDB, Galera before MDEV-31325) are tested with their answers as data.
 */
export function mysqlChecks(
  server: string,
  probe: MysqlProbe,
): { checks: ReadinessCheck[]; traits: ServerTraits } {
  const mariadb = mariadbVersion(probe.version);
  const lock = probe.namedLock;
  const namedLocks = !isRefused(lock) && lock.holder === 1 && lock.whileHeld === 0;
  const whyNoWait = isRefused(probe.setStatement)
    ? `SET STATEMENT … FOR is refused (${probe.setStatement.refused})`
    : mariadb < 1005
      ? 'INSERT … RETURNING needs MariaDB 10.5'
      : probe.rollbackOnTimeout
        ? 'innodb_rollback_on_timeout is ON, so a lock-wait timeout would undo the whole transaction'
        : undefined;
  const traits: ServerTraits = {
    insertsWithoutWaiting: whyNoWait === undefined,
    limitsIdleTransactions: !isRefused(probe.idleLimit),
    namedLocks,
  };
  return {
    checks: [inFlightCheck(server, lock, namedLocks, whyNoWait), idleLimitCheck(server, probe)],
    traits,
  };
}

function inFlightCheck(
  server: string,
  lock: NamedLockAnswers | Refused,
  namedLocks: boolean,
  whyNoWait: string | undefined,
): ReadinessCheck {
  const name = 'in-flight answer';
  const getLock = isRefused(lock)
    ? `GET_LOCK is refused (${lock.refused})`
    : lock.holder !== 1
      ? `GET_LOCK(name, 0) answered ${lock.holder} for a name nobody holds`
      : lock.whileHeld !== 0
        ? `GET_LOCK(name, 0) answered ${lock.whileHeld} to a second session while another held the name: it does not exclude`
        : undefined;
  if (whyNoWait === undefined) {
    return {
      name,
      status: 'ok',
      detail:
        `${server}: the claim's insert does not wait (SET STATEMENT innodb_lock_wait_timeout=0 FOR INSERT ` +
        `IGNORE … RETURNING), so a second copy is told "in flight" at once` +
        (namedLocks
          ? '; expired claims are taken over under GET_LOCK.'
          : `. ${getLock}: expired claims are taken over without it (two copies racing to one takeover end ` +
            'in a deadlock, which the engine runs again).'),
    };
  }
  if (namedLocks && !isRefused(lock)) {
    const slow = lock.whileHeldMs >= SLOW_ANSWER_MS;
    return {
      name,
      status: slow ? 'degraded' : 'ok',
      detail:
        `${server}: GET_LOCK(name, 0) excludes a second session` +
        (slow
          ? `, but answered it after ${lock.whileHeldMs} ms: a second copy holds a consumer slot that long before it is told "in flight"`
          : ', so a second copy is told "in flight" at once') +
        ` (the no-wait insert is not available: ${whyNoWait}).`,
      ...(slow ? { fix: 'Use a server whose GET_LOCK(name, 0) answers at once, or accept the wait.' } : {}),
    };
  }
  return {
    name,
    status: 'failed',
    detail:
      `${server}: ${getLock}, and ${whyNoWait}. With neither, a second copy of a message in flight would ` +
      `wait on the first one's row for up to innodb_lock_wait_timeout (50 s by default) instead of being ` +
      'told "in flight".',
    fix:
      "Run these handlers in lease mode (mode: 'lease' on @Idempotent), or use a server with a working " +
      'GET_LOCK, or MariaDB 10.5+ (SET STATEMENT … FOR).',
  };
}

function idleLimitCheck(server: string, probe: MysqlProbe): ReadinessCheck {
  const name = 'idle transaction limit';
  if (!isRefused(probe.idleLimit)) {
    return {
      name,
      status: 'ok',
      detail:
        "idle_transaction_timeout is settable: the store sets it on its sessions to the claim's lease, so the " +
        'server ends a store transaction left idle that long (a frozen consumer).',
    };
  }
  return {
    name,
    status: 'degraded',
    detail:
      `${server} has no idle_transaction_timeout (${probe.idleLimit.refused}): a consumer that freezes while ` +
      'it holds a store transaction keeps its tokens locked until its connection dies.',
    fix:
      "Lower wait_timeout in knex's pool.afterCreate if closing idle pooled connections is acceptable, use " +
      'MariaDB 10.3+, or accept the risk.',
  };
}

function acquired(result: unknown): number | null {
  const [rows] = result as [{ acquired: unknown }[]];
  const value = rows[0]?.acquired;
  return value === null || value === undefined ? null : Number(value);
}
