/**
 * Running the CLI in tests: through `run()` with captured streams (most tests), or as a real process on
 * the built bin. Real servers from `PG_URL`, `MYSQL_URL`, `REDIS_URL` (local defaults); SQLite files and
 * config files in temporary directories; every table and key prefix unique to the run.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IdempotencyStore, TokenRef } from '@idempotent-mq/core';
import { createIdempotencyTable, dropIdempotencyTable, KnexIdempotencyStore } from '@idempotent-mq/knex';
import { RedisIdempotencyCache, RedisIdempotencyStore } from '@idempotent-mq/redis';
import { Redis } from 'ioredis';
import knexModule, { type Knex } from 'knex';
import { type IdempotentMqConfig, run } from '../../src/index.js';

export const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** What one CLI run printed and returned. */
export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed as the one JSON document `--json` prints. */
  json<T = Record<string, unknown>>(): T;
}

/** Options of a CLI run: its environment (nothing of the test process's leaks in), cwd, config object. */
export interface RunOptions {
  readonly env?: Record<string, string | undefined>;
  readonly cwd?: string;
  readonly config?: IdempotentMqConfig;
}

/** Runs the CLI in this process through `run()`. */
export async function cli(argv: readonly string[], options: RunOptions = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await run(argv, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    env: options.env ?? {},
    cwd: options.cwd ?? scratchDir(),
    ...(options.config ? { config: options.config } : {}),
  });
  return result(code, stdout, stderr);
}

const BIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

/** Runs the built bin (`node dist/main.js`) as a real process. */
export function cliProcess(argv: readonly string[], options: RunOptions = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...argv], {
      cwd: options.cwd ?? scratchDir(),
      env: { PATH: process.env.PATH, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve(result(code ?? -1, stdout, stderr)));
  });
}

function result(code: number, stdout: string, stderr: string): CliRun {
  return {
    code,
    stdout,
    stderr,
    json: <T>() => {
      try {
        return JSON.parse(stdout) as T;
      } catch {
        throw new Error(`stdout is not one JSON document:\n${stdout}\nstderr:\n${stderr}`);
      }
    },
  };
}

const dirs: string[] = [];

/** A temporary directory, removed by {@link removeScratch}. */
export function scratchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'imq-cli-'));
  dirs.push(dir);
  return dir;
}

/** Removes every directory {@link scratchDir} made. */
export function removeScratch(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Writes `text` as `name` in a fresh directory; returns the directory and the file's path. */
export function writeConfig(name: string, text: string): { dir: string; path: string } {
  const dir = scratchDir();
  const path = join(dir, name);
  writeFileSync(path, text);
  return { dir, path };
}

/** A loopback port nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export const uniqueTable = () => `cli_${randomBytes(6).toString('hex')}`;
export const uniqueScope = () => `v1:cli-test:${randomUUID()}`;
export const uniquePrefix = () => `imq-test:cli:${randomUUID()}:`;
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export type StoreKind = 'postgresql' | 'mysql' | 'sqlite' | 'redis';
export const STORE_KINDS: readonly StoreKind[] = ['postgresql', 'mysql', 'sqlite', 'redis'];

/**
 * A real store for one test file: the test writes tokens through its port, and `env` points the CLI at
 * the same table (or key prefix), with a Redis cache beside it under its own prefix.
 */
export interface Backend {
  readonly kind: StoreKind;
  readonly store: IdempotencyStore;
  readonly cache: RedisIdempotencyCache;
  /** The environment that points the CLI at this store and cache. */
  readonly env: Record<string, string>;
  /** The knex of a SQL store. */
  readonly knex?: Knex;
  readonly tableName?: string;
  /** Claims `token` (and completes it when `ttlMs` is given), through the store's port. */
  seed(
    token: TokenRef,
    options?: { owner?: string; leaseMs?: number; ttlMs?: number; result?: string },
  ): Promise<void>;
  close(): Promise<void>;
}

/** Opens a store of `kind` with a fresh table (or prefix), and the shared Redis for the cache. */
export async function openBackend(kind: StoreKind): Promise<Backend> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  // One prefix for the cache and a Redis store, as IDEMPOTENT_MQ_KEY_PREFIX sets it: the key layout
  // keeps their keys apart.
  const prefix = uniquePrefix();
  const cache = new RedisIdempotencyCache(redis, { keyPrefix: prefix });
  const redisEnv = { IDEMPOTENT_MQ_REDIS_URL: REDIS_URL, IDEMPOTENT_MQ_KEY_PREFIX: prefix };
  let store: IdempotencyStore;
  let env: Record<string, string>;
  let knex: Knex | undefined;
  let tableName: string | undefined;
  if (kind === 'redis') {
    store = new RedisIdempotencyStore(redis, { keyPrefix: prefix });
    env = { IDEMPOTENT_MQ_STORE_REDIS_URL: REDIS_URL, ...redisEnv };
  } else {
    tableName = uniqueTable();
    let url: string;
    if (kind === 'sqlite') {
      const file = join(scratchDir(), 'tokens.db');
      url = `sqlite:${file}`;
      knex = knexModule({ client: 'better-sqlite3', connection: { filename: file }, useNullAsDefault: true });
    } else {
      url = kind === 'postgresql' ? PG_URL : MYSQL_URL;
      const client = kind === 'postgresql' ? 'pg' : 'mysql2';
      knex = knexModule({ client, connection: url, pool: { min: 0, max: 4 } });
    }
    await createIdempotencyTable(knex, { tableName });
    store = new KnexIdempotencyStore(knex, { tableName });
    env = { IDEMPOTENT_MQ_DATABASE_URL: url, IDEMPOTENT_MQ_TABLE: tableName, ...redisEnv };
  }
  return {
    kind,
    store,
    cache,
    env,
    ...(knex ? { knex } : {}),
    ...(tableName ? { tableName } : {}),
    async seed(token, options = {}) {
      const owner = options.owner ?? randomUUID();
      const claimed = await store.claim({ token, owner, leaseMs: options.leaseMs ?? 60_000 });
      if (claimed.status !== 'claimed') throw new Error(`could not seed ${token.key}: ${claimed.status}`);
      if (options.ttlMs === undefined) return;
      const result = options.result === undefined ? {} : { result: options.result };
      await store.complete({ token, owner, ttlMs: options.ttlMs, ...result });
    },
    async close() {
      if (knex && tableName) {
        await dropIdempotencyTable(knex, { tableName });
        await knex.destroy();
      }
      await deletePrefix(redis, prefix);
      await redis.quit();
    },
  };
}

/** Deletes every key under `prefix` (SCAN, never FLUSHDB: other suites share this Redis). */
export async function deletePrefix(client: Redis, prefix: string): Promise<void> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`;
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await client.unlink(...keys);
  } while (cursor !== '0');
}
