/** The migration and the helper create the same table, on each real database. */
import { afterAll, describe, expect, it } from 'vitest';
import { createIdempotencyTable, dropIdempotencyTable, idempotencyMigration } from '../src/index.js';
import { DIALECTS, openDatabase, uniqueTable } from './support/databases.js';

for (const dialect of DIALECTS) {
  describe(`the token table on ${dialect}`, () => {
    const db = openDatabase(dialect);
    afterAll(() => db.close());

    it('the migration creates a table whose (scope, key) is unique, and drops it again', async () => {
      const tableName = uniqueTable();
      const migration = idempotencyMigration({ tableName });
      await migration.up(db.knex);
      try {
        expect(await db.knex.schema.hasTable(tableName)).toBe(true);
        const row = { scope: 's', key: 'k', status: 'completed', owner: 'o', fence: 1, created_at: 1 };
        await db.knex(tableName).insert(row);
        await expect(db.knex(tableName).insert(row)).rejects.toThrow();
        // Keys differing only by case or a trailing space are different rows.
        await db.knex(tableName).insert({ ...row, key: 'K' });
        await db.knex(tableName).insert({ ...row, key: 'k ' });
        expect(Number((await db.knex(tableName).count({ n: '*' }))[0]?.n)).toBe(3);
      } finally {
        await migration.down(db.knex);
      }
      expect(await db.knex.schema.hasTable(tableName)).toBe(false);
    });

    it('createIdempotencyTable is safe to call at every start-up', async () => {
      const tableName = uniqueTable();
      await createIdempotencyTable(db.knex, { tableName });
      await createIdempotencyTable(db.knex, { tableName });
      expect(await db.knex.schema.hasTable(tableName)).toBe(true);
      await dropIdempotencyTable(db.knex, { tableName });
      expect(await db.knex.schema.hasTable(tableName)).toBe(false);
    });
  });
}
