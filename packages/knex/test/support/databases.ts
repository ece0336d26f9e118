/**
 * Real databases for the tests: PostgreSQL and MariaDB/MySQL from `PG_URL` / `MYSQL_URL` (local defaults),
 * SQLite in a temporary WAL file. A server that does not answer fails the tests; nothing is skipped.
 * Each test file works in its own randomly named tables, since other suites share the servers.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import knexModule, { type Knex } from 'knex';
import { expect } from 'vitest';

export type DialectName = 'postgresql' | 'mysql' | 'sqlite';
export const DIALECTS: readonly DialectName[] = ['postgresql', 'mysql', 'sqlite'];

export const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

/** A table name no other test run uses. */
export function uniqueTable(prefix = 'idem'): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

export interface TestDatabase {
  readonly dialect: DialectName;
  readonly knex: Knex;
  /** Closes the pool and removes the SQLite file. */
  close(): Promise<void>;
}

export function openDatabase(dialect: DialectName, pool: Knex.PoolConfig = {}): TestDatabase {
  switch (dialect) {
    case 'postgresql': {
      const knex = knexModule({ client: 'pg', connection: PG_URL, pool: { min: 0, max: 12, ...pool } });
      return { dialect, knex, close: () => knex.destroy() };
    }
    case 'mysql': {
      const knex = knexModule({
        client: 'mysql2',
        connection: `${MYSQL_URL}${MYSQL_URL.includes('?') ? '&' : '?'}charset=utf8mb4`,
        pool: { min: 0, max: 12, ...pool },
      });
      return { dialect, knex, close: () => knex.destroy() };
    }
    case 'sqlite': {
      const dir = mkdtempSync(join(tmpdir(), 'idem-sqlite-'));
      const knex = knexModule({
        client: 'better-sqlite3',
        connection: { filename: join(dir, 'test.db') },
        useNullAsDefault: true,
        pool: {
          afterCreate: (
            conn: { pragma(sql: string): unknown },
            done: (err: Error | null, conn: unknown) => void,
          ) => {
            conn.pragma('journal_mode = WAL');
            conn.pragma('synchronous = NORMAL');
            done(null, conn);
          },
        },
      });
      return {
        dialect,
        knex,
        close: async () => {
          await knex.destroy();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * On MySQL/MariaDB, that the store's `GET_LOCK` for the token is free (a session lock that outlived its
 * transaction would stay on a pooled connection); elsewhere locks end with the transaction by themselves.
 */
export async function expectLockFree(
  db: TestDatabase,
  tableName: string,
  token: { scope: string; key: string },
): Promise<void> {
  if (db.dialect !== 'mysql') return;
  const digest = createHash('sha256').update(`${tableName}\u0000${token.scope}\u0000${token.key}`).digest();
  const [[free]] = (await db.knex.raw('select is_free_lock(?) as free', [
    `idempotent-mq:${digest.toString('base64url')}`,
  ])) as [[{ free: number }]];
  expect(free.free, `GET_LOCK of ${token.key}`).toBe(1);
}

/** The server's id of the session that runs `db` (a transaction: its connection): a backend pid, a connection id. */
export async function sessionId(
  dialect: 'postgresql' | 'mysql',
  db: Knex | Knex.Transaction,
): Promise<number> {
  if (dialect === 'postgresql') return Number((await db.raw('select pg_backend_pid() as id')).rows[0].id);
  return Number((await db.raw('select connection_id() as id'))[0][0].id);
}

/** Whether the server still has that session. */
export async function sessionAlive(dialect: 'postgresql' | 'mysql', db: Knex, id: number): Promise<boolean> {
  if (dialect === 'postgresql') {
    const found = await db.raw('select count(*)::int as n from pg_stat_activity where pid = ?', [id]);
    return found.rows[0].n > 0;
  }
  const [[found]] = await db.raw('select count(*) as n from information_schema.processlist where id = ?', [
    id,
  ]);
  return Number(found.n) > 0;
}

/**
 * Ends a session from another connection, as an operator or a server restart would
 * (`pg_terminate_backend`, `KILL`), and waits until the server has closed it.
 */
export async function killSession(dialect: 'postgresql' | 'mysql', killer: Knex, id: number): Promise<void> {
  if (dialect === 'postgresql') await killer.raw('select pg_terminate_backend(?, 5000)', [id]);
  else await killer.raw(`kill ${Number(id)}`);
  const until = Date.now() + 5_000;
  while (await sessionAlive(dialect, killer, id)) {
    if (Date.now() > until) throw new Error(`session ${id} still open 5 s after it was killed`);
    await sleep(10);
  }
}
