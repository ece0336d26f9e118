/**
 * Redis memory per completed token, on a private redis-server this benchmark starts on its own loopback
 * port and stops by its PID: the store's record (lease mode, completed) and the cache's entry, each
 * filled through the engine and read as `INFO memory` used_memory before and after.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import {
  type IdempotencyCache,
  type IdempotencyStore,
  MemoryIdempotencyStore,
  NoIdempotencyCache,
} from '@idempotent-mq/core/adapter';
import { RedisIdempotencyCache, RedisIdempotencyStore } from '@idempotent-mq/redis';
import { Redis } from 'ioredis';

/** What one fill of N tokens cost the server. */
export interface RedisMemoryFigure {
  readonly tokens: number;
  /** (used_memory after − before) / tokens. */
  readonly bytesPerToken: number;
  /** Between the half-way point and the end: free of the fixed costs a first write brings. */
  readonly bytesPerTokenSecondHalf: number;
  readonly keysPerToken: number;
  readonly usedMemoryBefore: number;
  readonly usedMemoryAfter: number;
  /** One of the keys written: its name, type, encoding, TTL and `MEMORY USAGE`. */
  readonly sample: {
    readonly key: string;
    readonly type: string;
    readonly encoding: string;
    readonly pttlMs: number;
    readonly memoryUsage: number;
    readonly fields?: readonly string[];
    readonly valueBytes?: number;
  };
  readonly fillS: number;
  /** Messages whose outcome was not `processed` (by error code), and the first such error's message. */
  readonly failures: Record<string, number>;
  readonly firstFailure?: string;
}

export interface RedisMemoryResult {
  readonly server: string;
  readonly port: number;
  readonly keyPrefix: string;
  /** The Redis package as measured: its last commit and uncommitted changes (another helper edits it). */
  readonly redisPackage: { readonly commit: string; readonly diffStat: string };
  readonly store: RedisMemoryFigure;
  readonly cache: RedisMemoryFigure;
}

type RunOne = (key: string) => Promise<void>;

/** Makes the engine call that completes one token through the given store and cache. */
export type EngineFactory = (store: IdempotencyStore, cache: IdempotencyCache) => RunOne;

const PREFIX = 'volume:';

async function startServer(port: number): Promise<{ child: ChildProcess; dir: string }> {
  const dir = await mkdtemp(join(os.tmpdir(), 'imq-volume-redis-'));
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  probe.on('error', () => undefined); // refused until the server listens
  for (let i = 0; ; i++) {
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      return { child, dir };
    } catch (error) {
      probe.disconnect();
      if (i > 50 || child.exitCode !== null) {
        child.kill('SIGTERM');
        throw new Error(`redis-server on 127.0.0.1:${port} did not start: ${String(error)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function stopServer(child: ChildProcess, dir: string): Promise<void> {
  if (child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM'); // by this child's PID only
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1]);
}

async function inParallel(n: number, width: number, op: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await op(next++);
  };
  await Promise.all(Array.from({ length: width }, worker));
}

async function measureFill(redis: Redis, tokens: number, complete: RunOne): Promise<RedisMemoryFigure> {
  // A token that fails is counted and reported, not retried: the figure divides by the tokens completed.
  const failures: Record<string, number> = {};
  let firstFailure: string | undefined;
  const run = async (key: string) => {
    try {
      await complete(key);
    } catch (error) {
      const code = String((error as { code?: unknown }).code ?? 'unknown');
      failures[code] = (failures[code] ?? 0) + 1;
      firstFailure ??= String((error as Error).message ?? error);
    }
  };
  await redis.flushall('SYNC'); // the private server: nothing else lives there
  const keysBefore = await redis.dbsize();
  const before = await usedMemory(redis);
  const t0 = performance.now();
  const half = Math.floor(tokens / 2);
  await inParallel(half, 64, () => run(randomUUID()));
  const mid = await usedMemory(redis);
  await inParallel(tokens - half, 64, () => run(randomUUID()));
  const fillS = (performance.now() - t0) / 1000;
  const after = await usedMemory(redis);
  const keysAfter = await redis.dbsize();
  const failed = Object.values(failures).reduce((a, b) => a + b, 0);
  const done = tokens - failed;
  const [, [key]] = (await redis.scan('0', 'MATCH', `${PREFIX}*`, 'COUNT', 100)) as [string, string[]];
  if (!key) throw new Error('no key written under the prefix');
  const type = await redis.type(key);
  const sample = {
    key,
    type,
    encoding: String(await redis.object('ENCODING', key)),
    pttlMs: await redis.pttl(key),
    memoryUsage: Number(await redis.memory('USAGE', key)),
    ...(type === 'hash' ? { fields: Object.keys(await redis.hgetall(key)) } : {}),
    ...(type === 'string' ? { valueBytes: await redis.strlen(key) } : {}),
  };
  return {
    tokens,
    bytesPerToken: Math.round((after - before) / done),
    bytesPerTokenSecondHalf: Math.round((after - mid) / (tokens - half)),
    keysPerToken: (keysAfter - keysBefore) / done,
    usedMemoryBefore: before,
    usedMemoryAfter: after,
    sample,
    fillS: Number(fillS.toFixed(1)),
    failures,
    ...(firstFailure ? { firstFailure } : {}),
  };
}

/** Removes every key under the prefix (the brief's cleanup, before the server itself goes). */
async function clean(redis: Redis): Promise<void> {
  for await (const keys of redis.scanStream({ match: `${PREFIX}*`, count: 1000 })) {
    if ((keys as string[]).length > 0) await redis.del(...(keys as string[]));
  }
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: new URL('../../..', import.meta.url), encoding: 'utf8' }).trim();
  } catch (error) {
    return `git failed: ${String(error)}`;
  }
}

/**
 * Fills `tokens` completed tokens through the Redis store (lease mode, no cache), then as many through
 * the Redis cache (over a small memory store), on a private server at 127.0.0.1:`port`.
 */
export async function redisMemory(
  tokens: number,
  port: number,
  engine: EngineFactory,
): Promise<RedisMemoryResult> {
  const { child, dir } = await startServer(port);
  const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const server = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown';
    const redisPackage = {
      commit: git(['log', '-1', '--format=%h %cI %s', '--', 'packages/redis']),
      diffStat: git(['diff', '--stat', '--', 'packages/redis']) || '(no uncommitted changes)',
    };
    const store = await measureFill(
      redis,
      tokens,
      engine(new RedisIdempotencyStore(redis, { keyPrefix: PREFIX }), new NoIdempotencyCache()),
    );
    await clean(redis);
    const cache = await measureFill(
      redis,
      tokens,
      engine(
        new MemoryIdempotencyStore({ maxRecords: 1000 }),
        new RedisIdempotencyCache(redis, { keyPrefix: PREFIX }),
      ),
    );
    await clean(redis);
    return { server, port, keyPrefix: PREFIX, redisPackage, store, cache };
  } finally {
    redis.disconnect();
    await stopServer(child, dir);
  }
}
