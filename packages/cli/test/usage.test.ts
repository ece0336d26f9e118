/**
 * Bad usage and bad surroundings: unknown commands, missing arguments, config files that cannot be read,
 * stores and caches that cannot be reached. Each ends with a message naming the fix and its exit code.
 */
import { MemoryIdempotencyStore } from '@idempotent-mq/core';
import { FaultyStore } from '@idempotent-mq/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, closedPort, REDIS_URL, removeScratch, uniqueScope, writeConfig } from './support/cli.js';

afterAll(removeScratch);

const SQLITE = () => ({ IDEMPOTENT_MQ_DATABASE_URL: `sqlite:${writeConfig('t.db', '').path}` });

describe('bad usage exits 2 with the fix on stderr', () => {
  it('an unknown command names the help', async () => {
    const run = await cli(['frobnicate']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("error: unknown command 'frobnicate'");
    expect(run.stderr).toContain('idempotent-mq --help');
  });

  it('an unknown command with --json also prints one JSON error document', async () => {
    const run = await cli(['frobnicate', '--json']);
    expect(run.code).toBe(2);
    expect(run.json()).toMatchObject({ command: 'frobnicate', error: { code: 'USAGE', exitCode: 2 } });
  });

  it('a missing key, an unknown option, a bad number or duration', async () => {
    const missing = await cli(['inspect', 'v1:billing:Payments.onMessage']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("error: missing required argument 'key'");
    const option = await cli(['forget', 'v1:s', 'K', '--frce']);
    expect(option.code).toBe(2);
    expect(option.stderr).toContain("unknown option '--frce'");
    expect(option.stderr).toContain('--force');
    const batch = await cli(['purge', '--expired', '--batch-size', '0'], { env: SQLITE() });
    expect(batch.code).toBe(2);
    expect(batch.stderr).toContain('expected an integer from 1 to 100000');
    const pause = await cli(['purge', '--expired', '--pause', 'soon'], { env: SQLITE() });
    expect(pause.code).toBe(2);
    expect(pause.stderr).toContain("option '--pause <ms|auto>' argument 'soon' is invalid");
    expect(pause.stderr).toContain('expected an integer from 0 to 60000');
    const within = await cli(['stats', '--within', 'soon']);
    expect(within.code).toBe(2);
    expect(within.stderr).toContain('expected a duration such as 250ms, 30s, 15m, 24h or 7d');
  });

  it('purge without --expired says what purge does', async () => {
    const run = await cli(['purge', '--json'], { env: SQLITE() });
    expect(run.code).toBe(2);
    expect(run.json()).toMatchObject({ command: 'purge', error: { code: 'USAGE' } });
    expect(run.stderr).toContain('pass --expired');
  });

  it('dlq without a subcommand shows its help', async () => {
    const run = await cli(['dlq']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('Usage: idempotent-mq dlq');
  });

  it('--help and --version exit 0', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: idempotent-mq [options] [command]');
    const version = await cli(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('config problems exit 2, naming the file and the fix', () => {
  it('no config file and no environment', async () => {
    const run = await cli(['stats']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('No store is configured. Create idempotent-mq.config.mjs');
    expect(run.stderr).toContain('IDEMPOTENT_MQ_DATABASE_URL');
  });

  it('a --config path that does not exist', async () => {
    const run = await cli(['stats', '--config', 'nowhere.mjs']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/The config file .*nowhere\.mjs \(from --config\) does not exist/);
  });

  it('a JSON config file that is not JSON', async () => {
    const { dir, path } = writeConfig('idempotent-mq.config.json', '{ "store": { "type": "knex", }');
    const run = await cli(['stats'], { cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`The config file ${path} is not valid JSON`);
    expect(run.stderr).toContain('Fix the file');
  });

  it('a JavaScript config file that does not load', async () => {
    const { dir, path } = writeConfig(
      'idempotent-mq.config.mjs',
      'export default { store: { type: "knex", ;\n',
    );
    const run = await cli(['stats', '--json'], { cwd: dir });
    expect(run.code).toBe(2);
    expect(run.json()).toMatchObject({ command: 'stats', error: { code: 'CONFIG' } });
    expect(run.stderr).toContain(`The config file ${path} could not be loaded`);
  });

  it('a config of the wrong shape names the option and the accepted values', async () => {
    const typo = writeConfig('idempotent-mq.config.json', '{ "stor": {} }');
    const misspelt = await cli(['stats'], { cwd: typo.dir });
    expect(misspelt.code).toBe(2);
    expect(misspelt.stderr).toContain(
      'Invalid option "stor": expected no such option; did you mean "store"?',
    );
    expect(misspelt.stderr).toContain(`Fix it in ${typo.path}`);
    const type = writeConfig('idempotent-mq.config.json', '{ "store": { "type": "postgres" } }');
    const wrongType = await cli(['stats'], { cwd: type.dir });
    expect(wrongType.code).toBe(2);
    expect(wrongType.stderr).toContain(
      `Invalid option "store.type": expected one of 'knex', 'redis', 'custom', got "postgres"`,
    );
    const table = writeConfig(
      'idempotent-mq.config.json',
      '{ "store": { "type": "knex", "knex": { "client": "better-sqlite3", "connection": { "filename": ":memory:" } }, "table": { "tableName": "bad-name" } } }',
    );
    const badTable = await cli(['stats'], { cwd: table.dir });
    expect(badTable.code).toBe(2);
    expect(badTable.stderr).toContain('Invalid option "tableName"');
  });

  it('a database URL of an unknown scheme', async () => {
    const run = await cli(['stats'], { env: { IDEMPOTENT_MQ_DATABASE_URL: 'oracle://db/x' } });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('IDEMPOTENT_MQ_DATABASE_CLIENT');
  });

  it('a store without the optional port method a command needs', async () => {
    // FaultyStore forwards the port's required methods only: no inspect, forget or stats.
    const config = {
      store: {
        type: 'custom',
        store: new FaultyStore(new MemoryIdempotencyStore()),
        description: 'plain store',
      },
    } as const;
    const forget = await cli(['forget', uniqueScope(), 'K'], { config });
    expect(forget.code).toBe(2);
    expect(forget.stderr).toContain('The plain store has no forget()');
    expect((await cli(['stats'], { config })).stderr).toContain('The plain store has no stats()');
    // inspect falls back to the port's get().
    const inspect = await cli(['inspect', uniqueScope(), 'K'], { config });
    expect(inspect.code).toBe(3);
    expect(inspect.stdout).toContain('the store has no inspect()');
  });
});

describe('an unreachable store or cache exits 1, naming what to check', () => {
  it('PostgreSQL on a closed port', async () => {
    const url = `postgres://postgres@127.0.0.1:${await closedPort()}/test`;
    const run = await cli(['inspect', uniqueScope(), 'K'], { env: { IDEMPOTENT_MQ_DATABASE_URL: url } });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('Cannot reach the knex store (PostgreSQL');
    expect(run.stderr).toContain('ECONNREFUSED');
    expect(run.stderr).toContain('Check that it runs and that IDEMPOTENT_MQ_DATABASE_URL points at it');
  });

  it('MariaDB on a closed port, with --json', async () => {
    const url = `mysql://root@127.0.0.1:${await closedPort()}/test`;
    const run = await cli(['stats', '--json'], { env: { IDEMPOTENT_MQ_DATABASE_URL: url } });
    expect(run.code).toBe(1);
    expect(run.json()).toMatchObject({ command: 'stats', error: { code: 'UNREACHABLE', exitCode: 1 } });
  });

  it('migrate on a closed port', async () => {
    const url = `postgres://postgres@127.0.0.1:${await closedPort()}/test`;
    const run = await cli(['migrate'], { env: { IDEMPOTENT_MQ_DATABASE_URL: url } });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('Cannot reach the knex store');
  });

  it('a Redis store, and a Redis cache, on a closed port', async () => {
    const url = `redis://127.0.0.1:${await closedPort()}`;
    const store = await cli(['forget', uniqueScope(), 'K'], { env: { IDEMPOTENT_MQ_STORE_REDIS_URL: url } });
    expect(store.code).toBe(1);
    expect(store.stderr).toContain(`Cannot reach Redis at ${url} (IDEMPOTENT_MQ_STORE_REDIS_URL)`);
    const cache = await cli(['inspect', uniqueScope(), 'K'], {
      env: { ...SQLITE(), IDEMPOTENT_MQ_REDIS_URL: url },
    });
    expect(cache.code).toBe(1);
    expect(cache.stderr).toContain('(IDEMPOTENT_MQ_REDIS_URL)');
  });
});

describe('the environment overrides the config file', () => {
  it('IDEMPOTENT_MQ_CACHE=off drops the cache; IDEMPOTENT_MQ_REDIS_URL adds one', async () => {
    const { dir } = writeConfig(
      'idempotent-mq.config.json',
      JSON.stringify({
        store: { type: 'redis', url: 'redis://127.0.0.1:1' },
        cache: { type: 'redis', url: 'redis://127.0.0.1:1' },
      }),
    );
    // The config's Redis is unreachable; the environment points both at the real one.
    const env = {
      IDEMPOTENT_MQ_REDIS_URL: REDIS_URL,
      IDEMPOTENT_MQ_KEY_PREFIX: `imq-test:cli-env:${Date.now()}:`,
    };
    const withCache = await cli(['inspect', uniqueScope(), 'K', '--json'], { cwd: dir, env });
    expect(withCache.code).toBe(3);
    expect(withCache.json()).toMatchObject({ store: { state: 'absent' }, cache: { state: 'absent' } });
    const off = await cli(['inspect', uniqueScope(), 'K', '--json'], {
      cwd: dir,
      env: { ...env, IDEMPOTENT_MQ_CACHE: 'off' },
    });
    expect(off.json()).toMatchObject({ cache: null });
  });
});
