/**
 * The config file (`idempotent-mq.config.{mjs,js,json}`, like a knexfile), the environment overrides,
 * and their checks: what the commands connect to, resolved once before any of them runs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  checkOptionsObject,
  enumOption,
  type IdempotencyCache,
  type IdempotencyStore,
  InvalidOptionError,
  integerOption,
  textOption,
} from '@idempotent-mq/core/adapter';
import type { IdempotencyTableOptions } from '@idempotent-mq/knex';
import type { Knex } from 'knex';
import type { DeadLetterSourceConfig } from './dead-letters.js';
import { CliError } from './exit-codes.js';

/** A SQL store through knex: the connection as in a knexfile, and the token table's options. */
export interface KnexStoreConfig {
  readonly type: 'knex';
  /**
   * A knex config as in a knexfile (`client`, `connection`, `pool`, ...). The CLI adds a small pool
   * (`min: 0, max: 2`), `acquireConnectionTimeout: 10000` and, for SQLite, `useNullAsDefault` unless given.
   */
  readonly knex: Knex.Config;
  /** The token table, as given to `KnexIdempotencyStore` and the migration. @defaultValue `{ tableName: 'idempotency_tokens' }` */
  readonly table?: IdempotencyTableOptions;
  /**
   * The table in which `migrate` records the migrations it ran (knex's migration log), in the token
   * table's schema. Apart from your own `knex_migrations`, so that neither list sees the other's entries
   * as missing files, and one per token table, so that two apps' tables in one database each get theirs.
   * @defaultValue `'<token table>_migrations'`
   */
  readonly migrationsTable?: string;
}

/** Redis as the store (`RedisIdempotencyStore`). */
export interface RedisStoreConfig {
  readonly type: 'redis';
  /** `redis://[user:password@]host:port[/db]` or `rediss://` for TLS. */
  readonly url: string;
  /** As given to the store. @defaultValue `'imq:'` */
  readonly keyPrefix?: string;
}

/** A store object of your own (a JavaScript config file, or `run()` in process): used as it is. */
export interface CustomStoreConfig {
  readonly type: 'custom';
  readonly store: IdempotencyStore;
  /** How to name it in messages. @defaultValue `'custom store'` */
  readonly description?: string;
}

/** The Redis cache (`RedisIdempotencyCache`) in front of the store. */
export interface RedisCacheConfig {
  readonly type: 'redis';
  readonly url: string;
  /** As given to the cache. @defaultValue `'imq:'` */
  readonly keyPrefix?: string;
}

/** A cache object of your own, used as it is. */
export interface CustomCacheConfig {
  readonly type: 'custom';
  readonly cache: IdempotencyCache;
  /** @defaultValue `'custom cache'` */
  readonly description?: string;
}

/** What a config file exports (as `default`, or as `config`; a function returning it works too). */
export interface IdempotentMqConfig {
  /** The source of truth. Required, from here or from the environment. */
  readonly store?: KnexStoreConfig | RedisStoreConfig | CustomStoreConfig;
  /** The cache in front of it, if the consumers use one. @defaultValue none */
  readonly cache?: RedisCacheConfig | CustomCacheConfig | false;
  /** Where `dlq list` and `dlq redrive` find dead letters (JavaScript config files only). */
  readonly deadLetters?: readonly DeadLetterSourceConfig[];
  /**
   * The engine's `maxKeyLength`, so that a key given on the command line (or a dead letter's) is turned
   * into the stored key exactly as the engine does.
   * @defaultValue 250 (the engine's default)
   */
  readonly maxKeyLength?: number;
}

/** Types a config object: `export default defineConfig({ store: { type: 'knex', knex: {...} } })`. */
export function defineConfig(config: IdempotentMqConfig): IdempotentMqConfig {
  return config;
}

/** The config files looked for in the working directory, in this order. */
export const CONFIG_FILES = [
  'idempotent-mq.config.mjs',
  'idempotent-mq.config.js',
  'idempotent-mq.config.json',
];

/** The environment variables the CLI reads, and what each overrides. The README's table is this one. */
export const ENVIRONMENT: Readonly<Record<string, string>> = {
  IDEMPOTENT_MQ_CONFIG: 'the config file (as --config)',
  IDEMPOTENT_MQ_DATABASE_URL: 'a knex store on this URL: postgres://, mysql://, mariadb://, sqlite:<file>',
  IDEMPOTENT_MQ_DATABASE_CLIENT: 'its knex client (pg, mysql2, better-sqlite3); default: from the URL',
  IDEMPOTENT_MQ_TABLE: 'the token table (store.table.tableName)',
  IDEMPOTENT_MQ_STORE_REDIS_URL: 'a Redis store on this URL',
  IDEMPOTENT_MQ_REDIS_URL: "the Redis cache's URL; also a Redis store's, unless the one above is set",
  IDEMPOTENT_MQ_KEY_PREFIX: 'the key prefix of the Redis cache and of a Redis store',
  IDEMPOTENT_MQ_CACHE: 'off: no cache, whatever the config says',
};

/** A store to open, with where its settings came from (for messages). */
export type ResolvedStore = (
  | (Omit<KnexStoreConfig, 'migrationsTable'> & { readonly migrationsTable: string })
  | RedisStoreConfig
  | CustomStoreConfig
) & { readonly origin: string };

/** A cache to open, with where its settings came from. */
export type ResolvedCache = (RedisCacheConfig | CustomCacheConfig) & { readonly origin: string };

/** The config as the commands use it: checked, with the environment applied. */
export interface ResolvedConfig {
  /** The config file read, if any. */
  readonly file?: string;
  readonly store: ResolvedStore;
  readonly cache?: ResolvedCache;
  readonly deadLetters: readonly DeadLetterSourceConfig[];
  readonly maxKeyLength: number;
}

/** Where {@link loadConfig} looks and what it applies. */
export interface LoadConfigOptions {
  /** `--config`. */
  readonly path?: string;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** A config object given in process: no file is read. */
  readonly config?: IdempotentMqConfig;
}

const ENV_HINT = 'IDEMPOTENT_MQ_DATABASE_URL or IDEMPOTENT_MQ_STORE_REDIS_URL';

/** Finds, reads and checks the config, then applies the environment. */
export async function loadConfig(options: LoadConfigOptions): Promise<ResolvedConfig> {
  const file = options.config ? undefined : findConfigFile(options);
  const raw = options.config ?? (file ? await readConfigFile(file) : {});
  const where = file ?? (options.config ? 'the config object' : 'the environment');
  try {
    return resolveConfig(raw, file, where, options.env);
  } catch (error) {
    if (error instanceof InvalidOptionError) {
      throw new CliError('CONFIG', `${error.message} Fix it in ${where}.`, { cause: error });
    }
    throw error;
  }
}

function findConfigFile(options: LoadConfigOptions): string | undefined {
  const given = options.path ?? options.env.IDEMPOTENT_MQ_CONFIG;
  if (given !== undefined) {
    const path = isAbsolute(given) ? given : resolve(options.cwd, given);
    if (!existsSync(path)) {
      const how = options.path !== undefined ? '--config' : 'IDEMPOTENT_MQ_CONFIG';
      throw new CliError('CONFIG', `The config file ${path} (from ${how}) does not exist. Check the path.`);
    }
    return path;
  }
  return CONFIG_FILES.map((name) => resolve(options.cwd, name)).find((path) => existsSync(path));
}

async function readConfigFile(path: string): Promise<unknown> {
  if (path.endsWith('.json')) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw new CliError('CONFIG', `Cannot read the config file ${path}: ${messageOf(error)}.`, {
        cause: error,
      });
    }
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new CliError(
        'CONFIG',
        `The config file ${path} is not valid JSON (${messageOf(error)}). Fix the file, or point --config at another.`,
        { cause: error },
      );
    }
  }
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (error) {
    throw new CliError(
      'CONFIG',
      `The config file ${path} could not be loaded: ${messageOf(error)}. Fix the file, or point --config at another.`,
      { cause: error },
    );
  }
  const exported = module.default ?? module.config;
  if (exported === undefined) {
    throw new CliError(
      'CONFIG',
      `The config file ${path} exports no config. Export it as default (export default { store: ... }) or as "config".`,
    );
  }
  return typeof exported === 'function' ? await (exported as () => unknown)() : exported;
}

const TOP_LEVEL = ['store', 'cache', 'deadLetters', 'maxKeyLength'];

function resolveConfig(
  raw: unknown,
  file: string | undefined,
  where: string,
  env: Readonly<Record<string, string | undefined>>,
): ResolvedConfig {
  checkOptionsObject(raw, TOP_LEVEL, '');
  const config = (raw ?? {}) as IdempotentMqConfig;
  const maxKeyLength = integerOption('', 'maxKeyLength', config.maxKeyLength, {
    min: 45,
    max: 10_000,
    fallback: 250,
  });
  const deadLetters = checkDeadLetters(config.deadLetters);
  return {
    ...(file ? { file } : {}),
    store: resolveStore(config.store, where, env),
    ...withCache(resolveCache(config.cache, where, env)),
    deadLetters,
    maxKeyLength,
  };
}

function withCache(cache: ResolvedCache | undefined): { cache?: ResolvedCache } {
  return cache ? { cache } : {};
}

function resolveStore(
  given: IdempotentMqConfig['store'],
  where: string,
  env: Readonly<Record<string, string | undefined>>,
): ResolvedStore {
  const databaseUrl = nonEmpty(env.IDEMPOTENT_MQ_DATABASE_URL);
  const storeRedisUrl = nonEmpty(env.IDEMPOTENT_MQ_STORE_REDIS_URL);
  const redisUrl = nonEmpty(env.IDEMPOTENT_MQ_REDIS_URL);
  const keyPrefix = nonEmpty(env.IDEMPOTENT_MQ_KEY_PREFIX);
  const tableName = nonEmpty(env.IDEMPOTENT_MQ_TABLE);
  if (databaseUrl && storeRedisUrl) {
    throw new CliError(
      'CONFIG',
      'Both IDEMPOTENT_MQ_DATABASE_URL and IDEMPOTENT_MQ_STORE_REDIS_URL are set: the CLI talks to one store. Unset one.',
    );
  }
  if (given !== undefined) checkStore(given);
  if (databaseUrl) {
    const base = given?.type === 'knex' ? given : undefined;
    const client = nonEmpty(env.IDEMPOTENT_MQ_DATABASE_CLIENT) ?? clientOfUrl(databaseUrl);
    const { connection: _replaced, ...rest } = base?.knex ?? {};
    return {
      type: 'knex',
      knex: { ...rest, client, connection: connectionOf(client, databaseUrl) },
      table: { ...base?.table, ...(tableName ? { tableName } : {}) },
      migrationsTable: base?.migrationsTable ?? migrationsTableOf(tableName ?? base?.table?.tableName),
      origin: 'IDEMPOTENT_MQ_DATABASE_URL',
    };
  }
  if (storeRedisUrl || (given?.type === 'redis' && redisUrl)) {
    const base = given?.type === 'redis' ? given : undefined;
    return {
      type: 'redis',
      url: (storeRedisUrl ?? redisUrl) as string,
      ...prefix(keyPrefix ?? base?.keyPrefix),
      origin: storeRedisUrl ? 'IDEMPOTENT_MQ_STORE_REDIS_URL' : 'IDEMPOTENT_MQ_REDIS_URL',
    };
  }
  if (given === undefined) {
    if (redisUrl)
      return { type: 'redis', url: redisUrl, ...prefix(keyPrefix), origin: 'IDEMPOTENT_MQ_REDIS_URL' };
    throw new CliError(
      'CONFIG',
      `No store is configured. Create ${CONFIG_FILES[0]} in this directory (see "idempotent-mq --help"), ` +
        `point --config at one, or set ${ENV_HINT}.`,
    );
  }
  const origin = `store in ${where}`;
  switch (given.type) {
    case 'knex':
      return {
        ...given,
        table: { ...given.table, ...(tableName ? { tableName } : {}) },
        migrationsTable: given.migrationsTable ?? migrationsTableOf(tableName ?? given.table?.tableName),
        origin,
      };
    case 'redis':
      return { ...given, ...prefix(keyPrefix ?? given.keyPrefix), origin };
    default:
      return { ...given, origin };
  }
}

function resolveCache(
  given: IdempotentMqConfig['cache'],
  where: string,
  env: Readonly<Record<string, string | undefined>>,
): ResolvedCache | undefined {
  const off = nonEmpty(env.IDEMPOTENT_MQ_CACHE);
  if (off !== undefined && off !== 'off') {
    throw new CliError(
      'CONFIG',
      `IDEMPOTENT_MQ_CACHE accepts only "off" (got "${off}"). Unset it to use the config's cache.`,
    );
  }
  if (given !== undefined && given !== false) checkCache(given);
  if (off === 'off') return undefined;
  const redisUrl = nonEmpty(env.IDEMPOTENT_MQ_REDIS_URL);
  const keyPrefix = nonEmpty(env.IDEMPOTENT_MQ_KEY_PREFIX);
  if (redisUrl && (given === undefined || given === false || given.type === 'redis')) {
    const base = given && given.type === 'redis' ? given : undefined;
    return {
      type: 'redis',
      url: redisUrl,
      ...prefix(keyPrefix ?? base?.keyPrefix),
      origin: 'IDEMPOTENT_MQ_REDIS_URL',
    };
  }
  if (given === undefined || given === false) return undefined;
  const origin = `cache in ${where}`;
  return given.type === 'redis'
    ? { ...given, ...prefix(keyPrefix ?? given.keyPrefix), origin }
    : { ...given, origin };
}

/**
 * `<table>_migrations` beside the token table (same schema). Cut so that knex's `<name>_lock` still fits
 * PostgreSQL's 63-character identifiers.
 */
function migrationsTableOf(tableName: string | undefined): string {
  const parts = (tableName ?? 'idempotency_tokens').split('.');
  const base = (parts.pop() as string).slice(0, 47);
  return [...parts, `${base}_migrations`].join('.');
}

function checkStore(store: unknown): void {
  checkOptionsObject(
    store,
    ['type', 'knex', 'table', 'migrationsTable', 'url', 'keyPrefix', 'store', 'description'],
    'store',
  );
  if (store === null || typeof store !== 'object') throw new InvalidOptionError('store', 'an object', store);
  const s = store as Record<string, unknown>;
  const type = required(
    'store',
    'type',
    enumOption('store', 'type', s.type, ['knex', 'redis', 'custom']),
    "one of 'knex', 'redis', 'custom'",
  );
  const known: Record<string, string[]> = {
    knex: ['type', 'knex', 'table', 'migrationsTable'],
    redis: ['type', 'url', 'keyPrefix'],
    custom: ['type', 'store', 'description'],
  };
  checkOptionsObject(store, known[type as string] as string[], 'store');
  if (type === 'knex') {
    if (typeof s.knex !== 'object' || s.knex === null) {
      throw new InvalidOptionError('store.knex', "a knex config ({ client: 'pg', connection: ... })", s.knex);
    }
    const client = (s.knex as Record<string, unknown>).client;
    if (typeof client !== 'function')
      requiredText('store.knex', 'client', client, "a knex client ('pg', 'mysql2', 'better-sqlite3')");
    checkOptionsObject(s.table, ['tableName', 'keyLength', 'scopeLength'], 'store.table');
    textOption('store', 'migrationsTable', s.migrationsTable);
  } else if (type === 'redis') {
    requiredText('store', 'url', s.url, 'a Redis URL (redis://host:port)');
    if (s.keyPrefix !== undefined && typeof s.keyPrefix !== 'string') {
      throw new InvalidOptionError('store.keyPrefix', 'a string', s.keyPrefix);
    }
  } else if (typeof (s.store as { claim?: unknown } | undefined)?.claim !== 'function') {
    throw new InvalidOptionError(
      'store.store',
      'an IdempotencyStore (an object with claim, get, ...)',
      s.store,
    );
  }
}

function checkCache(cache: unknown): void {
  if (cache === null || typeof cache !== 'object')
    throw new InvalidOptionError('cache', 'an object or false', cache);
  const c = cache as Record<string, unknown>;
  const type = required(
    'cache',
    'type',
    enumOption('cache', 'type', c.type, ['redis', 'custom']),
    "one of 'redis', 'custom'",
  );
  checkOptionsObject(
    cache,
    type === 'redis' ? ['type', 'url', 'keyPrefix'] : ['type', 'cache', 'description'],
    'cache',
  );
  if (type === 'redis') {
    requiredText('cache', 'url', c.url, 'a Redis URL (redis://host:port)');
    if (c.keyPrefix !== undefined && typeof c.keyPrefix !== 'string') {
      throw new InvalidOptionError('cache.keyPrefix', 'a string', c.keyPrefix);
    }
  } else if (typeof (c.cache as { get?: unknown } | undefined)?.get !== 'function') {
    throw new InvalidOptionError(
      'cache.cache',
      'an IdempotencyCache (an object with get, set, delete)',
      c.cache,
    );
  }
}

function checkDeadLetters(value: unknown): readonly DeadLetterSourceConfig[] {
  if (value === undefined) return [];
  if (!Array.isArray(value))
    throw new InvalidOptionError('deadLetters', 'an array of { name, source, scope? }', value);
  const names = new Set<string>();
  value.forEach((entry: unknown, i) => {
    const where = `deadLetters[${i}]`;
    checkOptionsObject(entry, ['name', 'source', 'scope', 'key'], where);
    const e = (entry ?? {}) as Record<string, unknown>;
    requiredText(where, 'name', e.name, 'a non-empty string');
    if (names.has(e.name as string))
      throw new InvalidOptionError(`${where}.name`, 'a name no other source has', e.name);
    names.add(e.name as string);
    const source = e.source as { list?: unknown } | undefined;
    if (typeof source !== 'function' && typeof source?.list !== 'function') {
      throw new InvalidOptionError(
        `${where}.source`,
        'a DeadLetterSource ({ list, redrive }) or a function returning one',
        e.source,
      );
    }
    if (e.scope !== undefined && typeof e.scope !== 'function')
      textOption(where, 'scope', e.scope, 'a scope or a function (letter) => scope');
    if (e.key !== undefined && typeof e.key !== 'function')
      throw new InvalidOptionError(`${where}.key`, 'a function (letter) => key', e.key);
  });
  return value as DeadLetterSourceConfig[];
}

/** A value that must be given: `value` as checked, or a failure naming the option when it is missing. */
function required<T>(where: string, option: string, value: T | undefined, what: string): T {
  if (value === undefined) throw new InvalidOptionError(`${where}.${option}`, what, undefined);
  return value;
}

function requiredText(where: string, option: string, value: unknown, what: string): void {
  required(where, option, value, what);
  textOption(where, option, value, what);
}

/** The knex client a database URL names. */
function clientOfUrl(url: string): string {
  const scheme = url.slice(0, Math.max(0, url.indexOf(':'))).toLowerCase();
  if (scheme === 'postgres' || scheme === 'postgresql') return 'pg';
  if (scheme === 'mysql' || scheme === 'mariadb') return 'mysql2';
  if (scheme === 'sqlite' || scheme === 'file') return 'better-sqlite3';
  throw new CliError(
    'CONFIG',
    `IDEMPOTENT_MQ_DATABASE_URL has a scheme the CLI does not know ("${scheme || url}"): use postgres://, mysql://, ` +
      'mariadb:// or sqlite:<file>, or name the knex client in IDEMPOTENT_MQ_DATABASE_CLIENT.',
  );
}

/** A URL as the knex client takes it: a file name for SQLite, `mysql://` for MariaDB. */
function connectionOf(client: string, url: string): Knex.Config['connection'] {
  if (client === 'better-sqlite3' || client === 'sqlite3') {
    const path = url.replace(/^(sqlite|file):(\/\/)?/i, '');
    return { filename: path };
  }
  return url.replace(/^mariadb:/i, 'mysql:');
}

function prefix(keyPrefix: string | undefined): { keyPrefix?: string } {
  return keyPrefix === undefined ? {} : { keyPrefix };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

/** An error's message, or the value as text. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
