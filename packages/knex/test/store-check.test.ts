/**
 * The store's start-up check on each real database: a ready store passes; a table never migrated, a
 * dropped column, a narrow key column and a missing unique index fail, naming the fix; a database on a
 * closed port or one that never answers fails "reachable"; the primitives of transactional mode are
 * probed on the server (PostgreSQL's advisory lock and set_config shadowed by stubs, as a compatible
 * server with stub functions would answer), and the store uses what it found.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import net from 'node:net';
import { type ClaimResult, InvalidOptionError, type ReadinessCheck } from '@idempotent-mq/core/adapter';
import knexModule, { type Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MysqlDialect } from '../src/dialects/mysql.js';
import {
  createIdempotencyTable,
  dropIdempotencyTable,
  IdempotencyTableMissingError,
  KnexIdempotencyStore,
} from '../src/index.js';
import {
  DIALECTS,
  MYSQL_URL,
  openDatabase,
  PG_URL,
  sleep,
  type TestDatabase,
  uniqueTable,
} from './support/databases.js';

const only = (checks: readonly ReadinessCheck[], name: string): ReadinessCheck => {
  const found = checks.filter((c) => c.name === name);
  expect(found, `one check named ${name} in ${JSON.stringify(checks, null, 2)}`).toHaveLength(1);
  return found[0] as ReadinessCheck;
};
const failedOf = (checks: readonly ReadinessCheck[]) => checks.filter((c) => c.status === 'failed');

for (const dialect of DIALECTS) {
  describe(`KnexIdempotencyStore.check on ${dialect}`, () => {
    let db: TestDatabase;
    const tables: string[] = [];
    const table = async (options: { keyLength?: number } = {}): Promise<string> => {
      const tableName = uniqueTable('chk');
      tables.push(tableName);
      await createIdempotencyTable(db.knex, { tableName, ...options });
      return tableName;
    };
    beforeAll(() => {
      db = openDatabase(dialect);
    });
    afterAll(async () => {
      for (const tableName of tables) await dropIdempotencyTable(db.knex, { tableName });
      await db.close();
    });

    it('a migrated table on a working server: every check is ok, transactional or not', async () => {
      const store = new KnexIdempotencyStore(db.knex, { tableName: await table() });
      const lease = await store.check({ transactional: false });
      expect(lease.map((c) => [c.name, c.status])).toEqual([
        ['reachable', 'ok'],
        [expect.stringMatching(/^table "chk_/), 'ok'],
        ['transactional primitives', 'ok'],
      ]);
      expect(only(lease, 'transactional primitives').detail).toMatch(/not probed/);
      expect(lease[1]?.detail).toMatch(/12 columns .* unique index .* \(scope, key\)/);

      const transactional = await store.check({ transactional: true });
      expect(failedOf(transactional)).toEqual([]);
      expect(transactional.filter((c) => c.status !== 'ok')).toEqual([]);
      const server = only(transactional, 'reachable').detail;
      switch (dialect) {
        case 'postgresql':
          expect(server).toMatch(/^PostgreSQL \d+/);
          expect(only(transactional, 'in-flight answer').detail).toMatch(
            /pg_try_advisory_xact_lock excludes a second session/,
          );
          expect(only(transactional, 'idle transaction limit').detail).toMatch(/accepted/);
          break;
        case 'mysql':
          expect(server).toMatch(/^MariaDB 10\./);
          expect(only(transactional, 'in-flight answer').detail).toMatch(
            /SET STATEMENT innodb_lock_wait_timeout=0 FOR INSERT IGNORE .* under GET_LOCK/,
          );
          expect(only(transactional, 'idle transaction limit').detail).toMatch(/settable/);
          break;
        case 'sqlite':
          expect(server).toMatch(/^SQLite 3\./);
          expect(only(transactional, 'transactions').detail).toMatch(
            /journal_mode=wal, busy_timeout=\d+ ms.*one at a time per process/s,
          );
          break;
      }
    });

    it('a table never migrated: the claims would fail on every delivery; the check fails once, naming the migration', async () => {
      const tableName = uniqueTable('never');
      const store = new KnexIdempotencyStore(db.knex, { tableName });
      // What the registry would meet on every message, 17 times each, without the check.
      await expect(
        store.claim({ token: { scope: 's', key: 'k' }, owner: 'o', leaseMs: 1_000 }),
      ).rejects.toBeInstanceOf(IdempotencyTableMissingError);

      const checks = await store.check({ transactional: false });
      expect(failedOf(checks)).toEqual([
        {
          name: `table "${tableName}"`,
          status: 'failed',
          detail: expect.stringMatching(/does not exist/),
          fix: expect.stringContaining(
            `idempotencyMigration({ tableName: '${tableName}' }) from @idempotent-mq/knex`,
          ),
        },
      ]);
      expect(failedOf(checks)[0]?.fix).toContain(
        `createIdempotencyTable(knex, { tableName: '${tableName}' })`,
      );
      expect(only(checks, 'reachable').status).toBe('ok');
    });

    it('a dropped column is named, and so is every other one missing', async () => {
      const tableName = await table();
      await db.knex.schema.alterTable(tableName, (t) => {
        t.dropColumn('fingerprint');
        t.dropColumn('completed_at');
      });
      const store = new KnexIdempotencyStore(db.knex, { tableName });
      const [problem, ...more] = failedOf(await store.check({ transactional: false }));
      expect(more).toEqual([]);
      expect(problem?.detail).toBe(
        'has no columns "fingerprint", "completed_at", which the store reads and writes.',
      );
      expect(problem?.fix).toMatch(/idempotencyMigration/);
    });

    it('a key column narrower than the store writes fails, naming the column and the option', async () => {
      const tableName = await table({ keyLength: 100 });
      const narrow = new KnexIdempotencyStore(db.knex, { tableName, keyLength: 300 });
      const problems = failedOf(await narrow.check({ transactional: false }));
      if (dialect === 'sqlite') {
        // SQLite does not enforce lengths (the store does, before any SQL): nothing to find.
        expect(problems).toEqual([]);
        return;
      }
      expect(problems).toHaveLength(1);
      expect(problems[0]?.detail).toMatch(
        /^column "key" holds 100 code points.*; the store writes up to 300 \(its keyLength\)\.$/,
      );
      expect(problems[0]?.fix).toBe("Give the store the table's keyLength (100), or widen the column.");
      // The same table with the store's keyLength matching passes.
      const matching = new KnexIdempotencyStore(db.knex, { tableName, keyLength: 100 });
      expect(failedOf(await matching.check({ transactional: false }))).toEqual([]);
    });

    it('a table without its unique index on (scope, key) fails: two copies could both claim a token', async () => {
      const tableName = await table();
      await db.knex.schema.alterTable(tableName, (t) => {
        t.dropUnique(['scope', 'key'], `${tableName}_token_uq`);
        // A unique index on other columns does not count.
        t.unique(['scope', 'owner'], { indexName: `${tableName}_other_uq` });
      });
      const store = new KnexIdempotencyStore(db.knex, { tableName });
      const problems = failedOf(await store.check({ transactional: false }));
      expect(problems).toHaveLength(1);
      expect(problems[0]?.detail).toMatch(/no unique index on exactly \(scope, key\)/);
      expect(problems[0]?.fix).toContain(`${tableName}_token_uq`);
    });

    // knex cannot create an index on an attached SQLite file (`create index … on billing.t` is not SQLite's syntax).
    if (dialect !== 'sqlite')
      it('a schema-qualified table name is looked up as the store names it', async () => {
        await db.knex.raw(
          dialect === 'postgresql'
            ? 'create schema if not exists billing'
            : 'create database if not exists billing',
        );
        const tableName = `billing.${uniqueTable('chk')}`;
        const store = new KnexIdempotencyStore(db.knex, { tableName });
        expect(failedOf(await store.check({ transactional: false }))[0]?.detail).toMatch(/does not exist/);
        await createIdempotencyTable(db.knex, { tableName });
        try {
          expect(failedOf(await store.check({ transactional: false }))).toEqual([]);
        } finally {
          await dropIdempotencyTable(db.knex, { tableName });
        }
      });
  });
}

describe('KnexIdempotencyStore.check: a database that cannot be reached', () => {
  const unreachable: Record<string, () => Knex> = {
    postgresql: () => knexModule({ client: 'pg', connection: 'postgres://postgres:secret@127.0.0.1:1/test' }),
    mysql: () => knexModule({ client: 'mysql2', connection: 'mysql://root@127.0.0.1:1/test' }),
    sqlite: () =>
      knexModule({
        client: 'better-sqlite3',
        connection: { filename: `/nonexistent-${randomUUID()}/test.db` },
        useNullAsDefault: true,
      }),
  };
  for (const [dialect, make] of Object.entries(unreachable)) {
    it(`${dialect}: one failed "reachable" with the driver's error and the fix, nothing else probed`, async () => {
      const knex = make();
      try {
        const store = new KnexIdempotencyStore(knex);
        const started = performance.now();
        const checks = await store.check({ transactional: true });
        expect(performance.now() - started).toBeLessThan(2_000);
        expect(checks).toHaveLength(1);
        expect(checks[0]).toMatchObject({
          name: 'reachable',
          status: 'failed',
          detail: expect.stringMatching(
            dialect === 'sqlite'
              ? /^the first statement on the SQLite database failed: Cannot open database because the directory does not exist\.$/
              : /cannot be reached: .*ECONNREFUSED/,
          ),
          fix: expect.stringMatching(dialect === 'sqlite' ? /SQLite file's path/ : /DATABASE_URL.*server up/),
        });
        expect(checks[0]?.detail).not.toContain('secret');
      } finally {
        await knex.destroy();
      }
    });
  }

  it('a server that accepts the connection and never answers: "reachable" fails after its bound, not later', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    const knex = knexModule({
      client: 'pg',
      connection: `postgres://postgres@127.0.0.1:${port}/test`,
      acquireConnectionTimeout: 7_000,
    });
    try {
      const started = performance.now();
      const checks = await new KnexIdempotencyStore(knex).check({ transactional: false });
      const took = performance.now() - started;
      expect(checks).toEqual([
        {
          name: 'reachable',
          status: 'failed',
          detail: 'the PostgreSQL database did not answer within 5000 ms.',
          fix: expect.stringMatching(/DATABASE_URL/),
        },
      ]);
      expect(took).toBeGreaterThan(4_900);
      expect(took).toBeLessThan(6_000);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
      await knex.destroy();
    }
  });
});

describe('PostgreSQL-compatible servers whose functions are stubs (shadowed here through search_path)', () => {
  const stub = `stub_${randomBytes(6).toString('hex')}`;
  const tableName = uniqueTable('stub');
  let admin: TestDatabase;
  /** A knex whose sessions resolve functions from the stub schema first: search_path = stub, pg_catalog, public. */
  let stubbed: Knex;
  beforeAll(async () => {
    admin = openDatabase('postgresql');
    await admin.knex.raw(`create schema ${stub}`);
    await createIdempotencyTable(admin.knex, { tableName });
    stubbed = knexModule({
      client: 'pg',
      connection: PG_URL,
      searchPath: [stub, 'pg_catalog', 'public'],
      pool: { min: 0, max: 6 },
    });
  });
  afterAll(async () => {
    await stubbed.destroy();
    await dropIdempotencyTable(admin.knex, { tableName });
    await admin.knex.raw(`drop schema ${stub} cascade`);
    await admin.close();
  });

  /** pg_try_advisory_xact_lock on the same key from two sessions, the first inside a transaction. */
  const twoSessions = async (knex: Knex): Promise<[boolean, boolean]> => {
    const key = '42424242';
    const sql = 'select pg_try_advisory_xact_lock(?::bigint) as acquired';
    const trx = await knex.transaction();
    try {
      const first = (await trx.raw(sql, [key])).rows[0].acquired;
      const second = (await knex.raw(sql, [key])).rows[0].acquired;
      return [first, second];
    } finally {
      await trx.rollback();
    }
  };

  it('advisory locks that answer true to everyone: the stub really wins, and check() fails naming the server, the primitive and the fix', async () => {
    await admin.knex.raw(
      `create or replace function ${stub}.pg_try_advisory_xact_lock(bigint) returns boolean ` +
        "language sql as 'select true'",
    );
    // The shadowing is real: the stubbed knex's second session is given the lock the first holds.
    expect(await twoSessions(admin.knex)).toEqual([true, false]);
    expect(await twoSessions(stubbed)).toEqual([true, true]);

    const store = new KnexIdempotencyStore(stubbed, { tableName });
    const checks = await store.check({ transactional: true });
    const answer = only(checks, 'in-flight answer');
    expect(answer.status).toBe('failed');
    expect(answer.detail).toMatch(
      /^PostgreSQL \d+\.\d+: pg_try_advisory_xact_lock answered true to a second session/,
    );
    expect(answer.detail).toMatch(/do not exclude/);
    expect(answer.fix).toMatch(/lease mode.*PostgreSQL itself/);
    expect(failedOf(checks)).toEqual([answer]);
    // Lease mode needs no such lock: the same store is ready for it.
    expect(failedOf(await store.check({ transactional: false }))).toEqual([]);

    // Why it must not pass: a second copy is not told "in flight"; it waits on the first one's row.
    const token = { scope: 'stub', key: randomUUID() };
    const claim = (trx: Knex.Transaction, owner: string) =>
      store.claim({ token, owner, leaseMs: 5_000, ttlMs: 60_000 }, trx);
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let claimed!: () => void;
    const firstClaimed = new Promise<void>((resolve) => {
      claimed = resolve;
    });
    const first = store.transaction(async (trx) => {
      await claim(trx, 'first');
      claimed();
      await held;
    });
    await firstClaimed;
    let answered: ClaimResult | undefined;
    const second = store
      .transaction((trx) => claim(trx, 'second'))
      .then((r) => {
        answered = r;
      });
    await sleep(500);
    expect(answered).toBeUndefined();
    release();
    await first;
    await second;
    expect(answered).toMatchObject({ status: 'exists', record: { status: 'completed', owner: 'first' } });
    await admin.knex.raw(`drop function ${stub}.pg_try_advisory_xact_lock(bigint)`);
  });

  it('a refused idle-transaction limit: reported degraded, and the store then claims without it', async () => {
    await admin.knex.raw(
      `create or replace function ${stub}.set_config(text, text, boolean) returns text language plpgsql as ` +
        `$$ begin raise exception 'parameter "%" cannot be set', $1 using errcode = '55P02'; end $$`,
    );
    try {
      const store = new KnexIdempotencyStore(stubbed, { tableName });
      const claimInTx = () =>
        store.transaction((trx) =>
          store.claim(
            { token: { scope: 'idle', key: randomUUID() }, owner: 'o', leaseMs: 5_000, ttlMs: 60_000 },
            trx,
          ),
        );
      // Before the check the store assumes the setting, as PostgreSQL has it: every claim fails.
      await expect(claimInTx()).rejects.toThrow(/cannot be set/);

      const checks = await store.check({ transactional: true });
      const limit = only(checks, 'idle transaction limit');
      expect(limit).toMatchObject({
        status: 'degraded',
        detail: expect.stringMatching(
          /^PostgreSQL \d+\.\d+ refused set_config\('idle_in_transaction_session_timeout', …, true\) \(55P02: .*cannot be set\)\. The store claims without it/,
        ),
      });
      expect(limit.fix).toMatch(/ALTER ROLE/);
      expect(failedOf(checks)).toEqual([]);
      // It used what it found: the claims now leave the setting out.
      await expect(claimInTx()).resolves.toMatchObject({ status: 'claimed' });
    } finally {
      await admin.knex.raw(`drop function ${stub}.set_config(text, text, boolean)`);
    }
  });
});

describe('MySQL/MariaDB: the store takes the path the probe found', () => {
  const tableName = uniqueTable('path');
  let db: TestDatabase;
  let store: KnexIdempotencyStore;
  beforeAll(async () => {
    db = openDatabase('mysql');
    await createIdempotencyTable(db.knex, { tableName });
    store = new KnexIdempotencyStore(db.knex, { tableName });
  });
  afterAll(async () => {
    await dropIdempotencyTable(db.knex, { tableName });
    await db.close();
  });
  /** The statements the store sends while `work` runs. */
  const statements = async (work: () => Promise<unknown>): Promise<string[]> => {
    const sent: string[] = [];
    const listen = (q: { sql: string }) => sent.push(q.sql);
    db.knex.on('query', listen);
    try {
      await work();
    } finally {
      db.knex.off('query', listen);
    }
    return sent;
  };
  /** The probe's answers as another server would give them; this MariaDB has every primitive. */
  const adopt = (traits: {
    insertsWithoutWaiting: boolean;
    limitsIdleTransactions: boolean;
    namedLocks: boolean;
  }) => (store as unknown as { dialect: MysqlDialect }).dialect.adopt(traits);
  /** A claim made and left to expire outside any transaction, then taken over in a store transaction. */
  const takeOver = async (): Promise<string[]> => {
    const token = { scope: 'path', key: randomUUID() };
    await store.claim({ token, owner: 'dead', leaseMs: 1 });
    await sleep(5);
    return statements(async () => {
      const result = await store.transaction((trx) =>
        store.claim({ token, owner: 'o', leaseMs: 5_000, ttlMs: 60_000 }, trx),
      );
      expect(result).toMatchObject({ status: 'claimed', takeover: true });
    });
  };
  const fresh = async (): Promise<string[]> =>
    statements(async () => {
      const token = { scope: 'path', key: randomUUID() };
      const result = await store.transaction((trx) =>
        store.claim({ token, owner: 'o', leaseMs: 5_000, ttlMs: 60_000 }, trx),
      );
      expect(result).toMatchObject({ status: 'claimed' });
    });
  const noWait = (sent: string[]) =>
    sent.some((s) => s.startsWith('set statement innodb_lock_wait_timeout=0'));
  const namedLock = (sent: string[]) => sent.some((s) => s.includes('get_lock('));

  it('after a real probe: a first-time claim is the no-wait insert, an expired claim is taken over under GET_LOCK', async () => {
    expect(failedOf(await store.check({ transactional: true }))).toEqual([]);
    const first = await fresh();
    expect(noWait(first)).toBe(true);
    expect(namedLock(first)).toBe(false);
    expect(namedLock(await takeOver())).toBe(true);
  });

  it('GET_LOCK refused (Galera before MDEV-31325) but SET STATEMENT there: the no-wait insert, and takeovers without the named lock', async () => {
    adopt({ insertsWithoutWaiting: true, limitsIdleTransactions: true, namedLocks: false });
    expect(noWait(await fresh())).toBe(true);
    const takeover = await takeOver();
    expect(noWait(takeover)).toBe(true);
    expect(namedLock(takeover)).toBe(false);
  });

  it('no SET STATEMENT (MySQL, TiDB) but GET_LOCK there: every claim goes through GET_LOCK', async () => {
    adopt({ insertsWithoutWaiting: false, limitsIdleTransactions: false, namedLocks: true });
    const sent = await fresh();
    expect(noWait(sent)).toBe(false);
    expect(namedLock(sent)).toBe(true);
    expect(sent.some((s) => s.startsWith('insert ignore into'))).toBe(true);
    expect(sent.some((s) => s.includes('idle_transaction_timeout'))).toBe(false);
  });
});

describe('KnexIdempotencyStore refuses what is not a knex instance, naming the fix', () => {
  it('a URL string: pass knex({ client, connection: url }), not the URL; its password is not shown', () => {
    const error = (() => {
      try {
        new KnexIdempotencyStore('postgres://app:secret@db:5432/app' as unknown as Knex);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect(error).toMatchObject({ option: 'knex' });
    expect((error as Error).message).toMatch(/pass knex\(\{ client: 'pg', connection: url \}\).*not the URL/);
    expect((error as Error).message).toContain('postgres://app:***@db:5432/app');
    expect((error as Error).message).not.toContain('secret');
  });

  it('a knex configuration object: pass knex(config), not the config', async () => {
    expect(
      () => new KnexIdempotencyStore({ client: 'pg', connection: MYSQL_URL } as unknown as Knex),
    ).toThrow(/Invalid option "knex": expected a knex instance, not its configuration: pass knex\(config\)/);
    expect(() => new KnexIdempotencyStore(undefined as unknown as Knex)).toThrow(/Invalid option "knex"/);
    await expect(createIdempotencyTable('sqlite://x' as unknown as Knex)).rejects.toThrow(/not the URL/);
  });
});
