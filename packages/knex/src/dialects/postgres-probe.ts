/**
 * The start-up probes of what a transactional claim on PostgreSQL relies on, and what their answers mean.
 * A PostgreSQL-compatible server may accept the SQL and still not behave: advisory locks that are stubs
 * answering true to everyone (older CockroachDB) would make a second copy wait on the first one's row
 * instead of being told "in flight". So the lock is taken in one session and asked for from another.
 */
import { randomBytes } from 'node:crypto';
import type { ReadinessCheck } from '@idempotent-mq/core';
import type { Knex } from 'knex';
import { isRefused, type Refused, refusedAs, within } from '../check-step.js';
import { withTwoSessions } from '../probe-sessions.js';

/** What `pg_try_advisory_xact_lock` answered to one key. */
export interface AdvisoryLockAnswers {
  /** A session in a transaction, for a key nobody holds. */
  readonly holder: boolean;
  /** A second session, while the first held the key. */
  readonly whileHeld: boolean;
  /** The second session again, after the first rolled back. */
  readonly afterRelease: boolean;
}

export interface PostgresProbe {
  readonly advisoryLock: AdvisoryLockAnswers | Refused;
  /** `set_config('idle_in_transaction_session_timeout', …, true)` inside a transaction. */
  readonly idleLimit: true | Refused;
}

const TRY_LOCK = 'select pg_try_advisory_xact_lock(?::bigint) as acquired';
const IDLE_LIMIT = "select set_config('idle_in_transaction_session_timeout', ?::text, true) as idle_limit";

/** Asks the server; a dropped connection or a step without an answer is thrown, not taken for a refusal. */
export async function probePostgres(knex: Knex): Promise<PostgresProbe> {
  // A key of its own per probe: two processes starting at once must not meet on it.
  const key = randomBytes(8).readBigInt64BE(0).toString();
  const advisoryLock = await refusedAs(() =>
    withTwoSessions(knex, async (first, second) => {
      await first.raw('begin');
      let holder: boolean;
      let whileHeld: boolean;
      try {
        holder = acquired(await first.raw(TRY_LOCK, [key]));
        whileHeld = acquired(await second.raw(TRY_LOCK, [key]));
      } finally {
        await first.raw('rollback');
      }
      return { holder, whileHeld, afterRelease: acquired(await second.raw(TRY_LOCK, [key])) };
    }),
  );
  const idleLimit = await refusedAs(() =>
    within(
      IDLE_LIMIT,
      knex.transaction(async (trx) => {
        await trx.raw(IDLE_LIMIT, ['60000']);
        return true as const;
      }),
    ),
  );
  return { advisoryLock, idleLimit };
}

/** The checks the probe's answers make; `server` names the server in their words. */
export function postgresChecks(server: string, probe: PostgresProbe): ReadinessCheck[] {
  return [advisoryLockCheck(server, probe.advisoryLock), idleLimitCheck(server, probe.idleLimit)];
}

function advisoryLockCheck(server: string, answers: AdvisoryLockAnswers | Refused): ReadinessCheck {
  const name = 'in-flight answer';
  const fix =
    "Run these handlers in lease mode (mode: 'lease' on @Idempotent), or use PostgreSQL itself, whose " +
    'advisory locks exclude.';
  const failed = (why: string): ReadinessCheck => ({
    name,
    status: 'failed',
    detail: `${server}: ${why}`,
    fix,
  });
  if (isRefused(answers)) {
    return failed(
      `pg_try_advisory_xact_lock was refused (${answers.refused}). Without it a second copy of a message ` +
        `cannot be told "in flight" while the first one's transaction is open.`,
    );
  }
  if (!answers.holder) {
    return failed(
      'pg_try_advisory_xact_lock answered false for a key nobody holds, so every copy would be told "in flight".',
    );
  }
  if (answers.whileHeld) {
    return failed(
      'pg_try_advisory_xact_lock answered true to a second session while another held the same key: its ' +
        'advisory locks do not exclude (stubs, as on older CockroachDB), so a second copy would wait for the ' +
        `first one's transaction instead of being told "in flight".`,
    );
  }
  if (!answers.afterRelease) {
    return failed(
      'pg_try_advisory_xact_lock still held the key after its transaction rolled back, so a token would stay ' +
        'locked after its claim ended.',
    );
  }
  return {
    name,
    status: 'ok',
    detail:
      `${server}: pg_try_advisory_xact_lock excludes a second session and ends with its transaction, so a ` +
      `second copy is told "in flight" at once.`,
  };
}

function idleLimitCheck(server: string, answer: true | Refused): ReadinessCheck {
  const name = 'idle transaction limit';
  if (!isRefused(answer)) {
    return {
      name,
      status: 'ok',
      detail:
        "set_config('idle_in_transaction_session_timeout', …, true) is accepted: the server ends a store " +
        "transaction left idle for longer than its claim's lease (a frozen consumer).",
    };
  }
  return {
    name,
    status: 'degraded',
    detail:
      `${server} refused set_config('idle_in_transaction_session_timeout', …, true) (${answer.refused}). The ` +
      'store claims without it: a consumer that freezes while it holds a store transaction keeps its tokens ' +
      'locked until its connection dies.',
    fix:
      'Allow the setting (the store sets it for its own transactions only), or give the store its own role ' +
      'with idle_in_transaction_session_timeout set (ALTER ROLE … SET), or accept the risk.',
  };
}

function acquired(result: unknown): boolean {
  return (result as { rows: { acquired: unknown }[] }).rows[0]?.acquired === true;
}
