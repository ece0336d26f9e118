/**
 * The built bin as a real process (`node dist/main.js`): what a shell sees, exit codes included. Built
 * first with `tsc -b packages/cli` (incremental: quick when nothing changed).
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createIdempotencyTable, KnexIdempotencyStore } from '@idempotent-mq/knex';
import knexModule from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cliProcess,
  closedPort,
  removeScratch,
  scratchDir,
  uniqueScope,
  writeConfig,
} from './support/cli.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

beforeAll(() => {
  const tsc = createRequire(join(ROOT, 'package.json')).resolve('typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-b', 'packages/cli'], { cwd: ROOT, stdio: 'pipe' });
  } catch (error) {
    const out = error as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(
      `tsc -b packages/cli failed:\n${out.stdout?.toString() ?? ''}${out.stderr?.toString() ?? ''}`,
    );
  }
}, 120_000);
afterAll(removeScratch);

describe('the idempotent-mq bin', () => {
  it('prints its help and exits 0; an unknown command exits 2', async () => {
    const help = await cliProcess(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: idempotent-mq [options] [command]');
    const unknown = await cliProcess(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
  });

  it('runs from a JavaScript config file on SQLite: migrate 0, not found 3, refused 4, forced 0', async () => {
    const file = join(scratchDir(), 'tokens.db');
    const tableName = 'payments_tokens';
    const { dir } = writeConfig(
      'idempotent-mq.config.mjs',
      `export default {\n  store: {\n    type: 'knex',\n    knex: { client: 'better-sqlite3', connection: { filename: ${JSON.stringify(file)} } },\n    table: { tableName: '${tableName}' },\n  },\n};\n`,
    );
    const migrate = await cliProcess(['migrate', '--json'], { cwd: dir });
    expect(migrate.code).toBe(0);
    expect(migrate.json()).toMatchObject({ ran: ['0001_idempotency_tokens'], table: tableName });

    const scope = uniqueScope();
    const missing = await cliProcess(['inspect', scope, 'PAY-9'], { cwd: dir });
    expect(missing.code).toBe(3);

    const knex = knexModule({
      client: 'better-sqlite3',
      connection: { filename: file },
      useNullAsDefault: true,
    });
    try {
      await createIdempotencyTable(knex, { tableName }); // exists: nothing to do
      const store = new KnexIdempotencyStore(knex, { tableName });
      await store.claim({ token: { scope, key: 'PAY-9' }, owner: 'worker-1', leaseMs: 60_000 });
    } finally {
      await knex.destroy();
    }
    const refused = await cliProcess(['forget', scope, 'PAY-9'], { cwd: dir });
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('Refused: a live claim holds the token (owner worker-1');
    const forced = await cliProcess(['forget', scope, 'PAY-9', '--force', '--json'], { cwd: dir });
    expect(forced.code).toBe(0);
    expect(forced.json()).toMatchObject({ store: { outcome: 'forgotten', record: { owner: 'worker-1' } } });
  });

  it('an unreachable database exits 1 with one message on stderr and nothing on stdout', async () => {
    const url = `postgres://postgres@127.0.0.1:${await closedPort()}/test`;
    const run = await cliProcess(['stats'], { env: { IDEMPOTENT_MQ_DATABASE_URL: url } });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toContain('Cannot reach the knex store (PostgreSQL');
    const json = await cliProcess(['stats', '--json'], { env: { IDEMPOTENT_MQ_DATABASE_URL: url } });
    expect(json.code).toBe(1);
    expect(json.json()).toMatchObject({ error: { code: 'UNREACHABLE' } });
  });

  it('a malformed config file exits 2 naming the file', async () => {
    const { dir, path } = writeConfig('idempotent-mq.config.json', '{ not json');
    const run = await cliProcess(['stats'], { cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`The config file ${path} is not valid JSON`);
  });
});
