/** The store contract of @idempotent-mq/testing, on each real database. */
import { describeStoreContract } from '@idempotent-mq/testing/vitest';
import { afterAll, beforeAll, describe } from 'vitest';
import { createIdempotencyTable, dropIdempotencyTable, KnexIdempotencyStore } from '../src/index.js';
import { DIALECTS, openDatabase, sleep, type TestDatabase, uniqueTable } from './support/databases.js';

for (const dialect of DIALECTS) {
  describe(dialect, () => {
    const tableName = uniqueTable();
    let db: TestDatabase;
    beforeAll(async () => {
      db = openDatabase(dialect);
      await createIdempotencyTable(db.knex, { tableName });
    });
    afterAll(async () => {
      await dropIdempotencyTable(db.knex, { tableName });
      await db.close();
    });
    // Leases are compared against the database's clock, so the suite sleeps for real.
    describeStoreContract(`KnexIdempotencyStore (${dialect})`, async () => ({
      store: new KnexIdempotencyStore(db.knex, { tableName }),
      advance: sleep,
      leaseMs: 300,
    }));
  });
}
