/**
 * What the probes' answers mean, as data: servers not at hand here (MySQL, TiDB, Galera before
 * MDEV-31325, CockroachDB) cannot be asked for real, so the decisions are pure functions of the answers
 * and tested with the answers those servers give. The probes themselves run against the real servers.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type MysqlProbe, mysqlChecks, probeMysql } from '../src/dialects/mysql-probe.js';
import { type PostgresProbe, postgresChecks, probePostgres } from '../src/dialects/postgres-probe.js';
import { openDatabase } from './support/databases.js';

const EXCLUDES = { holder: 1, whileHeld: 0, whileHeldMs: 1 } as const;
const GALERA_REFUSAL = {
  refused:
    "ER_NOT_SUPPORTED_YET: This version of MariaDB doesn't yet support 'GET_LOCK in cluster (WSREP_ON=ON)'",
};
const NO_SET_STATEMENT = {
  refused:
    "ER_PARSE_ERROR: You have an error in your SQL syntax; … near 'statement innodb_lock_wait_timeout=0'",
};
const NO_IDLE_LIMIT = {
  refused: "ER_UNKNOWN_SYSTEM_VARIABLE: Unknown system variable 'idle_transaction_timeout'",
};

const mysql = (server: string, answers: Partial<MysqlProbe>) =>
  mysqlChecks(server, {
    version: server,
    namedLock: EXCLUDES,
    setStatement: true,
    rollbackOnTimeout: false,
    idleLimit: true,
    ...answers,
  });

describe('MySQL-compatible servers: how a second copy is told "in flight"', () => {
  it('GET_LOCK refused and no SET STATEMENT (a MySQL behind a GET_LOCK-refusing layer): no way to answer promptly, so it fails, naming the server and both primitives', () => {
    const { checks, traits } = mysql('MySQL 8.0.36', {
      namedLock: GALERA_REFUSAL,
      setStatement: NO_SET_STATEMENT,
      idleLimit: NO_IDLE_LIMIT,
    });
    expect(checks[0]).toMatchObject({ name: 'in-flight answer', status: 'failed' });
    expect(checks[0]?.detail).toMatch(
      /^MySQL 8\.0\.36: GET_LOCK is refused \(ER_NOT_SUPPORTED_YET.*\), and SET STATEMENT … FOR is refused/,
    );
    expect(checks[0]?.detail).toMatch(/innodb_lock_wait_timeout \(50 s by default\)/);
    expect(checks[0]?.fix).toMatch(/lease mode.*GET_LOCK.*MariaDB 10\.5\+/);
    expect(traits).toEqual({
      insertsWithoutWaiting: false,
      limitsIdleTransactions: false,
      namedLocks: false,
    });
  });

  it('MariaDB Galera before MDEV-31325 (GET_LOCK refused, SET STATEMENT there): ok on the no-wait insert; takeovers go without the named lock', () => {
    const { checks, traits } = mysql('MariaDB 10.6.12', { namedLock: GALERA_REFUSAL });
    expect(checks[0]).toMatchObject({ name: 'in-flight answer', status: 'ok' });
    expect(checks[0]?.detail).toMatch(/does not wait .*GET_LOCK is refused .*taken over without it/);
    expect(traits).toEqual({ insertsWithoutWaiting: true, limitsIdleTransactions: true, namedLocks: false });
  });

  it('MySQL with a working GET_LOCK: ok through GET_LOCK; no idle-transaction limit is degraded, with the fix', () => {
    const { checks, traits } = mysql('MySQL 8.0.36', {
      setStatement: NO_SET_STATEMENT,
      idleLimit: NO_IDLE_LIMIT,
    });
    expect(checks[0]).toMatchObject({ status: 'ok' });
    expect(checks[0]?.detail).toMatch(
      /GET_LOCK\(name, 0\) excludes a second session.*no-wait insert is not available: SET STATEMENT/,
    );
    expect(checks[1]).toMatchObject({ name: 'idle transaction limit', status: 'degraded' });
    expect(checks[1]?.fix).toMatch(/wait_timeout in knex's pool\.afterCreate/);
    expect(traits).toEqual({ insertsWithoutWaiting: false, limitsIdleTransactions: false, namedLocks: true });
  });

  it('TiDB (GET_LOCK waits 1 s at least, no SET STATEMENT): degraded, the wait named', () => {
    const { checks } = mysql('TiDB v7.5.0 (MySQL 8.0.11)', {
      namedLock: { holder: 1, whileHeld: 0, whileHeldMs: 1_003 },
      setStatement: NO_SET_STATEMENT,
    });
    expect(checks[0]).toMatchObject({ status: 'degraded' });
    expect(checks[0]?.detail).toMatch(/answered it after 1003 ms/);
  });

  it('a GET_LOCK that answers 1 to both sessions (a stub) counts as none', () => {
    const { checks, traits } = mysql('MySQL 8.0.36', {
      namedLock: { holder: 1, whileHeld: 1, whileHeldMs: 1 },
      setStatement: NO_SET_STATEMENT,
    });
    expect(checks[0]).toMatchObject({ status: 'failed' });
    expect(checks[0]?.detail).toMatch(
      /answered 1 to a second session while another held the name: it does not exclude/,
    );
    expect(traits.namedLocks).toBe(false);
  });

  it('MariaDB before 10.5 (no INSERT … RETURNING) or with innodb_rollback_on_timeout ON takes the GET_LOCK path, and says why', () => {
    const old = mysql('MariaDB 10.4.32', {});
    expect(old.traits.insertsWithoutWaiting).toBe(false);
    expect(old.checks[0]?.detail).toMatch(/INSERT … RETURNING needs MariaDB 10\.5/);
    const rollback = mysql('MariaDB 10.11.19', { rollbackOnTimeout: true });
    expect(rollback.traits.insertsWithoutWaiting).toBe(false);
    expect(rollback.checks[0]?.detail).toMatch(/innodb_rollback_on_timeout is ON/);
    const neither = mysql('MariaDB 10.4.32', { namedLock: GALERA_REFUSAL });
    expect(neither.checks[0]).toMatchObject({ status: 'failed' });
  });
});

describe('PostgreSQL-compatible servers: the answers of pg_try_advisory_xact_lock', () => {
  const pg = (answers: Partial<PostgresProbe>) =>
    postgresChecks('CockroachDB CCL v23.1.11', {
      advisoryLock: { holder: true, whileHeld: false, afterRelease: true },
      idleLimit: true,
      ...answers,
    });

  it('a missing function, a lock that never grants and one that outlives its transaction all fail', () => {
    const missing = pg({ advisoryLock: { refused: '42883: unknown function: pg_try_advisory_xact_lock()' } });
    expect(missing[0]).toMatchObject({ status: 'failed' });
    expect(missing[0]?.detail).toMatch(
      /^CockroachDB CCL v23\.1\.11: pg_try_advisory_xact_lock was refused \(42883/,
    );
    expect(pg({ advisoryLock: { holder: false, whileHeld: false, afterRelease: false } })[0]?.detail).toMatch(
      /answered false for a key nobody holds/,
    );
    expect(pg({ advisoryLock: { holder: true, whileHeld: false, afterRelease: false } })[0]?.detail).toMatch(
      /still held the key after its transaction rolled back/,
    );
    expect(pg({})[0]).toMatchObject({ status: 'ok' });
  });
});

describe('the probes on the real servers', () => {
  const pgDb = openDatabase('postgresql');
  const mysqlDb = openDatabase('mysql');
  afterAll(async () => {
    await pgDb.close();
    await mysqlDb.close();
  });

  it('PostgreSQL: the lock excludes a second session and ends with its transaction; the idle limit is accepted', async () => {
    expect(await probePostgres(pgDb.knex)).toEqual({
      advisoryLock: { holder: true, whileHeld: false, afterRelease: true },
      idleLimit: true,
    });
  });

  it('MariaDB: GET_LOCK answers 1 then 0 at once; SET STATEMENT and idle_transaction_timeout are there', async () => {
    const names: string[] = [];
    const listen = (q: { sql: string; bindings?: unknown[] }) => {
      if (q.sql.includes('get_lock')) names.push(String(q.bindings?.[0]));
    };
    mysqlDb.knex.on('query', listen);
    const probe = await probeMysql(mysqlDb.knex, 'MariaDB 10.11').finally(() =>
      mysqlDb.knex.off('query', listen),
    );
    expect(probe).toMatchObject({
      namedLock: { holder: 1, whileHeld: 0 },
      setStatement: true,
      rollbackOnTimeout: false,
      idleLimit: true,
    });
    expect((probe.namedLock as { whileHeldMs: number }).whileHeldMs).toBeLessThan(100);
    // Nothing left held: the probe's own name (a fresh one each time) is released.
    expect(new Set(names).size).toBe(1);
    const [[free]] = (await mysqlDb.knex.raw('select is_free_lock(?) as free', [names[0] as string])) as [
      [{ free: number }],
    ];
    expect(free.free).toBe(1);
  });

  it('a pool of one connection: the second session gets a connection of its own', async () => {
    const single = openDatabase('postgresql', { max: 1 });
    try {
      expect((await probePostgres(single.knex)).advisoryLock).toEqual({
        holder: true,
        whileHeld: false,
        afterRelease: true,
      });
    } finally {
      await single.close();
    }
  });
});
