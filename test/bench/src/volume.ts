/**
 * `--volume`: does the cost of a message stay flat as tokens pile up? Not part of `pnpm bench`; run it
 * on its own, after a build:
 *
 *   npx tsc -b tsconfig.build.json test/bench && node --expose-gc test/bench/dist/run.js --volume \
 *     [--volume-rows 1000000,10000000] [--volume-only sql|purge|redis] \
 *     [--volume-servers postgresql,mariadb,redis] [--quick]
 *
 * 1. First-time throughput (transactional, through the engine with the Redis cache, at 1 and 64 in
 *    flight) against a table pre-filled with N completed tokens beside the same against an empty table,
 *    interleaved round by round: ratio = full / empty (goal ≥ 0.9), for PostgreSQL and MariaDB, N as
 *    given. On PostgreSQL the 10M table is the 1M one topped up; on MariaDB each N is a fresh table bulk
 *    loaded in one statement (`fillEmpty`: 10M rows in 280 s here, where batches of inserts into a
 *    unique index that outgrows the 128 MB buffer pool took ~20 minutes). Also the plans of the store's
 *    statements on the full table, and a purge with nothing to purge there.
 * 2. `purgeExpired` of 1M expired rows (the store's default batch of 1000) while 64 consumers run
 *    first-time messages on the same table: claim and message p99 before, during and after the purge.
 *    Why MariaDB's consumers slow down meanwhile, and what would help: volume-purge.ts.
 * 3. Redis bytes per completed token, store (lease mode) and cache, on a private redis-server at
 *    127.0.0.1:6391 that the run starts and stops.
 *
 * On a 2-core machine with the servers' default buffers (128 MB each) the full run takes about 35–45
 * minutes, most of it filling 10M rows into PostgreSQL (15 min; MariaDB's sql part is 9 min); `--volume-rows 1000000` about 10 minutes, and
 * `--quick` (100k rows, short rounds) 2–3 minutes. Needs ~4 GB free per server for 10M rows. Writes
 * results/volume.json: one entry per part and server (`sql@<rows>:<server>`, `purge:<server>`,
 * `redis`), each replaced by a new run of the same part and server and kept otherwise, with when it was
 * measured and the load on the machine meanwhile (`--quick` writes volume-quick.json). `--volume-servers`
 * runs the parts of the servers it names only. Tables are `vol_<kind>_<pid>`, dropped at the end; a
 * later run drops those of a run that was killed.
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type ClaimRequest,
  type ClaimResult,
  ConsoleLogger,
  type Execution,
  getHandlerMethod,
  type HandlerMethod,
  IDEMPOTENCY_CACHE,
  IDEMPOTENCY_ENGINE,
  IDEMPOTENCY_LOGGER,
  IDEMPOTENCY_STORE,
  type IdempotencyCache,
  type IdempotencyContext,
  type IdempotencyEngine,
  IdempotencyModule,
  type IdempotencyStore,
  Idempotent,
} from '@idempotent-mq/core/adapter';
import { createIdempotencyTable, dropIdempotencyTable, KnexIdempotencyStore } from '@idempotent-mq/knex';
import { RedisIdempotencyCache } from '@idempotent-mq/redis';
import { Container, injectable } from 'inversify';
import { Redis } from 'ioredis';
import knexFactory, { type Knex } from 'knex';
import { compare, median } from './measure.js';
import { MYSQL_URL, PG_URL, REDIS_URL } from './scenarios.js';
import { type LoadReport, watchLoad } from './volume-load.js';
import { redisMemory } from './volume-redis.js';
import {
  checkSameShape,
  dbNow,
  dialectOf,
  dropLeftovers,
  explain,
  fill,
  fillEmpty,
  rowShape,
  type SentStatement,
  settle,
  tableSizeMb,
} from './volume-sql.js';

interface Payment {
  readonly keys: readonly string[];
  readonly body: { readonly amount: number };
}

const payment = (key: string): Payment => ({ keys: [key], body: { amount: 100 } });

const PID = process.pid;
/** The consumers' ledger, where each message's effect is one insert (created by the run). */
export const LEDGER = `vol_ledger_${PID}`;
const FULL = `vol_full_${PID}`;
const EMPTY = `vol_empty_${PID}`;
const PURGE = `vol_purge_${PID}`;

/** A first-time consumer whose effect is one insert in the handler's transaction, as `pnpm bench`'s. */
@injectable()
class VolumeConsumer {
  @Idempotent({ key: (m: Payment) => m.keys })
  async onMessage(m: Payment, ctx: IdempotencyContext<Knex.Transaction | undefined>) {
    const trx = ctx.trx;
    if (trx && typeof trx === 'function')
      await trx(LEDGER).insert({ serial: m.keys[0], amount: m.body.amount });
  }
}

/** The same without a transaction: lease mode, for the Redis store (and the purge profile's lease run). */
@injectable()
export class LeaseConsumer {
  @Idempotent({ key: (m: Payment) => m.keys, mode: 'lease' })
  async onMessage(_m: Payment) {}
}

/** The scope the engine gives VolumeConsumer's tokens: the fills write it too (checked on a stored row). */
export const SCOPE = 'v1:VolumeConsumer.onMessage';

/** An engine with this store and cache whose call runs one first-time message of `ctor` to `processed`. */
export function engineOn(
  store: IdempotencyStore,
  cache: IdempotencyCache,
  ctor: typeof VolumeConsumer | typeof LeaseConsumer = VolumeConsumer,
): (key: string) => Promise<void> {
  const container = new Container();
  container.load(new IdempotencyModule());
  container.rebind(IDEMPOTENCY_STORE).toConstantValue(store);
  container.rebind(IDEMPOTENCY_CACHE).toConstantValue(cache);
  container.rebind(IDEMPOTENCY_LOGGER).toConstantValue(new ConsoleLogger('error'));
  container.bind(ctor).toSelf().inSingletonScope();
  const instance = container.get(ctor);
  const engine: IdempotencyEngine = container.get(IDEMPOTENCY_ENGINE);
  const target = getHandlerMethod(ctor, 'onMessage') as HandlerMethod;
  return async (key) => {
    const o: Execution = await engine.execute(target, instance, payment(key));
    if (o.kind !== 'processed') throw o.kind === 'failed' ? o.error : new Error(`${key}: ${o.kind}`);
  };
}

/** The knex store with each claim's latency (start time, ms) recorded while `samples` is set. */
export class TimedStore extends KnexIdempotencyStore {
  samples: { at: number; ms: number }[] | undefined;

  override async claim(request: ClaimRequest, tx?: Knex.Transaction): Promise<ClaimResult> {
    const at = performance.now();
    try {
      return await super.claim(request, tx);
    } finally {
      this.samples?.push({ at, ms: performance.now() - at });
    }
  }
}

const log = (text: string) => process.stderr.write(`${text}\n`);
const secs = (t0: number) => Number(((performance.now() - t0) / 1000).toFixed(1));

/** The servers `--volume-servers` accepts, in the order the run measures them. */
export const VOLUME_SERVERS = ['postgresql', 'mariadb', 'redis'] as const;
export type VolumeServer = (typeof VOLUME_SERVERS)[number];

/**
 * The volume run's options from the command line: `--volume-rows` a comma-separated increasing list of
 * row counts (default 1000000,10000000; 100000 with `--quick`), `--volume-only` one part,
 * `--volume-servers` a comma-separated list of the servers to measure (default all three).
 */
export function volumeOptions(values: {
  quick?: boolean;
  'volume-rows'?: string;
  'volume-only'?: string;
  'volume-servers'?: string;
}): Options {
  const quick = values.quick ?? false;
  const rows = (values['volume-rows'] ?? (quick ? '100000' : '1000000,10000000'))
    .split(',')
    .map((s) => Number(s.trim().replace(/_/g, '')));
  if (
    rows.some(
      (n, i) => !Number.isInteger(n) || n < 1000 || n > 100_000_000 || (i > 0 && n <= (rows[i - 1] ?? 0)),
    )
  ) {
    throw new Error(
      `--volume-rows: expected increasing integers from 1000 to 100000000, comma-separated (e.g. 1000000,10000000); got "${values['volume-rows']}"`,
    );
  }
  const only = values['volume-only'];
  if (only !== undefined && only !== 'sql' && only !== 'purge' && only !== 'redis') {
    throw new Error(`--volume-only: expected sql, purge or redis; got "${only}"`);
  }
  const servers = volumeServers(values['volume-servers']);
  // sql and purge measure PostgreSQL and MariaDB; redis only Redis.
  const measured = servers.filter((s) =>
    only === undefined ? true : only === 'redis' ? s === 'redis' : s !== 'redis',
  );
  if (measured.length === 0) {
    throw new Error(
      `--volume-servers ${values['volume-servers']} with --volume-only ${only} measures nothing: ` +
        `${only === 'redis' ? 'the redis part needs redis' : `the ${only} part needs postgresql or mariadb`} among the servers`,
    );
  }
  return {
    rows,
    ...(only ? { only } : {}),
    servers,
    quick,
    purgeRows: quick ? 100_000 : 1_000_000,
    redisTokens: quick ? 20_000 : 200_000,
    redisPort: 6391,
  };
}

/** `--volume-servers`: the servers named, each once, from {@link VOLUME_SERVERS}; all when not given. */
function volumeServers(text: string | undefined): readonly VolumeServer[] {
  if (text === undefined) return VOLUME_SERVERS;
  const names = text.split(',').map((s) => s.trim().toLowerCase());
  const bad = names.filter((n) => !(VOLUME_SERVERS as readonly string[]).includes(n));
  if (names.length === 0 || bad.length > 0 || new Set(names).size !== names.length) {
    throw new Error(
      `--volume-servers: expected one or more of ${VOLUME_SERVERS.join(', ')}, comma-separated, each once ` +
        `(e.g. --volume-servers mariadb); got "${text}"${bad.length > 0 ? ` (unknown: ${bad.map((b) => `"${b}"`).join(', ')})` : ''}`,
    );
  }
  return VOLUME_SERVERS.filter((s) => names.includes(s));
}

interface Options {
  readonly rows: readonly number[];
  readonly only?: 'sql' | 'purge' | 'redis';
  readonly servers: readonly VolumeServer[];
  readonly quick: boolean;
  readonly purgeRows: number;
  readonly redisTokens: number;
  readonly redisPort: number;
}

interface Databases {
  /** The engine's cache in the SQL parts, on the shared Redis under this run's own prefix. */
  readonly cache: IdempotencyCache;
}

/** A SQL server the run measures: the consumers' pool and the purge's own connection, as a purge job would have. */
interface SqlServer {
  readonly name: 'PostgreSQL' | 'MariaDB';
  readonly db: Knex;
  readonly purgeDb: Knex;
}

/** Drops the token table and creates it again with the store's own migration. */
export async function recreate(db: Knex, table: string): Promise<void> {
  await dropIdempotencyTable(db, { tableName: table });
  await createIdempotencyTable(db, { tableName: table });
}

/** The statements the store sends while `work` runs (nothing else may use `db` meanwhile). */
async function captured(db: Knex, work: () => Promise<unknown>): Promise<SentStatement[]> {
  const sent: SentStatement[] = [];
  const listener = (q: { sql: string; bindings?: unknown[] }) =>
    sent.push({ sql: q.sql, bindings: q.bindings ?? [] });
  db.on('query', listener);
  try {
    await work();
  } finally {
    db.off('query', listener);
  }
  return sent;
}

const label = (db: Knex) => (dialectOf(db) === 'postgresql' ? 'PostgreSQL' : 'MariaDB');

async function serverSettings(db: Knex): Promise<Record<string, string>> {
  if (dialectOf(db) === 'postgresql') {
    const out: Record<string, string> = {};
    for (const name of ['shared_buffers', 'autovacuum', 'synchronous_commit', 'max_wal_size']) {
      out[name] = (await db.raw(`show ${name}`)).rows[0][name];
    }
    return out;
  }
  const [rows] = await db.raw(
    "show variables where variable_name in ('innodb_buffer_pool_size', 'innodb_flush_log_at_trx_commit', 'innodb_log_file_size', 'innodb_fill_factor', 'tx_isolation')",
  );
  return Object.fromEntries(
    (rows as { Variable_name: string; Value: string }[]).map((r) => [r.Variable_name, r.Value]),
  );
}

/** The server's version and the settings that bound a volume run (buffers, durability). */
async function serverOf(db: Knex): Promise<{ version: string; settings: Record<string, string> }> {
  const version =
    dialectOf(db) === 'postgresql'
      ? ((await db.raw('select version() as v')).rows[0].v as string).split(' ').slice(0, 2).join(' ')
      : ((await db.raw('select version() as v'))[0][0] as { v: string }).v;
  return { version, settings: await serverSettings(db) };
}

/**
 * Part 1, one server: the full table topped up to each N in turn, each N measured at 1 and 64 in flight
 * against a fresh empty table.
 */
async function firstTimeAtVolume(db: Knex, dbs: Databases, o: Options) {
  const name = label(db);
  const timing = o.quick
    ? { durationMs: 4000, warmupMs: 500, rounds: 4 }
    : { durationMs: 24_000, warmupMs: 1500, rounds: 16 };
  const out: Record<string, unknown>[] = [];
  await recreate(db, FULL);
  const full = new KnexIdempotencyStore(db, { tableName: FULL });
  const runFull = engineOn(full, dbs.cache);
  const nowMs = await dbNow(db);
  const maxRows = Math.max(...o.rows);
  // Completion times spread over the last day, oldest first, whatever the final N.
  const stepMs = Math.max(1, Math.floor(86_400_000 / (maxRows + 1)));
  let filled = 0;
  const bulk = dialectOf(db) === 'mysql';
  for (const n of o.rows) {
    const fillStart = performance.now();
    if (bulk) {
      // A fresh table each N: InnoDB's bulk path needs an empty one (the same rows 1 … n either way).
      if (filled > 0) await recreate(db, FULL);
      log(`${name}: bulk loading ${n} completed tokens into an empty ${FULL} ...`);
      await fillEmpty(db, { table: FULL, scope: SCOPE, kind: 'live', from: 1, to: n, nowMs, stepMs });
    } else {
      log(`${name}: filling ${FULL} from ${filled} to ${n} completed tokens ...`);
      await fill(
        db,
        { table: FULL, scope: SCOPE, kind: 'live', from: filled + 1, to: n, nowMs, stepMs },
        1_000_000,
        (done) => process.stderr.write(`  ${filled + done} rows, ${secs(fillStart)} s\r`),
      );
    }
    const fillMethod = bulk
      ? `fresh table, rows 1…${n} in one INSERT … SELECT from seq_1_to_${n} into the empty table (unique_checks=0: InnoDB's bulk path, indexes built sorted)`
      : `rows ${filled + 1}…${n} added by INSERT … SELECT from generate_series, 1M per statement`;
    filled = n;
    const fillS = secs(fillStart);
    const settleStart = performance.now();
    await settle(db, FULL);
    const settleS = secs(settleStart);
    log(
      `\n${name}: ${n} rows in ${fillS} s (+ ${settleS} s vacuum/analyze), ${await tableSizeMb(db, FULL)} MB`,
    );

    // A message through the engine, its row beside a filled one; the statements it sent, for their plans.
    const probeKey = randomUUID();
    const claimSql = await captured(db, () => runFull(probeKey));
    const key = dialectOf(db) === 'postgresql' ? (k: string) => k : (k: string) => Buffer.from(k, 'utf8');
    const written = await rowShape(db, FULL, { key: key(probeKey) });
    const filledRow = await rowShape(db, FULL, { id: 1 });
    checkSameShape(filledRow, written, await dbNow(db));
    const plans: Record<string, string> = {};
    for (const [i, s] of claimSql.entries()) {
      // The statements on the token table (not the ledger's insert, nor the dialect's one-off server probe).
      if (s.sql.includes(FULL)) plans[`claim #${i}: ${s.sql}`] = await explain(db, s, false);
    }
    // The purge with nothing to purge: what a periodic purge job pays on a table of N live tokens.
    let noopPurgeMs = 0;
    const purgeSql = await captured(db, async () => {
      const t0 = performance.now();
      await full.purgeExpired();
      noopPurgeMs = performance.now() - t0;
    });
    const select = purgeSql.find((s) => /^select/i.test(s.sql));
    if (select) plans[`purge select: ${select.sql}`] = await explain(db, select, true);

    await recreate(db, EMPTY);
    await settle(db, EMPTY);
    const runEmpty = engineOn(new KnexIdempotencyStore(db, { tableName: EMPTY }), dbs.cache);
    for (const c of [1, 64]) {
      const t0 = performance.now();
      process.stderr.write(`${name}: first-time @ ${c}, ${n} rows vs empty ... `);
      const calls = { full: 0, empty: 0 };
      const buffersBefore = await bufferCounters(db);
      const { ours, baseline, ratios } = await compare(
        () => {
          calls.full++;
          return runFull(randomUUID());
        },
        () => {
          calls.empty++;
          return runEmpty(randomUUID());
        },
        { concurrency: c, ...timing },
      );
      const buffers = bufferDelta(buffersBefore, await bufferCounters(db), calls);
      const row = {
        dialect: name,
        rows: n,
        concurrency: c,
        fullOpsPerSec: Math.round(ours.opsPerSec),
        emptyOpsPerSec: Math.round(baseline.opsPerSec),
        ratio: Number(median(ratios).toFixed(3)),
        ratioSpread: [Number(Math.min(...ratios).toFixed(3)), Number(Math.max(...ratios).toFixed(3))],
        target: 0.9,
        met: median(ratios) >= 0.9,
        fullP50Ms: Number(ours.p50Ms.toFixed(2)),
        fullP99Ms: Number(ours.p99Ms.toFixed(2)),
        emptyP50Ms: Number(baseline.p50Ms.toFixed(2)),
        emptyP99Ms: Number(baseline.p99Ms.toFixed(2)),
        wallS: secs(t0),
        buffers,
      };
      log(`${row.ratio}× (${row.ratioSpread.join('–')}), ${row.fullOpsPerSec} vs ${row.emptyOpsPerSec}/s`);
      out.push(row);
    }
    out.push({
      dialect: name,
      rows: n,
      fillS,
      fillMethod,
      settleS,
      tableMb: await tableSizeMb(db, FULL),
      noopPurgeMs: Number(noopPurgeMs.toFixed(1)),
      rowSample: { filled: filledRow, written },
      plans,
    });
  }
  await dropIdempotencyTable(db, { tableName: FULL });
  await dropIdempotencyTable(db, { tableName: EMPTY });
  return out;
}

type Counters = Record<string, { read: number; hit: number }>;

/**
 * The server's buffer-pool counters, which CPU contention does not move: PostgreSQL's per table (heap and
 * index blocks found in shared buffers or read in), after the 10 s in which idle backends publish their
 * statistics; MariaDB's for the whole server (page reads and read requests of InnoDB's buffer pool).
 */
async function bufferCounters(db: Knex): Promise<Counters> {
  if (dialectOf(db) === 'postgresql') {
    await new Promise((r) => setTimeout(r, 11_000));
    const r = await db.raw(
      'select relname, coalesce(heap_blks_read, 0) + coalesce(idx_blks_read, 0) as read, ' +
        'coalesce(heap_blks_hit, 0) + coalesce(idx_blks_hit, 0) as hit from pg_statio_user_tables where relname in (?, ?)',
      [FULL, EMPTY],
    );
    return Object.fromEntries(
      (r.rows as { relname: string; read: string; hit: string }[]).map((x) => [
        x.relname === FULL ? 'full' : 'empty',
        { read: Number(x.read), hit: Number(x.hit) },
      ]),
    );
  }
  const [rows] = await db.raw(
    "show global status where variable_name in ('Innodb_buffer_pool_reads', 'Innodb_buffer_pool_read_requests')",
  );
  const v = Object.fromEntries(
    (rows as { Variable_name: string; Value: string }[]).map((x) => [x.Variable_name, Number(x.Value)]),
  );
  return { server: { read: v.Innodb_buffer_pool_reads ?? 0, hit: v.Innodb_buffer_pool_read_requests ?? 0 } };
}

/** Buffer accesses and reads (misses) per message, per table (PostgreSQL) or for the server (MariaDB). */
function bufferDelta(before: Counters, after: Counters, calls: { full: number; empty: number }) {
  const per = (side: string, n: number) => {
    const a = after[side];
    const b = before[side];
    if (!a || !b || n === 0) return undefined;
    // MariaDB's read_requests count every page access, found or not; PostgreSQL's hit and read are disjoint.
    const accesses = side === 'server' ? a.hit - b.hit : a.hit - b.hit + (a.read - b.read);
    return {
      accessesPerMessage: Number((accesses / n).toFixed(2)),
      readsPerMessage: Number(((a.read - b.read) / n).toFixed(3)),
    };
  };
  return after.server
    ? { serverWide: per('server', calls.full + calls.empty), calls }
    : { full: per('full', calls.full), empty: per('empty', calls.empty), calls };
}

/** A latency sample: its start (performance.now()) and its duration, ms. */
export interface Sample {
  readonly at: number;
  readonly ms: number;
}

/**
 * Claims and messages summarised before, during and after a purge: the samples from `from` (past the
 * warm-up) to `purgeStart`, to `purgeEnd`, to `end`.
 */
export function purgePhases(
  claims: readonly Sample[],
  messages: readonly Sample[],
  t: { readonly from: number; readonly purgeStart: number; readonly purgeEnd: number; readonly end: number },
) {
  const phase = (from: number, to: number) => ({
    claim: summary(claims, from, to),
    message: summary(messages, from, to),
  });
  return {
    before: phase(t.from, t.purgeStart),
    during: phase(t.purgeStart, t.purgeEnd),
    after: phase(t.purgeEnd, t.end),
  };
}

/** Count, rate, p50 and p99 of the samples that started in [from, to). */
export function summary(samples: readonly Sample[], from: number, to: number) {
  const ms = samples
    .filter((s) => s.at >= from && s.at < to)
    .map((s) => s.ms)
    .sort((a, b) => a - b);
  const at = (q: number) => Number((ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? 0).toFixed(2));
  return {
    count: ms.length,
    perSec: Math.round(ms.length / ((to - from) / 1000)),
    p50Ms: at(0.5),
    p99Ms: at(0.99),
  };
}

/**
 * Part 2, one server: 1M expired rows purged in the store's batches while 64 consumers run first-time
 * messages on the same table; the claim and message latencies before, during and after.
 */
async function purgeUnderLoad(db: Knex, purgeDb: Knex, dbs: Databases, o: Options) {
  const name = label(db);
  await recreate(db, PURGE);
  const fillStart = performance.now();
  log(`${name}: filling ${PURGE} with ${o.purgeRows} expired tokens ...`);
  await fill(
    db,
    {
      table: PURGE,
      scope: SCOPE,
      kind: 'expired',
      from: 1,
      to: o.purgeRows,
      nowMs: await dbNow(db),
      stepMs: 1,
    },
    dialectOf(db) === 'postgresql' ? 1_000_000 : 250_000,
    () => undefined,
  );
  await settle(db, PURGE);
  const fillS = secs(fillStart);
  const store = new TimedStore(db, { tableName: PURGE });
  const run = engineOn(store, dbs.cache);
  const purger = new KnexIdempotencyStore(purgeDb, { tableName: PURGE });
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
  const windowMs = o.quick ? 3000 : 15_000;
  const warmupMs = 2000;
  const t0 = performance.now();
  const workers = Array.from({ length: 64 }, worker);
  await new Promise((r) => setTimeout(r, warmupMs + windowMs));
  const purgeStart = performance.now();
  log(`${name}: purging ${o.purgeRows} expired rows under load ...`);
  const purged = await purger.purgeExpired();
  const purgeEnd = performance.now();
  await new Promise((r) => setTimeout(r, windowMs));
  const end = performance.now();
  stop = true;
  await Promise.all(workers);
  const claims = store.samples;
  store.samples = undefined;
  const purgeS = (purgeEnd - purgeStart) / 1000;
  const result = {
    dialect: name,
    expiredRows: o.purgeRows,
    purged,
    batchSize: 1000,
    fillS,
    purgeS: Number(purgeS.toFixed(1)),
    purgeRowsPerSec: Math.round(purged / purgeS),
    concurrency: 64,
    ...purgePhases(claims, messages, { from: t0 + warmupMs, purgeStart, purgeEnd, end }),
  };
  log(
    `${name}: purged ${purged} in ${result.purgeS} s (${result.purgeRowsPerSec} rows/s); claim p99 ` +
      `${result.before.claim.p99Ms} before, ${result.during.claim.p99Ms} during, ${result.after.claim.p99Ms} ms after`,
  );
  await dropIdempotencyTable(db, { tableName: PURGE });
  return result;
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, {
      cwd: fileURLToPath(new URL('../../..', import.meta.url)),
      encoding: 'utf8',
    }).trim();
  } catch {
    return 'unknown';
  }
}

const results = fileURLToPath(new URL('../results/', import.meta.url));

/** Runs the parts `o` names and merges what they measured into results/volume.json. */
export async function runVolume(o: Options): Promise<void> {
  const started = performance.now();
  const command = process.argv.slice(1).join(' ');
  const sql: SqlServer[] = [];
  if (o.servers.includes('postgresql') && o.only !== 'redis') {
    sql.push({
      name: 'PostgreSQL',
      db: knexFactory({ client: 'pg', connection: PG_URL, pool: { min: 0, max: 64 } }),
      purgeDb: knexFactory({ client: 'pg', connection: PG_URL, pool: { min: 0, max: 1 } }),
    });
  }
  if (o.servers.includes('mariadb') && o.only !== 'redis') {
    sql.push({
      name: 'MariaDB',
      db: knexFactory({ client: 'mysql2', connection: MYSQL_URL, pool: { min: 0, max: 64 } }),
      purgeDb: knexFactory({ client: 'mysql2', connection: MYSQL_URL, pool: { min: 0, max: 1 } }),
    });
  }
  const cacheRedis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await cacheRedis.connect();
  const run = randomUUID().slice(0, 8);
  const cachePrefix = `volume:${run}:`;
  const dbs: Databases = { cache: new RedisIdempotencyCache(cacheRedis, { keyPrefix: cachePrefix }) };
  const cleanup = async () => {
    for (const { db } of sql) {
      for (const t of [FULL, EMPTY, PURGE]) await dropIdempotencyTable(db, { tableName: t });
      await db.schema.dropTableIfExists(LEDGER);
    }
    for await (const keys of cacheRedis.scanStream({ match: `${cachePrefix}*`, count: 1000 })) {
      if ((keys as string[]).length > 0) await cacheRedis.unlink(...(keys as string[]));
    }
  };
  const onSignal = () => {
    log('interrupted: dropping tables');
    cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const out: Record<string, unknown> = {};
  const file = join(results, o.quick ? 'volume-quick.json' : 'volume.json');
  try {
    const machine = {
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      memoryGb: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      // The servers measured, under the names earlier entries used (postgres, mariadb; …Settings).
      ...Object.fromEntries(
        (
          await Promise.all(
            sql.map(async (x) => {
              const { version, settings } = await serverOf(x.db);
              const name = x.name === 'PostgreSQL' ? 'postgres' : 'mariadb';
              return [
                [name, version],
                [`${name}Settings`, settings],
              ];
            }),
          )
        ).flat(),
      ),
      commit: git(['log', '-1', '--format=%h %s']),
      knexDiffStat: git(['diff', '--stat', '--', 'packages/knex', 'packages/core']) || '(none)',
    };
    for (const { db } of sql) {
      const dropped = await dropLeftovers(db);
      if (dropped.length > 0) log(`${label(db)}: dropped leftovers of dead runs: ${dropped.join(', ')}`);
      await db.schema.dropTableIfExists(LEDGER);
      await db.schema.createTable(LEDGER, (t) => {
        t.increments('id');
        t.string('serial', 191).notNullable();
        t.integer('amount').notNullable();
      });
    }
    const part = async <T>(key: string, work: () => Promise<T>) => {
      const t0 = performance.now();
      const startedAt = new Date().toISOString();
      const load = watchLoad();
      const value = await work();
      out[key] = {
        command,
        startedAt,
        measuredAt: new Date().toISOString(),
        wallS: secs(t0),
        load: load(),
        machine,
        value,
      } satisfies Omit<SavedPart, 'value'> & { value: T };
      // Saved part by part: a long run stopped later keeps what it measured.
      await save(file, key, out[key]);
    };
    if (!o.only || o.only === 'sql') {
      for (const x of sql)
        await part(`sql@${o.rows.join(',')}:${x.name}`, () => firstTimeAtVolume(x.db, dbs, o));
    }
    if (!o.only || o.only === 'purge') {
      for (const x of sql) await part(`purge:${x.name}`, () => purgeUnderLoad(x.db, x.purgeDb, dbs, o));
    }
    if ((!o.only || o.only === 'redis') && o.servers.includes('redis')) {
      await part('redis', () =>
        redisMemory(o.redisTokens, o.redisPort, (store, cache) => engineOn(store, cache, LeaseConsumer)),
      );
    }
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const x of sql) {
      await x.db.destroy();
      await x.purgeDb.destroy();
    }
    cacheRedis.disconnect();
  }
  print(out);
  log(`wrote ${file} in ${secs(started)} s`);
}

/** One entry of results/volume.json: one part on one server, as one run measured it. */
interface SavedPart {
  readonly command: string;
  readonly startedAt: string;
  readonly measuredAt: string;
  readonly wallS: number;
  /** What else kept the machine busy meanwhile. */
  readonly load: LoadReport;
  readonly machine: Record<string, unknown>;
  readonly value: unknown;
}

/** What the file's first key says about the others. */
const ABOUT =
  'One entry per part and server: sql@<rows>:<server> (first-time throughput on a table of that many completed tokens ' +
  'beside an empty one), purge:<server> (purgeExpired of 1M expired rows under 64 consumers), redis (bytes per token); ' +
  'purge-profile:MariaDB (variants of the purge, by volume-purge.ts, entered by hand). ' +
  'A run replaces the entries of the parts and servers it measured and keeps the others. Each entry says when it ran ' +
  '(startedAt … measuredAt), under what load (load: the 1-minute load average, CPU busy %, the busiest other processes), ' +
  'on what machine and server settings, and at which commit.';

/** Replaces one part's entry in the results file, keeping the others (the file's own note first). */
async function save(file: string, key: string, value: unknown): Promise<void> {
  let saved: Record<string, unknown> = {};
  try {
    saved = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    // the first run writes the file
  }
  const { about: _, ...parts } = saved;
  const merged = { ...parts, [key]: value };
  const sorted = Object.fromEntries(
    Object.keys(merged)
      .sort()
      .map((k) => [k, merged[k]]),
  );
  await writeFile(file, `${JSON.stringify({ about: ABOUT, ...sorted }, null, 2)}\n`);
}

function print(out: Record<string, unknown>): void {
  type Part = { value: unknown; command: string; wallS: number };
  for (const [key, part] of Object.entries(out) as [string, Part][]) {
    console.log(`\n${key}: \`${part.command}\` (${part.wallS} s)`);
    if (key.startsWith('sql')) {
      console.log(
        '| server | rows in table | conc | full ops/s | empty ops/s | ratio full/empty (median) | rounds min–max | ≥ 0.9 | p99 full / empty ms |',
      );
      console.log('|---|---:|---:|---:|---:|---:|---:|---|---:|');
      for (const r of part.value as Record<string, unknown>[]) {
        if (r.concurrency === undefined) continue;
        const spread = r.ratioSpread as number[];
        console.log(
          `| ${r.dialect} | ${r.rows} | ${r.concurrency} | ${r.fullOpsPerSec} | ${r.emptyOpsPerSec} | ${(r.ratio as number).toFixed(2)}× | ${spread[0]?.toFixed(2)}–${spread[1]?.toFixed(2)} | ${r.met ? '✓' : '✗'} | ${r.fullP99Ms} / ${r.emptyP99Ms} |`,
        );
      }
      for (const r of part.value as Record<string, unknown>[]) {
        if (r.buffers === undefined) continue;
        console.log(
          `${r.dialect} ${r.rows} rows @ ${r.concurrency}: buffer pool per message ${JSON.stringify(r.buffers)}`,
        );
      }
      for (const r of part.value as Record<string, unknown>[]) {
        if (r.fillS === undefined) continue;
        console.log(
          `${r.dialect} ${r.rows} rows: fill ${r.fillS} s, vacuum/analyze ${r.settleS} s, ${r.tableMb} MB; a purge with nothing to purge: ${r.noopPurgeMs} ms`,
        );
        for (const [what, plan] of Object.entries(r.plans as Record<string, string>)) {
          console.log(`  plan of ${what.slice(0, 160)}\n    ${plan.split('\n').join('\n    ')}`);
        }
      }
    } else if (key.startsWith('purge')) {
      console.log(
        '| server | expired rows | purge s | rows/s | claim p99 before / during / after ms | message p99 before / during / after ms | messages/s before / during / after |',
      );
      console.log('|---|---:|---:|---:|---:|---:|---:|');
      for (const r of [part.value].flat() as Awaited<ReturnType<typeof purgeUnderLoad>>[]) {
        console.log(
          `| ${r.dialect} | ${r.purged} | ${r.purgeS} | ${r.purgeRowsPerSec} | ${r.before.claim.p99Ms} / ${r.during.claim.p99Ms} / ${r.after.claim.p99Ms} | ${r.before.message.p99Ms} / ${r.during.message.p99Ms} / ${r.after.message.p99Ms} | ${r.before.message.perSec} / ${r.during.message.perSec} / ${r.after.message.perSec} |`,
        );
      }
    } else if (key === 'redis') {
      const r = part.value as Awaited<ReturnType<typeof redisMemory>>;
      console.log(
        `Redis ${r.server} (private, port ${r.port}); packages/redis at ${r.redisPackage.commit}; diff: ${r.redisPackage.diffStat}`,
      );
      for (const [what, f] of [
        ['store (lease, completed)', r.store],
        ['cache', r.cache],
      ] as const) {
        console.log(
          `  ${what}: ${f.bytesPerToken} B/token over ${f.tokens} (${f.bytesPerTokenSecondHalf} B in the second half), ${f.keysPerToken} keys/token, failures ${JSON.stringify(f.failures)}; sample ${f.sample.key} ${f.sample.type}/${f.sample.encoding} MEMORY USAGE ${f.sample.memoryUsage} B, PTTL ${f.sample.pttlMs} ms${f.sample.fields ? `, fields ${f.sample.fields.join(',')}` : ''}${f.sample.valueBytes !== undefined ? `, value ${f.sample.valueBytes} B` : ''}`,
        );
      }
    }
  }
}
