/**
 * Why `purgeExpired` slows MariaDB's consumers, and what would help: the volume run's purge of 1M expired
 * rows under 64 first-time consumers, once per variant of the purge's SQL, with what InnoDB reports
 * meanwhile (row-lock waits, transactions waiting on a lock, the history list, index entries the purge's
 * session read per row deleted, the time of each select and delete, CPU of the server). MariaDB only.
 *
 *   npx tsc -b tsconfig.build.json test/bench && node test/bench/dist/volume-purge.js \
 *     [--variants store,store-rc,…] [--rows 1000000] [--out /tmp/purge-profile.json]
 *
 * The variants (none edits packages/knex: `store*` call the store's own purgeExpired, the others send the
 * SQL they propose on the purge's connection):
 * - `store`: purgeExpired() as shipped (select ids … limit 1000, then delete … where id in (…) and the
 *   condition again), on the server's default isolation (REPEATABLE READ).
 * - `store-rc`: the same with the purge's session at READ COMMITTED.
 * - `store-b<N>`: the same with `batchSize: N`.
 * - `ordered`: the select ordered by `expires_at` (the index's order).
 * - `paced`: the store's purge with `pause: 'auto'` (its purgePause), pausing after each batch as long as it took.
 * - `keyset`: ordered by (`expires_at`, `id`), each batch starting after the last row of the one before.
 * - `delete-limit`: one `delete … where <condition> order by expires_at limit N` per batch.
 * - `delete-limit-txrc`: the same, each in a READ COMMITTED transaction of its own.
 * A `-rc` suffix puts the purge's session at READ COMMITTED. `--mode lease` runs lease-mode consumers,
 * whose claims are written in progress with no `expires_at` (NULL sorts first in the expiry index).
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { KnexIdempotencyStore } from '@idempotent-mq/knex';
import { RedisIdempotencyCache } from '@idempotent-mq/redis';
import { Redis } from 'ioredis';
import knexFactory, { type Knex } from 'knex';
import { MYSQL_URL, REDIS_URL } from './scenarios.js';
import {
  engineOn,
  LEDGER,
  LeaseConsumer,
  purgePhases,
  recreate,
  type Sample,
  SCOPE,
  TimedStore,
} from './volume.js';
import { type LoadReport, watchLoad } from './volume-load.js';
import { dbNow, dropLeftovers, fill, NOW_MS, settle } from './volume-sql.js';

const TABLE = `vol_pprof_${process.pid}`;
const EXPIRED = `status = 'completed' and expires_at <= (select ${NOW_MS.mysql})`;
const log = (text: string) => process.stderr.write(`${text}\n`);

type Purge = (purgeDb: Knex, batch: number) => Promise<number>;

/** The store's purge, as shipped (with `pause`, as the store paces it). */
const storePurge =
  (batchSize?: number, pause?: 'auto'): Purge =>
  (purgeDb) =>
    new KnexIdempotencyStore(purgeDb, { tableName: TABLE }).purgeExpired({
      ...(batchSize ? { batchSize } : {}),
      ...(pause ? { pause } : {}),
    });

/** The store's two statements with the select in the expiry index's order. */
const orderedPurge: Purge = async (db, batch) => {
  let purged = 0;
  for (;;) {
    const [rows] = await db.raw(`select id from ?? where ${EXPIRED} order by expires_at limit ?`, [
      TABLE,
      batch,
    ]);
    const ids = (rows as { id: number }[]).map((r) => r.id);
    if (ids.length === 0) return purged;
    const [res] = await db.raw(
      `delete from ?? where id in (${ids.map(() => '?').join(',')}) and ${EXPIRED}`,
      [TABLE, ...ids],
    );
    purged += (res as { affectedRows: number }).affectedRows;
    if (ids.length < batch) return purged;
  }
};

/** The same, each select starting after the last (expires_at, id) of the batch before. */
const keysetPurge: Purge = async (db, batch) => {
  let purged = 0;
  let after: { e: number; id: number } | undefined;
  for (;;) {
    const [rows] = after
      ? await db.raw(
          `select id, expires_at from ?? where ${EXPIRED} and (expires_at > ? or (expires_at = ? and id > ?)) order by expires_at, id limit ?`,
          [TABLE, after.e, after.e, after.id, batch],
        )
      : await db.raw(`select id, expires_at from ?? where ${EXPIRED} order by expires_at, id limit ?`, [
          TABLE,
          batch,
        ]);
    const got = rows as { id: number; expires_at: number }[];
    if (got.length === 0) return purged;
    const last = got.at(-1) as { id: number; expires_at: number };
    after = { e: Number(last.expires_at), id: Number(last.id) };
    const [res] = await db.raw(
      `delete from ?? where id in (${got.map(() => '?').join(',')}) and ${EXPIRED}`,
      [TABLE, ...got.map((r) => r.id)],
    );
    purged += (res as { affectedRows: number }).affectedRows;
    if (got.length < batch) return purged;
  }
};

/** One statement per batch: MariaDB's DELETE … ORDER BY … LIMIT. */
const deleteLimitPurge: Purge = async (db, batch) => {
  let purged = 0;
  for (;;) {
    const [res] = await db.raw(`delete from ?? where ${EXPIRED} order by expires_at limit ?`, [TABLE, batch]);
    const n = (res as { affectedRows: number }).affectedRows;
    purged += n;
    if (n < batch) return purged;
  }
};

/**
 * The same, each delete in a transaction of its own at READ COMMITTED (MariaDB refuses tx_isolation in
 * SET STATEMENT): what the store could send without touching the isolation of the user's pooled sessions.
 */
const deleteLimitTxRcPurge: Purge = async (db, batch) => {
  let purged = 0;
  for (;;) {
    const n = await db.transaction(
      async (trx) => {
        const [res] = await trx.raw(`delete from ?? where ${EXPIRED} order by expires_at limit ?`, [
          TABLE,
          batch,
        ]);
        return (res as { affectedRows: number }).affectedRows;
      },
      { isolationLevel: 'read committed' },
    );
    purged += n;
    if (n < batch) return purged;
  }
};

interface Variant {
  readonly name: string;
  readonly batch: number;
  readonly readCommitted: boolean;
  readonly purge: Purge;
}

function variant(name: string): Variant {
  const m = /^store-b(\d+)$/.exec(name);
  if (m) return { name, batch: Number(m[1]), readCommitted: false, purge: storePurge(Number(m[1])) };
  const rc = name.endsWith('-rc');
  const base = rc ? name.slice(0, -3) : name;
  const purge: Purge | undefined = {
    store: storePurge(),
    ordered: orderedPurge,
    // The store's purge with a pause after each batch as long as the batch took (purgePause: 'auto').
    paced: storePurge(undefined, 'auto'),
    keyset: keysetPurge,
    'delete-limit': deleteLimitPurge,
    'delete-limit-txrc': deleteLimitTxRcPurge,
  }[base];
  if (!purge) {
    throw new Error(
      `--variants: unknown "${name}"; expected store, store-b<N>, ordered, paced, keyset, delete-limit, delete-limit-txrc, each optionally with -rc`,
    );
  }
  return { name, batch: 1000, readCommitted: rc, purge };
}

type Status = Record<string, number>;

async function status(db: Knex, scope: 'global' | 'session', names: readonly string[]): Promise<Status> {
  const [rows] = await db.raw(
    `show ${scope} status where variable_name in (${names.map(() => '?').join(',')})`,
    names as string[],
  );
  return Object.fromEntries(
    (rows as { Variable_name: string; Value: string }[]).map((r) => [r.Variable_name, Number(r.Value)]),
  );
}

const delta = (a: Status, b: Status) =>
  Object.fromEntries(Object.keys(b).map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]));

const GLOBAL = [
  'Innodb_row_lock_waits',
  'Innodb_row_lock_time',
  'Innodb_row_lock_current_waits',
  'Innodb_buffer_pool_reads',
  'Innodb_buffer_pool_read_requests',
  'Innodb_buffer_pool_wait_free',
  'Innodb_log_waits',
  'Innodb_os_log_fsyncs',
  'Innodb_data_fsyncs',
  'Innodb_deadlocks',
  'Innodb_history_list_length',
];
const SESSION = [
  'Handler_read_next',
  'Handler_read_key',
  'Handler_read_rnd_next',
  'Handler_delete',
  'Questions',
];

/** The 1M-row fill, the consumers, the purge and what the server said meanwhile, for one variant. */
async function runVariant(
  db: Knex,
  cache: RedisIdempotencyCache,
  v: Variant,
  rows: number,
  windowMs: number,
  mode: 'transactional' | 'lease',
) {
  await recreate(db, TABLE);
  const f0 = performance.now();
  await fill(
    db,
    { table: TABLE, scope: SCOPE, kind: 'expired', from: 1, to: rows, nowMs: await dbNow(db), stepMs: 1 },
    250_000,
    () => undefined,
  );
  await settle(db, TABLE);
  const fillS = (performance.now() - f0) / 1000;
  const purgeDb = knexFactory({
    client: 'mysql2',
    connection: MYSQL_URL,
    pool: {
      min: 1,
      max: 1,
      ...(v.readCommitted
        ? {
            afterCreate: (
              conn: { query: (q: string, cb: (e: unknown) => void) => void },
              done: (e: unknown, c: unknown) => void,
            ) => conn.query('set session transaction isolation level read committed', (e) => done(e, conn)),
          }
        : {}),
    },
  });
  // The purge session's isolation as the server reports it, and the plans of its statements.
  const [[iso]] = await purgeDb.raw('select @@tx_isolation as iso');
  const plans: Record<string, string> = {};
  for (const [what, sql, b] of [
    ['select', `explain select id from ?? where ${EXPIRED} limit 1000`, [TABLE]],
    ['select ordered', `explain select id from ?? where ${EXPIRED} order by expires_at limit 1000`, [TABLE]],
    ['delete by id', `explain delete from ?? where id in (1,2,3) and ${EXPIRED}`, [TABLE]],
    [
      'delete by 1000 ids',
      `explain delete from ?? where id in (${Array.from({ length: 1000 }, (_, i) => i + 1).join(',')}) and ${EXPIRED}`,
      [TABLE],
    ],
    ['delete limit', `explain delete from ?? where ${EXPIRED} order by expires_at limit 1000`, [TABLE]],
  ] as const) {
    const [r] = await purgeDb.raw(sql, b as unknown as string[]);
    plans[what] = (r as Record<string, unknown>[])
      .map((x) => `type=${x.type} key=${x.key} rows=${x.rows} Extra=${x.Extra}`)
      .join(' | ');
  }
  // Each statement's time on the purge connection, in order.
  const statements: { kind: 'select' | 'delete'; at: number; ms: number }[] = [];
  const started = new Map<string, { kind: 'select' | 'delete'; at: number }>();
  purgeDb.on('query', (q: { __knexQueryUid: string; sql: string }) => {
    const kind = /^\s*select/i.test(q.sql) ? 'select' : /^\s*delete/i.test(q.sql) ? 'delete' : undefined;
    if (kind) started.set(q.__knexQueryUid, { kind, at: performance.now() });
  });
  purgeDb.on('query-response', (_r: unknown, q: { __knexQueryUid: string }) => {
    const s = started.get(q.__knexQueryUid);
    if (s) statements.push({ ...s, ms: performance.now() - s.at });
    started.delete(q.__knexQueryUid);
  });

  const store = new TimedStore(db, { tableName: TABLE });
  const run = mode === 'lease' ? engineOn(store, cache, LeaseConsumer) : engineOn(store, cache);
  const messages: Sample[] = [];
  store.samples = [];
  let stop = false;
  const worker = async () => {
    while (!stop) {
      const at = performance.now();
      await run(randomUUID());
      messages.push({ at, ms: performance.now() - at });
    }
  };
  const warmupMs = 2000;
  const t0 = performance.now();
  const workers = Array.from({ length: 64 }, worker);
  await new Promise((r) => setTimeout(r, warmupMs));
  const loadBefore = watchLoad(1);
  const gBefore = await status(db, 'global', GLOBAL);
  await new Promise((r) => setTimeout(r, windowMs));
  const gBeforeEnd = await status(db, 'global', GLOBAL);
  const before: LoadReport = loadBefore();
  // What the server sees during the purge, sampled each second on a connection of the consumers' pool.
  const lockWaitSamples: number[] = [];
  const historySamples: number[] = [];
  // Who waited for whom, as caught by the samples: waiting and blocking statement (cut), lock mode, index.
  const waits = new Map<string, number>();
  let innodbStatus = '';
  let sampling = true;
  const sampler = (async () => {
    let i = 0;
    while (sampling) {
      const [found] = await db.raw(
        'select left(r.trx_query, 60) as waiting, left(b.trx_query, 60) as blocking, l.lock_mode as mode, ' +
          'l.lock_type as type, l.lock_index as idx from information_schema.innodb_lock_waits w ' +
          'join information_schema.innodb_trx r on r.trx_id = w.requesting_trx_id ' +
          'join information_schema.innodb_trx b on b.trx_id = w.blocking_trx_id ' +
          'join information_schema.innodb_locks l on l.lock_id = w.requested_lock_id',
      );
      lockWaitSamples.push((found as unknown[]).length);
      for (const f of found as Record<string, string | null>[]) {
        const k = `${f.mode} ${f.type} on ${f.idx}: "${f.waiting}" waits for "${f.blocking}"`;
        waits.set(k, (waits.get(k) ?? 0) + 1);
      }
      if (i % 10 === 0) {
        historySamples.push(
          (await status(db, 'global', ['Innodb_history_list_length'])).Innodb_history_list_length ?? 0,
        );
      }
      if (++i === 200) innodbStatus = (await db.raw('show engine innodb status'))[0][0].Status as string;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const g0 = await status(db, 'global', GLOBAL);
  const s0 = await status(purgeDb, 'session', SESSION);
  const loadDuring = watchLoad(1);
  log(`${v.name}: purging ${rows} expired rows under 64 consumers (${iso.iso}, batch ${v.batch}) ...`);
  const purgeStart = performance.now();
  const purged = await v.purge(purgeDb, v.batch);
  const purgeEnd = performance.now();
  const during = loadDuring();
  const s1 = await status(purgeDb, 'session', SESSION);
  const g1 = await status(db, 'global', GLOBAL);
  sampling = false;
  await sampler;
  await new Promise((r) => setTimeout(r, windowMs));
  const end = performance.now();
  stop = true;
  await Promise.all(workers);
  const claims = store.samples;
  store.samples = undefined;
  await purgeDb.destroy();
  await recreate(db, TABLE);

  const purgeS = (purgeEnd - purgeStart) / 1000;
  const sess = delta(s0, s1);
  const stmt = (kind: 'select' | 'delete', part: 'first' | 'last') => {
    const list = statements.filter((s) => s.kind === kind);
    const slice = part === 'first' ? list.slice(0, 50) : list.slice(-50);
    const ms = slice.map((s) => s.ms).sort((a, b) => a - b);
    return { count: list.length, medianMs: Number((ms[Math.floor(ms.length / 2)] ?? 0).toFixed(2)) };
  };
  const mariadbCpu = (l: LoadReport, s: number) =>
    Number(((l.busiestOthers.find((b) => b.command.includes('mariadbd'))?.cpuS ?? 0) / s).toFixed(2));
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  const serverDelta = delta(g0, g1);
  const beforeDelta = delta(gBefore, gBeforeEnd);
  const perS = (d: Status, k: string, sec: number) => Number(((d[k] ?? 0) / sec).toFixed(1));
  const result = {
    variant: v.name,
    consumers: mode,
    isolation: iso.iso,
    batch: v.batch,
    expiredRows: rows,
    purged,
    fillS: Number(fillS.toFixed(1)),
    purgeS: Number(purgeS.toFixed(1)),
    purgeRowsPerSec: Math.round(purged / purgeS),
    ...purgePhases(claims, messages, { from: t0 + warmupMs, purgeStart, purgeEnd, end }),
    statements: {
      selectFirst50: stmt('select', 'first'),
      selectLast50: stmt('select', 'last'),
      deleteFirst50: stmt('delete', 'first'),
      deleteLast50: stmt('delete', 'last'),
      selectTotalS: Number(
        (sum(statements.filter((s) => s.kind === 'select').map((s) => s.ms)) / 1000).toFixed(1),
      ),
      deleteTotalS: Number(
        (sum(statements.filter((s) => s.kind === 'delete').map((s) => s.ms)) / 1000).toFixed(1),
      ),
    },
    purgeSession: {
      ...sess,
      indexEntriesReadPerRowPurged: Number(
        (((sess.Handler_read_next ?? 0) + (sess.Handler_read_key ?? 0)) / Math.max(1, purged)).toFixed(2),
      ),
    },
    serverDuringPurge: {
      ...serverDelta,
      Innodb_history_list_length: {
        atStart: g0.Innodb_history_list_length,
        atEnd: g1.Innodb_history_list_length,
        max: Math.max(0, ...historySamples),
      },
      rowLockWaitsPerS: {
        before: perS(beforeDelta, 'Innodb_row_lock_waits', windowMs / 1000),
        during: perS(serverDelta, 'Innodb_row_lock_waits', purgeS),
      },
      rowLockTimeMsPerS: {
        before: perS(beforeDelta, 'Innodb_row_lock_time', windowMs / 1000),
        during: perS(serverDelta, 'Innodb_row_lock_time', purgeS),
      },
      bufferPoolReadsPerS: {
        before: perS(beforeDelta, 'Innodb_buffer_pool_reads', windowMs / 1000),
        during: perS(serverDelta, 'Innodb_buffer_pool_reads', purgeS),
      },
      dataFsyncsPerS: {
        before: perS(beforeDelta, 'Innodb_data_fsyncs', windowMs / 1000),
        during: perS(serverDelta, 'Innodb_data_fsyncs', purgeS),
      },
      waitsSeen: Object.fromEntries([...waits].sort((a, b) => b[1] - a[1]).slice(0, 8)),
      lockWaitingTransactions: {
        samples: lockWaitSamples.length,
        max: Math.max(0, ...lockWaitSamples),
        mean: Number((sum(lockWaitSamples) / Math.max(1, lockWaitSamples.length)).toFixed(2)),
      },
    },
    cpu: {
      mariadbdCoresBefore: mariadbCpu(before, windowMs / 1000),
      mariadbdCoresDuring: mariadbCpu(during, purgeS),
      benchCoresBefore: Number((before.thisProcessCpuS / (windowMs / 1000)).toFixed(2)),
      benchCoresDuring: Number((during.thisProcessCpuS / purgeS).toFixed(2)),
      cpuBusyPctBefore: before.cpuBusyPct,
      cpuBusyPctDuring: during.cpuBusyPct,
    },
    loadDuring: during,
    plans,
    innodbStatusAt20s: innodbStatus
      .split('\n')
      .filter((l) =>
        /History list|OS WAIT ARRAY|RW-(shared|excl|sx) spins|Pending|waited|lock struct|LOCK WAIT|insert buffer|Log sequence|Last checkpoint|pages flushed|Buffer pool hit|Pages read|Modified db pages|queries inside|read views/i.test(
          l,
        ),
      )
      .slice(0, 40),
  };
  log(
    `${v.name}: purged ${purged} in ${result.purgeS} s (${result.purgeRowsPerSec}/s); claim p99 ${result.before.claim.p99Ms} → ${result.during.claim.p99Ms} → ${result.after.claim.p99Ms} ms; ` +
      `messages/s ${result.before.message.perSec} → ${result.during.message.perSec} → ${result.after.message.perSec}; select median first/last ${result.statements.selectFirst50.medianMs}/${result.statements.selectLast50.medianMs} ms, delete ${result.statements.deleteFirst50.medianMs}/${result.statements.deleteLast50.medianMs} ms; ` +
      `row lock waits/s ${result.serverDuringPurge.rowLockWaitsPerS.before} → ${result.serverDuringPurge.rowLockWaitsPerS.during} (${result.serverDuringPurge.rowLockTimeMsPerS.before} → ${result.serverDuringPurge.rowLockTimeMsPerS.during} ms/s), lock-waiting trx max ${result.serverDuringPurge.lockWaitingTransactions.max}; mariadbd cores ${result.cpu.mariadbdCoresBefore} → ${result.cpu.mariadbdCoresDuring}; index entries read per row ${result.purgeSession.indexEntriesReadPerRowPurged}`,
  );
  return result;
}

async function main() {
  const { values } = parseArgs({
    options: {
      variants: { type: 'string' },
      rows: { type: 'string' },
      window: { type: 'string' },
      out: { type: 'string' },
      mode: { type: 'string' },
    },
  });
  const variants = (values.variants ?? 'store,store-rc,ordered,keyset,delete-limit,store')
    .split(',')
    .map((s) => variant(s.trim()));
  const rows = Number(values.rows ?? 1_000_000);
  if (!Number.isInteger(rows) || rows < 1000)
    throw new Error(`--rows: expected an integer ≥ 1000; got "${values.rows}"`);
  const windowMs = Number(values.window ?? 12) * 1000;
  if (!Number.isFinite(windowMs) || windowMs < 1000)
    throw new Error(`--window: expected seconds ≥ 1; got "${values.window}"`);
  const out = values.out ?? '/tmp/purge-profile.json';
  const mode = values.mode ?? 'transactional';
  if (mode !== 'transactional' && mode !== 'lease') {
    throw new Error(`--mode: expected transactional or lease; got "${mode}"`);
  }
  const db = knexFactory({ client: 'mysql2', connection: MYSQL_URL, pool: { min: 0, max: 66 } });
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const prefix = `volume:pprof:${randomUUID().slice(0, 8)}:`;
  const cache = new RedisIdempotencyCache(redis, { keyPrefix: prefix });
  const results: unknown[] = [];
  try {
    await dropLeftovers(db);
    await db.schema.dropTableIfExists(LEDGER);
    await db.schema.createTable(LEDGER, (t) => {
      t.increments('id');
      t.string('serial', 191).notNullable();
      t.integer('amount').notNullable();
    });
    for (const v of variants) {
      results.push({
        measuredAt: new Date().toISOString(),
        ...(await runVariant(db, cache, v, rows, windowMs, mode)),
      });
      await writeFile(out, `${JSON.stringify(results, null, 2)}\n`);
    }
  } finally {
    await db.schema.dropTableIfExists(TABLE);
    await db.schema.dropTableIfExists(LEDGER);
    for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 1000 })) {
      if ((keys as string[]).length > 0) await redis.unlink(...(keys as string[]));
    }
    await db.destroy();
    redis.disconnect();
  }
  log(`wrote ${out}`);
}

await main();
