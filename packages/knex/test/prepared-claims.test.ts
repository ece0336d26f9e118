/**
 * A transactional claim's statements are prepared once per connection: on PostgreSQL as named prepared
 * statements (unless `preparedStatements: false`), on SQLite as a better-sqlite3 statement kept per
 * connection. What must hold: the claims are the same, the table may change under a live connection
 * (recreated, or given a column), knex's query events still see the statements, and a statement is never
 * sent on a transaction that has ended.
 */
import { randomUUID } from 'node:crypto';
import { InvalidOptionError } from '@idempotent-mq/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onTransactionConnection } from '../src/dialects/transaction-connection.js';
import { createIdempotencyTable, dropIdempotencyTable, KnexIdempotencyStore } from '../src/index.js';
import { openDatabase, type TestDatabase, uniqueTable } from './support/databases.js';

const claimIn = (store: KnexIdempotencyStore, key = randomUUID()) =>
  store.transaction((tx) =>
    store.claim({ token: { scope: 'prep', key }, owner: randomUUID(), leaseMs: 5_000, ttlMs: 60_000 }, tx),
  );

/** Claims before and after the table gains a column, and after it is dropped and created again. */
async function claimsSurviveSchemaChanges(db: TestDatabase, tableName: string): Promise<void> {
  const store = new KnexIdempotencyStore(db.knex, { tableName });
  await expect(claimIn(store)).resolves.toMatchObject({ status: 'claimed' });
  await db.knex.schema.alterTable(tableName, (t) => t.text('note').nullable());
  const key = randomUUID();
  await expect(claimIn(store, key)).resolves.toMatchObject({ status: 'claimed' });
  await expect(claimIn(store, key)).resolves.toMatchObject({ status: 'exists' });
  await dropIdempotencyTable(db.knex, { tableName });
  await createIdempotencyTable(db.knex, { tableName });
  await expect(claimIn(store, key)).resolves.toMatchObject({ status: 'claimed' });
}

/** Counts the INSERTs better-sqlite3 prepares on the (one) SQLite connection, until `stop()`. */
async function countInsertPrepares(db: TestDatabase): Promise<{ readonly count: number; stop(): void }> {
  const connection = (await db.knex.client.acquireConnection()) as { prepare: (sql: string) => unknown };
  await db.knex.client.releaseConnection(connection);
  const original = connection.prepare;
  const counter = {
    count: 0,
    stop: () => {
      connection.prepare = original;
    },
  };
  connection.prepare = function (this: unknown, sql: string) {
    if (/^insert into/i.test(sql)) counter.count++;
    return original.call(this, sql);
  };
  return counter;
}

describe('postgresql: named prepared claims', () => {
  const tableName = uniqueTable('prep');
  let db: TestDatabase;
  beforeAll(async () => {
    // One connection: every claim meets the statements the previous ones prepared.
    db = openDatabase('postgresql', { min: 1, max: 1 });
    await createIdempotencyTable(db.knex, { tableName });
  });
  afterAll(async () => {
    await dropIdempotencyTable(db.knex, { tableName });
    await db.close();
  });

  /** Forgets every prepared statement on the (one) connection, on the server and in the driver alike. */
  const freshConnection = async () => {
    const connection = (await db.knex.client.acquireConnection()) as {
      query(sql: string): Promise<unknown>;
      connection: { parsedStatements: Record<string, string> };
    };
    try {
      await connection.query('deallocate all');
      connection.connection.parsedStatements = {};
    } finally {
      await db.knex.client.releaseConnection(connection);
    }
  };

  const preparedOnConnection = async () =>
    (
      await db.knex.raw("select name from pg_prepared_statements where name like 'idempotent\\_mq\\_%'")
    ).rows.map((r: { name: string }) => r.name);

  it('prepares the claim once per connection and reuses it; `false` prepares nothing', async () => {
    const store = new KnexIdempotencyStore(db.knex, { tableName });
    await freshConnection();
    await expect(claimIn(store)).resolves.toMatchObject({ status: 'claimed' });
    const after1 = await preparedOnConnection();
    expect(after1).toHaveLength(1);
    await expect(claimIn(store)).resolves.toMatchObject({ status: 'claimed' });
    // A duplicate adds the second statement (the lock asked again, with the standing row).
    const key = randomUUID();
    await claimIn(store, key);
    await expect(claimIn(store, key)).resolves.toMatchObject({ status: 'exists' });
    expect((await preparedOnConnection()).sort()).toEqual(expect.arrayContaining(after1));
    expect(await preparedOnConnection()).toHaveLength(2);

    await freshConnection();
    const plain = new KnexIdempotencyStore(db.knex, { tableName, preparedStatements: false });
    await expect(claimIn(plain)).resolves.toMatchObject({ status: 'claimed' });
    const dupKey = randomUUID();
    await claimIn(plain, dupKey);
    await expect(claimIn(plain, dupKey)).resolves.toMatchObject({ status: 'exists' });
    expect(await preparedOnConnection()).toHaveLength(0);
  });

  it('keeps claiming when the table gains a column, or is dropped and created again, under a live connection', async () => {
    // A prepared `RETURNING *` would fail after the new column: "cached plan must not change result type".
    await claimsSurviveSchemaChanges(db, tableName);
  });

  it('a statement the server lost behind the driver (DEALLOCATE ALL, a pooler) fails one claim as transient; the next prepares it again', async () => {
    const store = new KnexIdempotencyStore(db.knex, { tableName });
    await expect(claimIn(store)).resolves.toMatchObject({ status: 'claimed' });
    await db.knex.raw('deallocate all'); // the driver still believes the claim is prepared
    const lost = await claimIn(store).catch((error: unknown) => error);
    expect(String(lost)).toMatch(/prepared statement "idempotent_mq_[0-9a-f]+" does not exist/);
    expect(store.isTransient(lost)).toBe(true);
    await expect(claimIn(store)).resolves.toMatchObject({ status: 'claimed' });
    // The other way round: the server holds it, the driver does not.
    const connection = (await db.knex.client.acquireConnection()) as {
      connection: { parsedStatements: Record<string, string> };
    };
    connection.connection.parsedStatements = {};
    await db.knex.client.releaseConnection(connection);
    const found = await claimIn(store).catch((error: unknown) => error);
    expect(String(found)).toMatch(/prepared statement "idempotent_mq_[0-9a-f]+" already exists/);
    expect(store.isTransient(found)).toBe(true);
    await expect(claimIn(store)).resolves.toMatchObject({ status: 'claimed' });
  });

  it("announces the prepared statements on knex's query events", async () => {
    const store = new KnexIdempotencyStore(db.knex, { tableName });
    const seen: string[] = [];
    const responses: string[] = [];
    const onQuery = (q: { sql: string }) => seen.push(q.sql);
    const onResponse = (_r: unknown, q: { sql: string }) => responses.push(q.sql);
    db.knex.on('query', onQuery).on('query-response', onResponse);
    try {
      await claimIn(store);
    } finally {
      db.knex.removeListener('query', onQuery).removeListener('query-response', onResponse);
    }
    expect(seen.filter((sql) => /^insert into/i.test(sql))).toHaveLength(1);
    expect(seen.find((sql) => /^insert into/i.test(sql))).toMatch(/\$1::varchar/);
    expect(responses.filter((sql) => /^insert into/i.test(sql))).toHaveLength(1);
  });

  it('another driver than node-postgres (pg-native) goes through knex: nothing prepared', async () => {
    await freshConnection();
    const client = db.knex.client as { driverName: string };
    const driver = client.driverName;
    client.driverName = 'pgnative';
    try {
      const store = new KnexIdempotencyStore(db.knex, { tableName });
      const key = randomUUID();
      await expect(claimIn(store, key)).resolves.toMatchObject({ status: 'claimed' });
      await expect(claimIn(store, key)).resolves.toMatchObject({ status: 'exists' });
    } finally {
      client.driverName = driver;
    }
    expect(await preparedOnConnection()).toHaveLength(0);
  });

  it('refuses a preparedStatements that is not a boolean, naming the option', () => {
    expect(
      () => new KnexIdempotencyStore(db.knex, { tableName, preparedStatements: 'yes' as never }),
    ).toThrow(InvalidOptionError);
    expect(
      () => new KnexIdempotencyStore(db.knex, { tableName, preparedStatements: 'yes' as never }),
    ).toThrow(/preparedStatements/);
  });
});

describe('sqlite: the claim prepared once per connection', () => {
  const tableName = uniqueTable('prep');
  let db: TestDatabase;
  beforeAll(async () => {
    db = openDatabase('sqlite');
    await createIdempotencyTable(db.knex, { tableName });
  });
  afterAll(async () => {
    await dropIdempotencyTable(db.knex, { tableName });
    await db.close();
  });

  it('prepares the claim once, however many claims follow', async () => {
    const store = new KnexIdempotencyStore(db.knex, { tableName });
    await claimIn(store); // prepared here
    const prepares = await countInsertPrepares(db);
    try {
      for (let i = 0; i < 5; i++) await expect(claimIn(store)).resolves.toMatchObject({ status: 'claimed' });
      const key = randomUUID();
      await claimIn(store, key);
      await expect(claimIn(store, key)).resolves.toMatchObject({ status: 'exists' });
    } finally {
      prepares.stop();
    }
    expect(prepares.count).toBe(0);
  });

  it('another driver than better-sqlite3 (node-sqlite3) goes through knex, which prepares each claim', async () => {
    const client = db.knex.client as { driverName: string };
    const driver = client.driverName;
    client.driverName = 'sqlite3';
    const prepares = await countInsertPrepares(db);
    try {
      const store = new KnexIdempotencyStore(db.knex, { tableName });
      for (let i = 0; i < 3; i++) await expect(claimIn(store)).resolves.toMatchObject({ status: 'claimed' });
    } finally {
      prepares.stop();
      client.driverName = driver;
    }
    expect(prepares.count).toBe(3);
  });

  it('keeps claiming when the table gains a column, or is dropped and created again', async () => {
    await claimsSurviveSchemaChanges(db, tableName);
  });
});

describe('a statement on the connection of an ended transaction', () => {
  it('is refused, as knex refuses it, and never runs outside a transaction', async () => {
    const db = openDatabase('sqlite');
    try {
      await db.knex.raw('create table t (x integer)');
      const trx = await db.knex.transaction();
      await trx.commit();
      let ran = false;
      await expect(
        onTransactionConnection(trx, 'insert into t values (1)', [], () => {
          ran = true;
        }),
      ).rejects.toThrow(/already complete/);
      expect(ran).toBe(false);
    } finally {
      await db.close();
    }
  });
});
