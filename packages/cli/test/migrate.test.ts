/** `migrate` and `migrate --status` on each SQL database; what a store without a table says. */

import { join } from 'node:path';
import { createIdempotencyTable, dropIdempotencyTable } from '@idempotent-mq/knex';
import knexModule, { type Knex } from 'knex';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  cli,
  MYSQL_URL,
  PG_URL,
  REDIS_URL,
  removeScratch,
  scratchDir,
  uniqueScope,
  uniqueTable,
} from './support/cli.js';

afterAll(removeScratch);

const DATABASES = [
  { name: 'postgresql', url: () => PG_URL, client: 'pg' },
  { name: 'mysql', url: () => MYSQL_URL, client: 'mysql2' },
  { name: 'sqlite', url: () => `sqlite:${join(scratchDir(), 'migrate.db')}`, client: 'better-sqlite3' },
] as const;

for (const database of DATABASES) {
  describe(`migrate on ${database.name}`, () => {
    const opened: { knex: Knex; tables: string[] }[] = [];
    const open = (url: string) => {
      const connection =
        database.client === 'better-sqlite3' ? { filename: url.slice('sqlite:'.length) } : url;
      const knex = knexModule({
        client: database.client,
        connection,
        useNullAsDefault: true,
        pool: { min: 0, max: 2 },
      });
      const entry = { knex, tables: [] as string[] };
      opened.push(entry);
      return entry;
    };
    afterEach(async () => {
      for (const { knex, tables } of opened.splice(0)) {
        for (const table of tables) await knex.schema.dropTableIfExists(table);
        await knex.destroy();
      }
    });

    it('status shows the migration pending; migrate creates the table; then it is up to date', async () => {
      const url = database.url();
      const tableName = uniqueTable();
      open(url).tables.push(tableName, `${tableName}_migrations`, `${tableName}_migrations_lock`);
      const env = { IDEMPOTENT_MQ_DATABASE_URL: url, IDEMPOTENT_MQ_TABLE: tableName };

      const before = await cli(['migrate', '--status', '--json'], { env });
      expect(before.code).toBe(0);
      expect(before.json()).toMatchObject({
        command: 'migrate',
        status: true,
        table: tableName,
        tableExists: false,
        migrationsTable: `${tableName}_migrations`,
        applied: [],
        pending: ['0001_idempotency_tokens'],
        upToDate: false,
      });

      const migrated = await cli(['migrate', '--json'], { env });
      expect(migrated.code).toBe(0);
      expect(migrated.json()).toMatchObject({ ran: ['0001_idempotency_tokens'], tableExisted: false });

      const after = await cli(['migrate', '--status'], { env });
      expect(after.stdout).toContain(`table ${tableName} exists`);
      expect(after.stdout).toContain('applied  0001_idempotency_tokens');
      expect(after.stdout).toContain('up to date');
      expect((await cli(['migrate'], { env })).stdout).toContain('already up to date');
      // The table is the store's: a token lookup now answers "not found", not "no table".
      expect((await cli(['inspect', uniqueScope(), 'K'], { env })).code).toBe(3);
    });

    it('migrate adopts a table that createIdempotencyTable made at start-up', async () => {
      const url = database.url();
      const tableName = uniqueTable();
      const { knex, tables } = open(url);
      tables.push(tableName, `${tableName}_migrations`, `${tableName}_migrations_lock`);
      await createIdempotencyTable(knex, { tableName });
      const run = await cli(['migrate'], {
        env: { IDEMPOTENT_MQ_DATABASE_URL: url, IDEMPOTENT_MQ_TABLE: tableName },
      });
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`table ${tableName} existed already: adopted as it is`);
      await dropIdempotencyTable(knex, { tableName });
    });

    it('a store whose table is missing fails with exit 1 and names migrate', async () => {
      const env = { IDEMPOTENT_MQ_DATABASE_URL: database.url(), IDEMPOTENT_MQ_TABLE: uniqueTable() };
      const run = await cli(['inspect', uniqueScope(), 'K'], { env });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('does not exist');
      expect(run.stderr).toContain('idempotent-mq migrate');
    });
  });
}

describe('migrate on a Redis store', () => {
  it('is refused as bad usage (exit 2): Redis needs no table', async () => {
    const run = await cli(['migrate', '--json'], { env: { IDEMPOTENT_MQ_STORE_REDIS_URL: REDIS_URL } });
    expect(run.code).toBe(2);
    expect(run.json()).toMatchObject({ command: 'migrate', error: { code: 'UNSUPPORTED', exitCode: 2 } });
    expect(run.stderr).toContain('Redis, which needs no table');
  });
});
