/**
 * The packages as a user gets them: each one packed (`pnpm pack`, as it would be published), installed
 * with npm into fresh apps that pin their own inversify, knex and ioredis, and a consumer written from
 * the READMEs run against the real PostgreSQL and Redis. It catches what the monorepo hides: a dependency
 * that should be a peer, an exports map CommonJS cannot read, a main entry that needs vitest, a file the
 * tarball lacks or should not carry.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const apps = fileURLToPath(new URL('./apps/', import.meta.url));
const PACKED = ['core', 'testing', 'knex', 'redis'] as const;
const env = {
  ...process.env,
  PG_URL: process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  npm_config_nodedir: '/usr',
};

let work: string;
const tarballs = new Map<string, string>();

/** A fresh app in its own folder: `dependencies` beside our tarballs, installed with npm. */
async function app(
  name: string,
  type: 'module' | 'commonjs',
  dependencies: Record<string, string>,
  files: string[],
) {
  const dir = join(work, name);
  await run('mkdir', ['-p', dir]);
  const ours = Object.fromEntries(PACKED.map((p) => [`@idempotent-mq/${p}`, `file:${tarballs.get(p)}`]));
  await writeFile(
    join(dir, 'package.json'),
    JSON.stringify({ name, private: true, type, dependencies: { ...ours, ...dependencies } }, null, 2),
  );
  for (const file of files) await copyFile(join(apps, file), join(dir, file));
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], {
    cwd: dir,
    env,
    timeout: 240_000,
  });
  return dir;
}

/** Compiles the app's consumer.ts with the app's own TypeScript, runs it, and parses its JSON line. */
async function compileAndRun(dir: string): Promise<Record<string, unknown>> {
  await run(process.execPath, [join(dir, 'node_modules/typescript/bin/tsc'), '-p', dir], {
    cwd: dir,
    env,
  }).catch((error: { stdout?: string }) => {
    throw new Error(`the consumer does not compile against the packed types:\n${error.stdout}`);
  });
  const { stdout } = await run(process.execPath, [join(dir, 'out/consumer.js')], {
    cwd: dir,
    env: { ...env, RUN_ID: `pkg_${randomUUID().slice(0, 8)}` },
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split('\n').pop() as string);
}

function everyPaymentOnce(result: Record<string, unknown>): void {
  const charged = result.charged as Record<string, number>;
  expect(Object.keys(charged)).toHaveLength(50);
  expect(Object.entries(charged).filter(([, n]) => n !== 1)).toEqual([]);
  expect(result.deadLetters).toBe(0);
  // The faults were on: duplicates were delivered and skipped, not absent.
  const deliveries = result.deliveries as Record<string, number>;
  expect((deliveries.resend ?? 0) + (deliveries.lostAck ?? 0)).toBeGreaterThan(0);
}

describe('the packed packages in fresh apps', () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'imq-packaging-'));
    const out = join(work, 'tarballs');
    for (const p of PACKED) {
      await run('npx', ['-y', 'pnpm@12.4.2', 'pack', '--pack-destination', out], {
        cwd: join(root, 'packages', p),
        env,
      });
    }
    for (const file of await readdir(out)) {
      const p = PACKED.find((name) => file.startsWith(`idempotent-mq-${name}-`));
      if (p) tarballs.set(p, join(out, file));
    }
    expect([...tarballs.keys()].sort()).toEqual([...PACKED].sort());
  }, 120_000);
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('a tarball carries what a user needs and nothing of the build or the tests', async () => {
    for (const [name, tarball] of tarballs) {
      const { stdout } = await run('tar', ['tzf', tarball]);
      const files = stdout.trim().split('\n');
      expect(files, name).toContain('package/dist/index.js');
      expect(files, name).toContain('package/dist/index.d.ts');
      expect(
        files.filter((f) => /tsbuildinfo|\/test\/|\.test\./.test(f)),
        name,
      ).toEqual([]);
    }
  });

  it('an ESM TypeScript app on inversify 8 compiles against the packed types and charges every payment once', async () => {
    const dir = await app(
      'esm-inversify-8',
      'module',
      {
        inversify: '8.1.3',
        'reflect-metadata': '0.2.2',
        knex: '3.3.0',
        pg: '8.23.1',
        ioredis: '6.0.0',
        typescript: '5.9.3',
        '@types/node': '20.19.43',
      },
      ['consumer.ts', 'tsconfig.json'],
    );
    everyPaymentOnce(await compileAndRun(dir));
  }, 300_000);

  it('an app pinned to the lowest supported versions (inversify 7.6, knex 3.1, ioredis 5.4) works the same', async () => {
    const dir = await app(
      'esm-lowest',
      'module',
      {
        inversify: '7.6.0',
        'reflect-metadata': '0.2.2',
        knex: '3.1.0',
        pg: '8.23.1',
        ioredis: '5.4.0',
        typescript: '5.9.3',
        '@types/node': '20.19.43',
      },
      ['consumer.ts', 'tsconfig.json'],
    );
    everyPaymentOnce(await compileAndRun(dir));
  }, 300_000);

  it('a CommonJS app require()s the packages and runs a makeIdempotent function without a container', async () => {
    const dir = await app(
      'cjs',
      'commonjs',
      { inversify: '8.2.3', 'reflect-metadata': '0.2.2', knex: '3.3.0', pg: '8.23.1', ioredis: '6.0.0' },
      ['consumer.cjs'],
    );
    const { stdout } = await run(process.execPath, ['consumer.cjs'], {
      cwd: dir,
      env: { ...env, RUN_ID: `pkg_${randomUUID().slice(0, 8)}` },
      timeout: 60_000,
    });
    const result = JSON.parse(stdout.trim());
    expect(result.charged).toEqual({ 'PAY-1': 1, 'PAY-2': 1 });
    expect(result.results).toEqual(Array.from({ length: 5 }, () => ({ charged: 7 })));
  }, 300_000);

  it('the main entry of @idempotent-mq/testing loads without vitest; its /vitest entry names it', async () => {
    const dir = join(work, 'cjs');
    const probe = `
      const t = require('@idempotent-mq/testing');
      let vitestEntry;
      try { require('@idempotent-mq/testing/vitest'); vitestEntry = 'loaded'; } catch (e) { vitestEntry = String(e.code || e.message); }
      console.log(JSON.stringify({ broker: typeof t.InMemoryBroker, contract: typeof t.describeStoreContract, vitestEntry }));
    `;
    const { stdout } = await run(process.execPath, ['-e', probe], { cwd: dir, env });
    expect(JSON.parse(stdout)).toEqual({
      broker: 'function',
      contract: 'undefined',
      vitestEntry: 'ERR_MODULE_NOT_FOUND',
    });
  }, 60_000);
});
